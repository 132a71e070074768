# SPDX-License-Identifier: GPL-2.0-or-later
"""Evaluate local adaptation (issue 15) on the shipped mosaic's held-out right column.

Labels are drawn from the Chesapeake reference of the mosaic's left three patch columns
(pixels 0-767 x 0-511, the columns the fine-tuned model trained on): stratified random
points, the same number in each reference class present (capped by the pixels a class
has), N = 25, 50, 100, 200, 500, 5 seeds each. The default model (fp32) is adapted to
each label set with the core adaptation (:mod:`qgis_landcover.core.adaptation`), and
every model classifies the held-out right column (pixels 768-1023 x 0-511) with the core
classify, scored against the reference with the core agreement
(:func:`~qgis_landcover.core.accuracy.agreement.assess_agreement`): overall accuracy,
kappa, mean IoU. Baselines on the same pixels: the unadapted model, the fine-tuned
model (catalogue ``azure-2018-unet-finetuned``) and a map of the majority class.

The uncertainty loop is compared with random points at the same N, stratified as above
and simple random (uniform over the left columns' labelled pixels: what labelling random
places gives a user who cannot stratify by a reference he does not have): points suggested
by :func:`~qgis_landcover.core.sampling.uncertainty.suggest_points` over the left
columns, labelled from the reference at the suggested pixels, then adapted; in one
round (N points from the unadapted model) and in two (N/2 from the unadapted model,
adapt, N/2 more from the adapted one, adapt on all N).

Usage (writes ``runs/adaptation_eval/results.json`` after every run, so a partial
evaluation keeps what ran, and ``results.md``)::

    nice -n 10 taskset -c 1 .venv/bin/python -m model_training.release.evaluate_adaptation
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from osgeo import gdal

from model_training.release.evaluate_models import CLASS_NAMES, HELD_OUT, LABELS, MOSAIC, ROOT
from qgis_landcover.core.accuracy.agreement import assess_agreement
from qgis_landcover.core.accuracy.remap import apply_remap
from qgis_landcover.core.accuracy.statistics import AgreementStatistics
from qgis_landcover.core.accuracy.value_codes import ClassRule
from qgis_landcover.core.adaptation.adapt import AdaptOptions, AdaptResult, adapt_model
from qgis_landcover.core.adaptation.features import LabelPoints
from qgis_landcover.core.adaptation.fit import MIN_LABELS_PER_CLASS
from qgis_landcover.core.errors import InputError
from qgis_landcover.core.inference.classified_output import OutputPaths
from qgis_landcover.core.inference.classify import classify
from qgis_landcover.core.inference.gdal_source import GdalImageSource
from qgis_landcover.core.inference.image_source import Extent
from qgis_landcover.core.inference.pipeline import ClassifyOptions
from qgis_landcover.core.progress import NullProgress
from qgis_landcover.core.raster.class_raster import open_class_band
from qgis_landcover.core.raster.grid import Bounds, Grid, Window, aligned_windows
from qgis_landcover.core.raster.reading import open_raster, raster_grid, read_window
from qgis_landcover.core.raster.writing import create_geotiff
from qgis_landcover.core.sampling.design import count_classes, draw_stratified, pixel_centres
from qgis_landcover.core.sampling.uncertainty import suggest_points

MODELS = ROOT / "qgis_landcover" / "models"
UNADAPTED = MODELS / "azure_2018_unet.onnx"
FINETUNED = MODELS / "azure_2018_unet_finetuned.onnx"
TRAIN = Window(0, 0, 768, 512)
"""The left three patch columns: where labels come from."""
REMAP = {5: 4, 6: 4, 15: 0}
"""Chesapeake 7 classes -> the model's 4 (0 = no data)."""
SIZES = (25, 50, 100, 200, 500)
SEEDS = (0, 1, 2, 3, 4)
OPTIONS = ClassifyOptions(device="cpu", overviews=False)


@dataclass(frozen=True)
class Labels:
    """Labelled pixels: centres (x, y) in the mosaic's CRS and reference classes."""

    xs: np.ndarray
    ys: np.ndarray
    classes: np.ndarray

    def per_class(self) -> dict[int, int]:
        values, counts = np.unique(self.classes, return_counts=True)
        return {int(v): int(n) for v, n in zip(values, counts, strict=True)}

    def without_rare(self) -> Labels:
        """Without the classes that have fewer labels than the adaptation needs (a user
        would remove them too)."""
        counts = self.per_class()
        keep = np.isin(self.classes, [c for c, n in counts.items() if n >= MIN_LABELS_PER_CLASS])
        return Labels(self.xs[keep], self.ys[keep], self.classes[keep])

    def __add__(self, other: Labels) -> Labels:
        return Labels(
            np.concatenate([self.xs, other.xs]),
            np.concatenate([self.ys, other.ys]),
            np.concatenate([self.classes, other.classes]),
        )


@dataclass(frozen=True)
class Score:
    """Agreement on the held-out column."""

    overall_accuracy: float
    kappa: float
    mean_iou: float
    iou: dict[str, float | None]

    @staticmethod
    def of(statistics_: AgreementStatistics) -> Score:
        iou: dict[str, float | None] = {}
        for value, name in CLASS_NAMES.items():
            record = statistics_.class_accuracy(value)
            iou[name] = record.iou if record is not None and record.reference > 0 else None
        return Score(
            float(statistics_.overall_accuracy or 0.0),
            float(statistics_.kappa.value or 0.0),
            float(statistics_.mean_iou or 0.0),
            iou,
        )


@dataclass(frozen=True)
class Run:
    """One evaluated model.

    Attributes:
        adapt_seconds: wall time of the adaptation; with ``shares_measured`` it includes
            classifying the left columns for their class shares (the prior shift), as a
            user's run does; without, the shares of the first run were given.
        cv_accuracy: the adaptation's own cross-validated accuracy on its labels.
    """

    method: str
    n: int
    seed: int | None
    labels_per_class: dict[int, int]
    adapt_seconds: float | None
    shares_measured: bool | None
    cv_accuracy: float | None
    score: Score


def window_bounds(window: Window) -> Bounds:
    return raster_grid(open_raster(LABELS)).window_grid(window).bounds


def training_reference(folder: Path) -> Path:
    """The left columns' reference with the model's classes (nodata 0), as a GeoTIFF."""
    path = folder / "train_reference.tif"
    if path.exists():
        return path
    labels = open_raster(LABELS)
    grid = raster_grid(labels).window_grid(TRAIN)
    values = apply_remap(read_window(labels, TRAIN, 1), REMAP).astype(np.uint8)
    dataset = create_geotiff(path, grid, 1, gdal.GDT_Byte, nodata=0)
    dataset.GetRasterBand(1).WriteArray(values)
    dataset = None
    return path


def random_labels(reference: Path, n: int, seed: int) -> Labels:
    """``n`` stratified random points, equal numbers per reference class (the first
    classes get one more when ``n`` does not divide)."""
    band = open_class_band(reference, None, "reference")
    windows = aligned_windows(band.grid.full_window, band.block_size)
    counts = count_classes(band, ClassRule.build({}, {0}, ()), windows, NullProgress())
    classes = sorted(counts)
    sizes = {c: n // len(classes) + (i < n % len(classes)) for i, c in enumerate(classes)}
    rows, cols, values = draw_stratified(
        band, sizes, counts, windows, np.random.default_rng(seed), NullProgress()
    )
    xs, ys = pixel_centres(band.grid, rows, cols)
    return Labels(xs, ys, values)


def simple_random_labels(reference: Path, n: int, seed: int) -> Labels:
    """``n`` points uniformly at random over the labelled pixels of the left columns:
    what labelling random places gives, without knowing the classes beforehand (the
    stratified draw of :func:`random_labels` needs the reference to stratify)."""
    dataset = open_raster(reference)
    grid = raster_grid(dataset)
    values = read_window(dataset, grid.full_window, 1).ravel()
    chosen = np.sort(
        np.random.default_rng(seed).choice(np.flatnonzero(values != 0), n, replace=False)
    )
    rows, cols = np.divmod(chosen, grid.width)
    xs, ys = pixel_centres(grid, rows, cols)
    return Labels(xs, ys, values[chosen].astype(np.int64))


def reference_at(reference: Path, xs: np.ndarray, ys: np.ndarray) -> Labels:
    """The reference class at points (x, y); points on nodata are dropped."""
    dataset = open_raster(reference)
    grid: Grid = raster_grid(dataset)
    values = read_window(dataset, grid.full_window, 1)
    x0, dx, _, y0, _, dy = grid.geotransform
    cols = np.floor((xs - x0) / dx).astype(int)
    rows = np.floor((ys - y0) / dy).astype(int)
    classes = values[rows, cols].astype(np.int64)
    keep = classes != 0
    return Labels(xs[keep], ys[keep], classes[keep])


def suggested_labels(model: Path, reference: Path, n: int, exclude: Labels | None = None) -> Labels:
    """``n`` points the model is least sure of in the left columns, labelled from the
    reference (points on nodata dropped); points of ``exclude`` (labelled before) are
    left out and replaced by the next ones."""
    taken = (
        set()
        if exclude is None
        else set(zip(exclude.xs.tolist(), exclude.ys.tolist(), strict=True))
    )
    points = suggest_points(
        GdalImageSource(MOSAIC),
        model,
        n + len(taken),
        extent=Extent(window_bounds(TRAIN)),
        options=OPTIONS,
    )
    new = np.array(
        [(x, y) not in taken for x, y in zip(points.xs.tolist(), points.ys.tolist(), strict=True)]
    )
    keep = np.flatnonzero(new)[:n]
    return reference_at(reference, points.xs[keep], points.ys[keep])


def score(model: Path, folder: Path, name: str) -> Score:
    """Classify the held-out column with ``model`` and score it against the reference."""
    output = folder / f"{name}_classified.tif"
    classify(
        GdalImageSource(MOSAIC),
        model,
        OutputPaths(output),
        extent=Extent(window_bounds(HELD_OUT)),
        options=OPTIONS,
    )
    return agreement(output)


def agreement(classified: Path) -> Score:
    report = assess_agreement(
        classified, LABELS, extent=window_bounds(HELD_OUT), reference_remap=REMAP
    )
    return Score.of(report.statistics)


def majority_score(folder: Path) -> Score:
    """A map of the held-out column's most frequent reference class everywhere."""
    labels = open_raster(LABELS)
    values = apply_remap(read_window(labels, HELD_OUT, 1), REMAP)
    present = values[values != 0]
    majority = int(np.bincount(present).argmax())
    path = folder / "majority_classified.tif"
    grid = raster_grid(labels).window_grid(HELD_OUT)
    dataset = create_geotiff(path, grid, 1, gdal.GDT_Byte, nodata=0)
    dataset.GetRasterBand(1).WriteArray(
        np.full(grid.height * grid.width, majority, np.uint8).reshape(grid.height, grid.width)
    )
    dataset = None
    return agreement(path)


def adapt(
    model: Path,
    labels: Labels,
    output: Path,
    shares: dict[int, float] | None = None,
    *,
    window: Window | None = TRAIN,
    prior_shift: bool = True,
) -> AdaptResult:
    """Adapt ``model`` to ``labels`` with the core adaptation into ``output``, for the
    extent ``window`` of the mosaic (``None``: all of it; by default the left columns).
    The prior shift uses ``shares`` ({class value: share}) or, when ``None``, measures
    them on the unadapted model's map of that extent (what a user's run does; the same
    numbers every time, so later runs reuse them)."""
    return adapt_model(
        GdalImageSource(MOSAIC),
        model,
        LabelPoints(labels.xs, labels.ys, labels.classes),
        output,
        extent=Extent(window_bounds(window)) if window is not None else None,
        options=AdaptOptions(device="cpu", area_shares=shares, prior_shift=prior_shift),
    )


def adapted_run(
    method: str,
    n: int,
    seed: int | None,
    labels: Labels,
    folder: Path,
    shares: dict[int, float] | None,
    **variant: Any,
) -> tuple[Run, AdaptResult]:
    """Adapt the unadapted model to ``labels`` (timed; ``variant``: :func:`adapt`'s
    ``window`` and ``prior_shift``) and score the adapted model."""
    name = re.sub(r"[^a-z0-9]+", "_", method.lower()).strip("_") + f"_n{n}"
    name += f"_s{seed}" if seed is not None else ""
    output = folder / f"{name}.onnx"
    started = time.perf_counter()
    result = adapt(UNADAPTED, labels, output, shares, **variant)
    seconds = time.perf_counter() - started
    run = Run(
        method,
        n,
        seed,
        labels.per_class(),
        seconds,
        shares is None and variant.get("prior_shift", True),
        result.cv_accuracy,
        score(output, folder, name),
    )
    return run, result


def save(runs: Sequence[Run], notes: Sequence[str], folder: Path) -> None:
    """``results.json`` (every run, and the label sets that could not be adapted) and
    ``results.md`` (the table and those notes)."""
    document = {"runs": [asdict(r) for r in runs], "not_adapted": list(notes)}
    (folder / "results.json").write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    text = markdown(runs) + "".join(f"\n- not adapted: {note}" for note in notes)
    (folder / "results.md").write_text(text + "\n", encoding="utf-8")


def _mean_sd(values: Sequence[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}"


def markdown(runs: Sequence[Run]) -> str:
    """Mean ± standard deviation over seeds of each (method, N)."""
    groups: dict[tuple[str, int], list[Run]] = {}
    for run in runs:
        groups.setdefault((run.method, run.n), []).append(run)
    lines = [
        "| model | labels N | runs | labels per class (mean) | overall accuracy | kappa | "
        "mean IoU | IoU low vegetation | CV accuracy | adapt time (s) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for (method, n), group in groups.items():
        low = [r.score.iou.get("low vegetation") or 0.0 for r in group]
        seconds = [r.adapt_seconds for r in group if r.adapt_seconds is not None]
        cv = [r.cv_accuracy for r in group if r.cv_accuracy is not None]
        classes = sorted({c for r in group for c in r.labels_per_class})
        per_class = ", ".join(
            f"{c}: {statistics.mean(r.labels_per_class.get(c, 0) for r in group):g}"
            for c in classes
        )
        lines.append(
            f"| {method} | {n or '-'} | {len(group)} | {per_class or '-'} | "
            f"{_mean_sd([r.score.overall_accuracy for r in group])} | "
            f"{_mean_sd([r.score.kappa for r in group])} | "
            f"{_mean_sd([r.score.mean_iou for r in group])} | {_mean_sd(low)} | "
            + (f"{statistics.mean(cv):.3f}" if cv else "-")
            + " | "
            + (f"{statistics.mean(seconds):.1f}" if seconds else "-")
            + " |"
        )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m model_training.release.evaluate_adaptation",
        description="Adaptation from N labelled points vs the unadapted, fine-tuned and "
        "majority-class maps on the mosaic's held-out column.",
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    parser.add_argument(
        "--suggested-sizes",
        type=int,
        nargs="*",
        default=[50, 100, 200, 500],
        help="N for the uncertainty loop (one and two rounds); none to skip it",
    )
    parser.add_argument(
        "--ablations",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also adapt the random label sets with the whole mosaic's map shares and "
        "without the prior shift",
    )
    parser.add_argument("--output-dir", type=Path, default=ROOT / "runs" / "adaptation_eval")
    args = parser.parse_args(argv)
    folder: Path = args.output_dir
    folder.mkdir(parents=True, exist_ok=True)
    reference = training_reference(folder)
    runs: list[Run] = [
        Run("unadapted", 0, None, {}, None, None, None, score(UNADAPTED, folder, "unadapted")),
        Run(
            "fine-tuned (azure-2018-unet-finetuned)",
            0,
            None,
            {},
            None,
            None,
            None,
            score(FINETUNED, folder, "finetuned"),
        ),
        Run("majority class", 0, None, {}, None, None, None, majority_score(folder)),
    ]
    notes: list[str] = []
    save(runs, notes, folder)
    shares: dict[int, float] | None = None
    for n in args.sizes:
        for seed in args.seeds:
            labels = random_labels(reference, n, seed)
            # The shares are measured in the first run and in every run of the largest
            # N (the adaptation time reported is then a user's whole run).
            measure = shares is None or n == max(args.sizes)
            run, result = adapted_run(
                "adapted, random points", n, seed, labels, folder, None if measure else shares
            )
            shares = result.area_shares
            runs.append(run)
            save(runs, notes, folder)
            print(f"random n={n} seed={seed}: {run.score} in {run.adapt_seconds:.1f} s", flush=True)
    for n in args.suggested_sizes:
        for seed in args.seeds:
            labels = simple_random_labels(reference, n, seed).without_rare()
            try:
                run, _ = adapted_run(
                    "adapted, simple random points", n, seed, labels, folder, shares
                )
            except InputError as error:  # e.g. labels of one class only
                notes.append(f"simple random points, N = {n}, seed {seed}: {error}")
                continue
            runs.append(run)
            save(runs, notes, folder)
    for n in args.suggested_sizes:
        labels = suggested_labels(UNADAPTED, reference, n).without_rare()
        try:
            run, _ = adapted_run(
                "adapted, suggested points (1 round)", n, None, labels, folder, shares
            )
            runs.append(run)
        except InputError as error:
            notes.append(f"suggested points (1 round), N = {n}: {error}")
        # Two rounds: N/2 suggested by the unadapted model, adapt; N/2 more suggested by
        # the adapted model (labels already taken left out), adapt on all N.
        first = suggested_labels(UNADAPTED, reference, n // 2)
        try:
            halfway = folder / f"round1_n{n}.onnx"
            adapt(UNADAPTED, first.without_rare(), halfway, shares)
            second = suggested_labels(halfway, reference, n - n // 2, exclude=first)
            run, _ = adapted_run(
                "adapted, suggested points (2 rounds)",
                n,
                None,
                (first + second).without_rare(),
                folder,
                shares,
            )
            runs.append(run)
        except InputError as error:
            notes.append(f"suggested points (2 rounds), N = {n}: {error}")
        save(runs, notes, folder)
        print(f"suggested n={n} done", flush=True)
    if args.ablations:
        # The prior shift's area shares from the unadapted map of the whole mosaic (the
        # area a user classifies, held-out column included; no reference is read), and
        # no prior shift at all.
        whole: dict[int, float] | None = None
        for n in args.sizes:
            for seed in args.seeds:
                labels = random_labels(reference, n, seed)
                run, result = adapted_run(
                    "adapted, random points, shares of the whole mosaic's map",
                    n,
                    seed,
                    labels,
                    folder,
                    whole,
                    window=None,
                )
                whole = result.area_shares
                runs.append(run)
                run, _ = adapted_run(
                    "adapted, random points, no prior shift",
                    n,
                    seed,
                    labels,
                    folder,
                    None,
                    prior_shift=False,
                )
                runs.append(run)
                save(runs, notes, folder)
            print(f"ablations n={n} done", flush=True)
    print((folder / "results.md").read_text(encoding="utf-8"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
