# SPDX-License-Identifier: GPL-2.0-or-later
"""Compare land-cover models on the same held-out pixels, through the plugin itself.

Each model classifies the held-out window with ``landcover:classify`` and the result is
scored with ``landcover:agreement`` against the reference labels, both run by
``scripts/qgis_process`` (the plugin's own path, as a user would run it). Every model
sees exactly the same pixels; the report gives overall accuracy, kappa, mean and
per-class IoU, and the classify wall time.

Default data: the real 1 m NAIP / Chesapeake mosaic in ``data/chesapeake_1m_patches``,
held-out window = its right patch column (patches 3 and 7, pixels 768-1023 x 0-511),
which ``model_training/configs/demo_cpu.yaml`` and ``finetune_2018.yaml`` never train
on. Usage::

    python -m model_training.release.evaluate_models \\
        --model azure-2018-unet=qgis_landcover/models/azure_2018_unet.onnx \\
        --model unet-scratch=runs/demo/model.onnx --output-dir runs/evaluation

writes ``report.md`` (the table) and ``report.json`` (each model's full
``landcover:agreement`` statistics, with the image, window and remap), from which
:func:`heldout_section` writes the model cards' evaluation section.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import astuple, dataclass
from pathlib import Path
from typing import Any

from osgeo import osr

from qgis_landcover.core.accuracy.agreement import AgreementReport
from qgis_landcover.core.accuracy.statistics import AgreementStatistics
from qgis_landcover.core.raster.grid import Window
from qgis_landcover.core.raster.reading import open_raster, raster_grid

ROOT = Path(__file__).resolve().parents[2]
QGIS_PROCESS = ROOT / "scripts" / "qgis_process"
MOSAIC = ROOT / "data" / "chesapeake_1m_patches" / "m_3708020_sw_17_1_2014_mosaic_naip.tif"
LABELS = MOSAIC.with_name("m_3708020_sw_17_1_2014_mosaic_labels.tif")
HELD_OUT = Window(768, 0, 256, 512)
#: Chesapeake 7-class labels -> the 4 model classes; 15 (no data) -> 0 (ignored).
REFERENCE_REMAP = "5:4,6:4,15:0"
CLASS_NAMES = {1: "water", 2: "tree canopy", 3: "low vegetation", 4: "barren and impervious"}


@dataclass(frozen=True)
class Evaluation:
    """One model's agreement (the ``landcover:agreement`` JSON report, read back) and
    timing."""

    name: str
    model: str
    report: AgreementReport
    classify_seconds: float
    classified: Path


def class_iou(statistics: AgreementStatistics, value: int) -> float | None:
    """IoU of class ``value``; ``None`` when the class is absent from the reference (a
    few pixels mapped to it give IoU 0, which says nothing about the class)."""
    record = statistics.class_accuracy(value)
    return record.iou if record is not None and record.reference > 0 else None


def qgis_process(algorithm: str, parameters: dict[str, str]) -> dict[str, Any]:
    """Run ``landcover:<algorithm>`` with ``scripts/qgis_process --json``; its results."""
    arguments = [f"{key}={value}" for key, value in parameters.items()]
    completed = subprocess.run(
        [str(QGIS_PROCESS), "--json", "run", f"landcover:{algorithm}", "--", *arguments],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "QT_QPA_PLATFORM": "offscreen"},
    )
    start = completed.stdout.find("{")
    if completed.returncode != 0 or start < 0:
        raise RuntimeError(
            f"landcover:{algorithm} failed ({completed.returncode}):\n"
            f"{completed.stdout[-2000:]}\n{completed.stderr[-2000:]}"
        )
    return json.loads(completed.stdout[start:])["results"]


def window_extent(raster: Path, window: Window) -> str:
    """``window`` of ``raster`` as a Processing extent string ``xmin,xmax,ymin,ymax [CRS]``."""
    grid = raster_grid(open_raster(raster))
    xmin, ymin, xmax, ymax = grid.window_grid(window).bounds
    srs = osr.SpatialReference(wkt=grid.crs_wkt)
    srs.AutoIdentifyEPSG()
    authority, code = srs.GetAuthorityName(None), srs.GetAuthorityCode(None)
    crs = f" [{authority}:{code}]" if authority and code else ""
    return f"{xmin!r},{xmax!r},{ymin!r},{ymax!r}{crs}"


def evaluate(
    name: str,
    model: str,
    output_dir: Path,
    image: Path = MOSAIC,
    labels: Path = LABELS,
    window: Window = HELD_OUT,
    remap: str = REFERENCE_REMAP,
) -> Evaluation:
    """Classify ``window`` of ``image`` with ``model`` and score it against ``labels``."""
    extent = window_extent(labels, window)
    classified = output_dir / f"{name}_classified.tif"
    report = output_dir / f"{name}_agreement.json"
    started = time.perf_counter()
    qgis_process(
        "classify",
        {
            "INPUT": str(image),
            "EXTENT": extent,
            "MODEL": model,
            "DEVICE": "cpu",
            "OUTPUT": str(classified),
        },
    )
    seconds = time.perf_counter() - started
    qgis_process(
        "agreement",
        {
            "CLASSIFIED": str(classified),
            "REFERENCE": str(labels),
            "EXTENT": extent,
            "REFERENCE_REMAP": remap,
            "IGNORE_VALUES": "0",
            "OUTPUT_JSON": str(report),
            "OUTPUT_HTML": str(report.with_suffix(".html")),
        },
    )
    document = json.loads(report.read_text(encoding="utf-8"))
    return Evaluation(name, model, AgreementReport.from_json(document), seconds, classified)


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def report_markdown(report: dict[str, Any]) -> str:
    """A Markdown table of a :func:`report_json` report (same pixels for every model)."""
    models = report["models"]
    scored = {name: AgreementStatistics.from_json(entry) for name, entry in models.items()}
    pixels = {statistics.observations for statistics in scored.values()}
    header = ["model", "overall accuracy", "kappa", "mean IoU"]
    header += [f"IoU {name}" for name in CLASS_NAMES.values()]
    header += ["classify time (s)"]
    lines = [
        f"Held-out window (col, row, width, height) {tuple(report['window'])} of "
        f"`{Path(report['image']).name}`; {', '.join(f'{p:,}' for p in sorted(pixels))} "
        f"labelled pixels; reference remap `{report['reference_remap']}`; run through "
        "`landcover:classify` + `landcover:agreement` (rows = classification, columns = "
        "reference); IoU n/a: class absent from the reference pixels.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for name, statistics in scored.items():
        cells = [
            name,
            _number(statistics.overall_accuracy),
            _number(statistics.kappa.value),
            _number(statistics.mean_iou),
            *(_number(class_iou(statistics, value)) for value in CLASS_NAMES),
            f"{models[name]['classify_seconds']:.1f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def relative(path: str | Path) -> str:
    """``path`` relative to the repository when inside it (reports stay portable)."""
    try:
        return str(Path(path).resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def report_json(
    evaluations: Sequence[Evaluation], image: Path, labels: Path, window: Window
) -> dict[str, Any]:
    """The evaluation as JSON: what was scored, and each model's statistics."""
    return {
        "image": relative(image),
        "labels": relative(labels),
        "window": list(astuple(window)),
        "reference_remap": REFERENCE_REMAP,
        "models": {
            e.name: {
                "model": relative(e.model) if e.model else "",
                "classify_seconds": round(e.classify_seconds, 2),
                **e.report.to_json(),
            }
            for e in evaluations
        },
    }


def heldout_section(report: dict[str, Any], name: str) -> str:
    """The model card section for model ``name`` of a :func:`report_json` report."""
    statistics = AgreementStatistics.from_json(report["models"][name])
    col, row, width, height = report["window"]
    total = statistics.observations
    shares = ", ".join(
        f"{CLASS_NAMES[c.value]} {c.reference / total:.1%}"
        for c in statistics.classes
        if c.value in CLASS_NAMES and c.reference > 0
    )
    lines = [
        "## Measured accuracy: held-out pixels, through the plugin",
        "",
        "`landcover:classify` then `landcover:agreement` "
        "(`model_training/release/evaluate_models.py`, via `qgis_process`) "
        f"on pixels {col}-{col + width - 1} x {row}-{row + height - 1} "
        f"of `{report['image']}`: the right patch column of the mosaic (patches 3 and 7), "
        "which no training in this project used. Reference: Chesapeake 7-class labels "
        f"with `{report['reference_remap']}`; {total:,} labelled pixels ({shares}). "
        "The same pixels for every model; the comparison is in "
        "`model_training/release/EVALUATION.md`.",
        "",
        "| measure | value |",
        "|---|---|",
        f"| overall accuracy | **{_number(statistics.overall_accuracy)}** |",
        f"| Cohen's kappa | **{_number(statistics.kappa.value)}** |",
        f"| mean IoU (classes present) | {_number(statistics.mean_iou)} |",
    ]
    for value, class_name in CLASS_NAMES.items():
        iou = class_iou(statistics, value)
        text = "n/a (absent from these pixels)" if iou is None else _number(iou)
        lines.append(f"| IoU {class_name} | {text} |")
    majority = max(statistics.classes, key=lambda c: c.reference)
    lines += [
        "",
        f"A map of {CLASS_NAMES.get(majority.value, majority.value)} only (the "
        "majority class) would score overall accuracy "
        f"{majority.reference / total:.3f} and kappa 0 on these pixels: "
        "kappa and the per-class IoU say more than overall accuracy here. "
        "These pixels come from the same NAIP tile (and year) as the training patches, "
        "two 256 x 256 patches in all: a check of the model on unseen pixels, not of how "
        "it generalises to other places or years.",
    ]
    return "\n".join(lines) + "\n"


def _model_argument(text: str) -> tuple[str, str]:
    name, separator, model = text.partition("=")
    if not separator or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=MODEL, got {text!r}")
    return name, model


def _window_argument(text: str) -> Window:
    try:
        col, row, width, height = (int(v) for v in text.replace(" ", "").split(","))
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"expected COL,ROW,WIDTH,HEIGHT, got {text!r}") from error
    return Window(col, row, width, height)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m model_training.release.evaluate_models",
        description="Score models on the same held-out pixels via landcover:classify + "
        "landcover:agreement.",
    )
    parser.add_argument(
        "--model",
        dest="models",
        action="append",
        type=_model_argument,
        required=True,
        metavar="NAME=MODEL",
        help="a model: ONNX path, catalogue name or URL; empty for the default model (repeatable)",
    )
    parser.add_argument("--image", type=Path, default=MOSAIC)
    parser.add_argument("--labels", type=Path, default=LABELS)
    parser.add_argument(
        "--window",
        type=_window_argument,
        default=HELD_OUT,
        help="held-out window COL,ROW,WIDTH,HEIGHT in label pixels",
    )
    parser.add_argument("--output-dir", type=Path, default=ROOT / "runs" / "evaluation")
    args = parser.parse_args(argv)
    args.output_dir.mkdir(parents=True, exist_ok=True)
    evaluations = [
        evaluate(name, model, args.output_dir, args.image, args.labels, args.window)
        for name, model in args.models
    ]
    report = report_json(evaluations, args.image, args.labels, args.window)
    (args.output_dir / "report.json").write_text(
        json.dumps(report, indent=2) + "\n", encoding="utf-8"
    )
    markdown = report_markdown(report)
    (args.output_dir / "report.md").write_text(markdown, encoding="utf-8")
    print(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
