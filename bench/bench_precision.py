# SPDX-License-Identifier: GPL-2.0-or-later
"""Benchmark of issue #13 (throughput of the default model on the CPU), side by side in
one run and printed as ratios:

- ``today``: the behaviour before issue 13, forced: tile 256, batch 4, stripes of 4096 px,
  the fp32 file, an ONNX Runtime session with the options of before (``ORT_ENABLE_ALL``,
  ORT's own thread count, errors-only log), built here so that later session defaults
  do not leak in;
- ``auto fp32``: the core's automatic settings (``ClassifyOptions()`` and
  :func:`~qgis_landcover.core.inference.session.load_session`) on the fp32 file;
- ``auto int8``: the same on the catalogue's int8 variant of the default model (or a file
  given with ``--int8-model``); when there is none the run says so and skips it.

For each: end-to-end Mpx/s (core ``classify`` on a ``--extent`` x ``--extent`` VRT of the
shipped 1 m mosaic, in a fresh process), model-only Mpx/s (the same session on the very
batches the pipeline fed it, recorded to disk during the run, timed afterwards and scaled
to the tiles the run needed), their ratio (target >= 0.8), the speedup over ``today``
(targets >= 3.5x fp32, >= 7x int8), the multiply-accumulates per second achieved against
the network's MAC count per tile (Conv / ConvTranspose / MatMul of the ONNX graph), and
overall accuracy, kappa and mean IoU on the shipped mosaic against its Chesapeake labels
(5, 6 -> 4 as ``scripts/demo.sh``; target within 0.005 of today). Peak RSS of the auto
setting is measured in fresh processes (VmHWM) at ``--extent`` and ``--rss-large``
(default 8192: the issue's target, <= 450 MB and flat within 10 %; with the int8
variant about 3 minutes on 2 idle cores).

Run: ``python bench/bench_precision.py [--extent 2048] [--rss-large 8192]
[--int8-model FILE]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_classify import MOSAIC, build_vrt, peak_rss_mb, run_script_worker  # noqa: E402

LABELS = MOSAIC.with_name(MOSAIC.name.replace("_naip.tif", "_labels.tif"))
REFERENCE_REMAP = {5: 4, 6: 4}
TODAY_TILE_SIZE = 256
TODAY_BATCH_SIZE = 4
TARGET_RATIO = 0.8
TARGET_SPEEDUP = {"fp32": 3.5, "int8": 7.0}
TARGET_ACCURACY_DELTA = 0.005
TARGET_RSS_MB = 450.0
FLAT_TOLERANCE = 0.10
RECORDED_BATCHES = 3
"""Batches of the pipeline saved for the model-only timing (full batches only)."""


# --------------------------------------------------------------------------- models


def default_model(precision: str) -> Path | None:
    """The default model's file for ``precision`` through the core's one model
    resolution (catalogue variants), or ``None`` when it has no such variant."""
    from qgis_landcover.core.errors import InputError
    from qgis_landcover.core.models.resolve import resolve_model

    try:
        return resolve_model("", precision=precision)
    except InputError:
        return None


def auto_choice() -> str:
    """What ``PRECISION=auto`` resolves to on this CPU (the file name)."""
    chosen = default_model("auto")
    return chosen.name if chosen else "none"


def network_macs(model: Path, tile_size: int) -> int:
    """Multiply-accumulates of one ``tile_size`` x ``tile_size`` tile (batch 1): Conv,
    ConvTranspose and MatMul of the ONNX graph after shape inference."""
    import numpy as np
    import onnx
    from onnx import numpy_helper, shape_inference

    graph_model = onnx.load(str(model))
    dims = graph_model.graph.input[0].type.tensor_type.shape.dim
    for index, value in ((0, 1), (2, tile_size), (3, tile_size)):
        dims[index].ClearField("dim_param")
        dims[index].dim_value = value
    inferred = shape_inference.infer_shapes(graph_model)
    graph = inferred.graph
    shapes = {
        v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
        for v in [*graph.value_info, *graph.input, *graph.output]
    }
    for initializer in graph.initializer:
        shapes[initializer.name] = list(numpy_helper.to_array(initializer).shape)
    total = 0
    for node in graph.node:
        if node.op_type == "Conv":
            weight, out = shapes[node.input[1]], shapes[node.output[0]]
            total += int(np.prod(out[2:])) * int(np.prod(weight))
        elif node.op_type == "ConvTranspose":
            weight, inp = shapes[node.input[1]], shapes[node.input[0]]
            total += int(np.prod(inp[2:])) * int(np.prod(weight))
        elif node.op_type == "MatMul":
            left, right = shapes[node.input[0]], shapes[node.input[1]]
            total += int(np.prod(left)) * int(right[-1])
    return total


# --------------------------------------------------------------------------- workers


def today_session(model: Path) -> Any:
    """A :class:`ModelSession` whose ONNX Runtime session has the options of before
    issue 13 (``ORT_ENABLE_ALL``, default threads and arena, errors-only log)."""
    import onnxruntime as ort

    from qgis_landcover.core.inference import session as core_session

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    plain = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    # The core's validation of a session (one way to build a ModelSession); only this
    # session is in memory, so the peak RSS is that of before.
    digest = core_session.model_digest(model)
    return core_session._validated(model, digest, "cpu", "CPUExecutionProvider", plain)


class RecordingSession:
    """Wraps an ONNX Runtime session: counts the batches and their shapes and saves the
    first :data:`RECORDED_BATCHES` full ones to ``folder`` (disk, not memory, so that the
    peak RSS stays the pipeline's)."""

    def __init__(self, inner: Any, folder: Path | None) -> None:
        self.inner = inner
        self.folder = folder
        self.shapes: dict[tuple[int, ...], int] = {}
        self.saved = 0
        self.largest_batch = 0

    def run(self, names: Any, feeds: dict[str, Any], *rest: Any) -> Any:
        import numpy as np

        (batch,) = feeds.values()
        shape = tuple(int(s) for s in batch.shape)
        self.shapes[shape] = self.shapes.get(shape, 0) + 1
        self.largest_batch = max(self.largest_batch, shape[0])
        if (
            self.folder is not None
            and self.saved < RECORDED_BATCHES
            and shape[0] == self.largest_batch
        ):
            np.save(self.folder / f"batch{self.saved}.npy", batch)
            self.saved += 1
        return self.inner.run(names, feeds, *rest)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def worker_classify(args: argparse.Namespace) -> dict[str, Any]:
    """One classify run in this (fresh) process; then, if asked, the model alone."""
    import numpy as np
    from osgeo import gdal

    from qgis_landcover.core.inference.classified_output import OutputPaths
    from qgis_landcover.core.inference.classify import classify
    from qgis_landcover.core.inference.gdal_source import GdalImageSource
    from qgis_landcover.core.inference.image_source import Extent
    from qgis_landcover.core.inference.pipeline import ClassifyOptions
    from qgis_landcover.core.inference.session import load_session
    from qgis_landcover.core.inference.tile_plan import DEFAULT_STRIPE_WIDTH

    started_load = time.perf_counter()
    if args.setting == "today":
        session = today_session(Path(args.model))
        options = ClassifyOptions(
            tile_size=TODAY_TILE_SIZE,
            batch_size=TODAY_BATCH_SIZE,
            stripe_width=DEFAULT_STRIPE_WIDTH,
        )
    else:
        session = load_session(args.model, "auto")
        options = ClassifyOptions()
    load_seconds = time.perf_counter() - started_load
    record = Path(args.record) if args.record else None
    recorder = RecordingSession(session.session, record)
    session = dataclasses.replace(session, session=recorder)

    dataset = gdal.Open(args.input)
    x0, dx, _, y0, _, dy = dataset.GetGeoTransform()
    width = args.extent or dataset.RasterXSize
    height = args.extent or dataset.RasterYSize
    bounds = (x0, y0 + height * dy, x0 + width * dx, y0)
    started = time.perf_counter()
    result = classify(
        GdalImageSource(dataset), session, OutputPaths(Path(args.output)),
        extent=Extent(bounds), options=options,
    )  # fmt: skip
    seconds = time.perf_counter() - started
    rss = peak_rss_mb()
    report: dict[str, Any] = {
        "pixels": result.grid.width * result.grid.height,
        "seconds": seconds,
        "load_seconds": load_seconds,
        "model_seconds": result.model_seconds,
        "tiles": result.tiles_run,
        "shapes": {"x".join(map(str, k)): v for k, v in recorder.shapes.items()},
        "provider": result.execution_provider,
        "peak_rss_mb": rss,
    }
    if record is not None and recorder.saved:
        batches = [np.load(record / f"batch{i}.npy") for i in range(recorder.saved)]
        inner, name_in, name_out = recorder.inner, session.input_name, session.output_name
        inner.run([name_out], {name_in: batches[0]})  # warm-up
        tiles = 0
        began = time.perf_counter()
        while time.perf_counter() - began < args.model_seconds:
            for batch in batches:
                inner.run([name_out], {name_in: batch})
                tiles += batch.shape[0]
        report["model_tiles_per_second"] = tiles / (time.perf_counter() - began)
        report["model_tile_size"] = int(batches[0].shape[-1])
        report["model_batch"] = int(batches[0].shape[0])
    if args.labels:
        from qgis_landcover.core.accuracy.agreement import assess_agreement

        statistics = assess_agreement(
            args.output, args.labels, reference_remap=REFERENCE_REMAP
        ).statistics
        report["overall_accuracy"] = statistics.overall_accuracy
        report["kappa"] = statistics.kappa.value
        report["mean_iou"] = statistics.mean_iou
    return report


def run_worker(**values: Any) -> dict[str, Any]:
    """Run :func:`worker_classify` in a fresh Python (its own peak RSS); its JSON."""
    return run_script_worker(__file__, **values)


# --------------------------------------------------------------------------- main


def fmt(value: float | None, digits: int = 4) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--extent", type=int, default=2048, help="side timed, pixels")
    parser.add_argument(
        "--rss-large", type=int, default=8192, help="larger side for the RSS check (0: skip)"
    )
    parser.add_argument("--int8-model", default="", help="int8 file (default: the catalogue's)")
    parser.add_argument("--model-seconds", type=float, default=8.0, help="model-only timing")
    parser.add_argument("--worker", action="store_true")
    parser.add_argument("--setting", choices=("today", "auto"))
    parser.add_argument("--model")
    parser.add_argument("--input")
    parser.add_argument("--extent-worker", dest="extent_worker", type=int, default=0)
    parser.add_argument("--output")
    parser.add_argument("--record", default="")
    parser.add_argument("--labels", default="")
    args = parser.parse_args()
    if args.worker:
        args.extent = args.extent_worker
        print(json.dumps(worker_classify(args)))
        return 0

    fp32 = default_model("fp32")
    if fp32 is None:
        raise SystemExit("The default model has no fp32 file in the catalogue.")
    int8 = Path(args.int8_model) if args.int8_model else default_model("int8")
    settings = [("today", "today", fp32), ("auto fp32", "auto", fp32)]
    if int8 is not None:
        settings.append(("auto int8", "auto", int8))
    print(
        f"Model: {fp32.name}; CPU cores: {os.cpu_count()}; load average "
        f"{os.getloadavg()[0]:.2f} (1 min) at the start; PRECISION=auto here: {auto_choice()}."
    )
    if int8 is None:
        print(
            "int8: the catalogue has no int8 variant of the default model: skipped "
            "(--int8-model FILE times one)."
        )
    else:
        print(f"int8: {int8}")
    print(f"today = tile {TODAY_TILE_SIZE}, batch {TODAY_BATCH_SIZE}, stripes of 4096 px, fp32, "
          "ORT options of before issue 13; auto = ClassifyOptions() and load_session "
          "defaults. RSS: peak VmHWM of each fresh worker process, MiB.")  # fmt: skip

    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="bench_precision_") as folder_name:
        folder = Path(folder_name)
        vrt = build_vrt(folder / "mosaic.vrt", max(args.extent, args.rss_large))
        print(f"Input: {MOSAIC.name} repeated into a VRT; timed extent {args.extent}^2 px.")
        for label, setting, model in settings:
            record = folder / f"record_{setting}_{model.stem}"
            record.mkdir()
            run = run_worker(
                setting=setting, model=model, input=vrt, extent_worker=args.extent,
                output=folder / "timed.tif", record=record, model_seconds=args.model_seconds,
            )  # fmt: skip
            mosaic = run_worker(
                setting=setting, model=model, input=MOSAIC, extent_worker=0,
                output=folder / "mosaic.tif", labels=LABELS,
            )  # fmt: skip
            run.update({k: mosaic[k] for k in ("overall_accuracy", "kappa", "mean_iou")})
            results[label] = run
            print(f"  ran {label}: {run['seconds']:.1f} s, batches {run['shapes']}", flush=True)
        rss: dict[int, float] = {}
        last_label, last_setting, last_model = settings[-1]
        if args.rss_large:
            rss[args.extent] = results[last_label]["peak_rss_mb"]
            big = run_worker(
                setting=last_setting, model=last_model, input=vrt, extent_worker=args.rss_large,
                output=folder / "large.tif",
            )  # fmt: skip
            rss[args.rss_large] = big["peak_rss_mb"]

    macs_cache: dict[int, int] = {}
    today = results["today"]
    today_mpx = today["pixels"] / today["seconds"] / 1e6
    print()
    print(f"{'setting':<10} {'tile':>5} {'batch':>5} {'e2e Mpx/s':>9} {'model Mpx/s':>11} "
          f"{'e2e/model':>9} {'vs today':>8} {'GMAC/tile':>9} {'GMAC/s':>7} {'OA':>7} "
          f"{'kappa':>7} {'mIoU':>7} {'RSS MB':>6}")  # fmt: skip
    verdicts = []
    for label, _setting, _model in settings:
        run = results[label]
        tile = run.get("model_tile_size", 0)
        if tile and tile not in macs_cache:
            macs_cache[tile] = network_macs(fp32, tile)
        macs = macs_cache.get(tile, 0)
        e2e = run["pixels"] / run["seconds"] / 1e6
        tiles_per_s = run.get("model_tiles_per_second", 0.0)
        model_seconds = run["tiles"] / tiles_per_s if tiles_per_s else float("nan")
        model_mpx = run["pixels"] / model_seconds / 1e6
        ratio = e2e / model_mpx
        speedup = e2e / today_mpx
        print(f"{label:<10} {tile:>5} {run.get('model_batch', 0):>5} {e2e:>9.3f} "
              f"{model_mpx:>11.3f} {ratio:>9.2f} {speedup:>7.2f}x {macs / 1e9:>9.2f} "
              f"{tiles_per_s * macs / 1e9:>7.1f} {fmt(run['overall_accuracy'])} "
              f"{fmt(run['kappa'])} {fmt(run['mean_iou'])} {run['peak_rss_mb']:>6.0f}")  # fmt: skip
        verdicts.append(f"{label}: e2e/model {ratio:.2f} (>= {TARGET_RATIO}) "
                        f"{'PASS' if ratio >= TARGET_RATIO else 'FAIL'}")  # fmt: skip
        if label != "today":
            precision = label.split()[-1]
            target = TARGET_SPEEDUP[precision]
            delta = abs(run["overall_accuracy"] - today["overall_accuracy"])
            verdicts.append(
                f"{label}: {speedup:.2f}x today (>= {target}x) "
                f"{'PASS' if speedup >= target else 'FAIL'}; accuracy {delta:+.4f} from "
                f"today's {today['overall_accuracy']:.4f} (within {TARGET_ACCURACY_DELTA}) "
                f"{'PASS' if delta <= TARGET_ACCURACY_DELTA else 'FAIL'}"
            )
    print()
    for macs_tile, macs in sorted(macs_cache.items()):
        output = macs_tile - 2 * 64
        print(f"MAC count: tile {macs_tile}: {macs / 1e9:.2f} GMAC, "
              f"{macs / macs_tile**2 / 1e3:.0f} kMAC/input px, "
              f"{macs / max(output, 1) ** 2 / 1e3:.0f} kMAC/output px (margin 64), "
              f"{1 - output**2 / macs_tile**2:.0%} of the input in margins.")  # fmt: skip
    for line in verdicts:
        print(line)
    if rss:
        small, large = rss[args.extent], rss[args.rss_large]
        flat = large / small
        print(
            f"Peak RSS ({last_label}): {large:.0f} MB for {args.rss_large}^2 vs {small:.0f} MB "
            f"for {args.extent}^2 (x{flat:.2f}; target <= {TARGET_RSS_MB:.0f} MB, flat within "
            f"{FLAT_TOLERANCE:.0%}) "
            f"{'PASS' if large <= TARGET_RSS_MB and flat <= 1 + FLAT_TOLERANCE else 'FAIL'}"
        )
    print(f"Load average at the end: {os.getloadavg()[0]:.2f} (1 min).")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
