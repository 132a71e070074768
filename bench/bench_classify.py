# SPDX-License-Identifier: GPL-2.0-or-later
"""Benchmark of ``landcover:classify``'s core: end-to-end throughput against the model
alone, and peak memory for two extent sizes.

Input: the real 1 m NAIP mosaic (data/chesapeake_1m_patches, 1024 x 512 px) repeated
into a ``--size`` x ``--size`` VRT (default 8192 x 8192 = 67 Mpx, read lazily).

- end-to-end: :func:`qgis_landcover.core.inference.classify.classify` on the whole VRT (reading,
  normalisation, inference, blending, argmax, compressed GeoTIFF writing, overviews);
- model only: ONNX Runtime on pre-loaded, pre-normalised batches of the same tiles,
  the same batch size and session, scaled to the same tile plan;
- peak RSS of two runs in fresh processes, one stripe wide (memory grows with the
  width up to the blending stripe, then no more) and large; it must not grow.

On a GPU the runs cover 4096^2 and the whole input in 4096 px stripes; on the CPU,
1024^2 and 3072^2 in 1024 px stripes, so that the run takes minutes, not an hour
(``--small``, ``--large``, ``--stripe-width`` override).

Model: the catalogue's default model when installed, else a randomly initialised U-Net
of the training code's default size (``model_training.unet.UNet``; the weights do not
change the speed). Targets (issue #5): end-to-end >= 0.8 x model-only; peak RSS <=
1.5 GB and flat in the extent size.

Run: ``python bench/bench_classify.py [--size 8192] [--small 2048] [--device auto]``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MOSAIC = ROOT / "data" / "chesapeake_1m_patches" / "m_3708020_sw_17_1_2014_mosaic_naip.tif"
TARGET_RATIO = 0.8
TARGET_RSS_MB = 1536.0
FLAT_TOLERANCE = 0.10


def build_vrt(path: Path, size: int) -> Path:
    """A ``size`` x ``size`` VRT repeating the mosaic (lazy: no pixel is copied)."""
    from osgeo import gdal

    source = gdal.Open(str(MOSAIC))
    tile_w, tile_h = source.RasterXSize, source.RasterYSize
    x0, dx, _, y0, _, dy = source.GetGeoTransform()
    bands = []
    for band in range(1, source.RasterCount + 1):
        color = gdal.GetColorInterpretationName(source.GetRasterBand(band).GetColorInterpretation())
        sources = []
        for row in range(0, size, tile_h):
            for col in range(0, size, tile_w):
                width, height = min(tile_w, size - col), min(tile_h, size - row)
                sources.append(
                    f"<SimpleSource><SourceFilename relativeToVRT='0'>{escape(str(MOSAIC))}"
                    f"</SourceFilename><SourceBand>{band}</SourceBand>"
                    f"<SrcRect xOff='0' yOff='0' xSize='{width}' ySize='{height}'/>"
                    f"<DstRect xOff='{col}' yOff='{row}' xSize='{width}' ySize='{height}'/>"
                    "</SimpleSource>"
                )
        bands.append(
            f"<VRTRasterBand dataType='Byte' band='{band}'><ColorInterp>{color}</ColorInterp>"
            + "".join(sources)
            + "</VRTRasterBand>"
        )
    path.write_text(
        f"<VRTDataset rasterXSize='{size}' rasterYSize='{size}'>"
        f"<SRS>{escape(source.GetProjection())}</SRS>"
        f"<GeoTransform>{x0}, {dx}, 0, {y0}, 0, {dy}</GeoTransform>"
        + "".join(bands)
        + "</VRTDataset>",
        encoding="utf-8",
    )
    return path


def bench_model(choice: str, folder: Path) -> tuple[Path, str]:
    """The model to time and how to describe it: ``default`` (the catalogue's default
    model, else the U-Net), ``unet`` (a random U-Net) or an ONNX file."""
    from qgis_landcover.core.errors import InputError
    from qgis_landcover.core.models.resolve import resolve_model

    if choice not in ("default", "unet"):
        return Path(choice), f"{Path(choice).name} (given)"
    if choice == "default":
        try:
            path = resolve_model("")
            return path, f"the default model {path.name}"
        except InputError:
            pass
    import torch

    from model_training.export import export_onnx
    from model_training.unet import UNet
    from qgis_landcover.core.models.contract import ModelContract

    torch.manual_seed(0)
    torch.set_num_threads(2)
    network = UNet(in_channels=4, num_classes=4, base_width=16, depth=4, max_width=128).eval()
    contract = ModelContract(
        class_names={0: "water", 1: "tree canopy", 2: "low vegetation", 3: "barren/impervious"},
        class_values={0: 1, 1: 2, 2: 3, 3: 4},
        band_names=["red", "green", "blue", "nir"],
        resolution_cm=100.0,
        tile_size=256,
        tiles_overlap_percent=10.0,
        standardization_mean=[0.45, 0.45, 0.4, 0.5],
        standardization_std=[0.2, 0.2, 0.2, 0.2],
        name="benchmark U-Net (random weights)",
    )
    path = folder / "bench_unet.onnx"
    export_onnx(network, path, contract, torch.rand(1, 4, 256, 256))
    parameters = sum(p.numel() for p in network.parameters())
    reason = "no default model installed: " if choice == "default" else ""
    return path, (
        f"{reason}a randomly initialised U-Net of the training default size (base width 16, "
        f"depth 4, {parameters / 1e6:.2f} M parameters)"
    )


# --------------------------------------------------------------------------- workers


def tile_plan(model: Path, side: int, tile_size: int) -> Any:
    """The tile plan of a ``side`` x ``side`` extent for ``model`` (no stripes)."""
    from qgis_landcover.core.inference.tile_plan import plan_tiles
    from qgis_landcover.core.models.contract import read_contract

    contract = read_contract(model)
    return plan_tiles(
        side, side, tile_size or contract.tile_size, contract.output_margin,
        contract.tiles_overlap_percent,
    )  # fmt: skip


def peak_rss_mb() -> float:
    """Peak resident memory of this process, MiB: ``VmHWM`` of ``/proc/self/status``,
    which starts afresh when a process is exec'd. ``ru_maxrss`` (the fallback where
    ``/proc`` is missing) can carry the high-water mark of the process that forked the
    worker (measured: a Python worker started by a parent holding 330 MiB reported
    332 MiB, its VmHWM 9 MiB)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def worker_classify(args: argparse.Namespace) -> dict[str, Any]:
    from osgeo import gdal

    from qgis_landcover.core.inference.classified_output import OutputPaths
    from qgis_landcover.core.inference.classify import classify
    from qgis_landcover.core.inference.gdal_source import GdalImageSource
    from qgis_landcover.core.inference.image_source import Extent
    from qgis_landcover.core.inference.pipeline import ClassifyOptions
    from qgis_landcover.core.inference.session import load_session

    dataset = gdal.Open(args.vrt)
    x0, dx, _, y0, _, dy = dataset.GetGeoTransform()
    bounds = (x0, y0 + args.extent * dy, x0 + args.extent * dx, y0)
    session = load_session(args.model, args.device)
    options = ClassifyOptions(
        device=args.device,
        batch_size=args.batch_size,
        tile_size=args.tile_size or None,
        stripe_width=args.stripe_width,
    )
    started = time.perf_counter()
    result = classify(
        GdalImageSource(dataset),
        session,
        OutputPaths(Path(args.output)),
        extent=Extent(bounds),
        options=options,
    )
    seconds = time.perf_counter() - started
    pixels = result.grid.width * result.grid.height
    return {
        "pixels": pixels,
        "seconds": seconds,
        "model_seconds": result.model_seconds,
        "tiles": result.tiles_run,
        "tile_size": result.tile_size,
        "provider": result.execution_provider,
        "peak_rss_mb": peak_rss_mb(),
    }


def worker_model_only(args: argparse.Namespace) -> dict[str, Any]:
    import numpy as np
    from osgeo import gdal

    from qgis_landcover.core.inference.gdal_source import GdalReader
    from qgis_landcover.core.inference.normalization import Normalizer
    from qgis_landcover.core.inference.pipeline import iter_batches
    from qgis_landcover.core.inference.planning import effective_batch_size
    from qgis_landcover.core.inference.session import load_session
    from qgis_landcover.core.inference.tile_plan import plan_tiles

    session = load_session(args.model, args.device)
    contract = session.contract
    dataset = gdal.Open(args.vrt)
    reader = GdalReader(dataset, [1, 2, 3, 4])
    plan = plan_tiles(
        args.extent, args.extent, args.tile_size or contract.tile_size, contract.output_margin,
        contract.tiles_overlap_percent,
    )  # fmt: skip
    batch_size = effective_batch_size(session, args.batch_size)
    # The first tiles of the same plan, read and normalised beforehand.
    batches = []
    for batch in iter_batches(
        reader, reader.grid.full_window, plan, plan.stripes(), Normalizer(contract),
        contract.num_bands, batch_size,
    ):  # fmt: skip
        if batch.inputs is not None and batch.inputs.shape[0] == batch_size:
            batches.append(np.ascontiguousarray(batch.inputs))
        if len(batches) * batch_size >= args.model_tiles:
            break
    session.run(batches[0])  # warm-up
    tiles = 0
    started = time.perf_counter()
    while True:
        for batch in batches:
            session.run(batch)
            tiles += batch.shape[0]
        if time.perf_counter() - started >= args.model_seconds:
            break
    seconds = time.perf_counter() - started
    return {"tiles_per_second": tiles / seconds, "provider": session.provider}


def run_script_worker(script: str, *arguments: str, **values: Any) -> dict[str, Any]:
    """Run ``script --worker ARGUMENTS --key value ...`` in a fresh Python (its own peak
    RSS) and return the JSON of its last output line; the benchmarks' one way to
    measure in a process of its own."""
    command = [sys.executable, script, "--worker", *arguments]
    for key, value in values.items():
        command += [f"--{key.replace('_', '-')}", str(value)]
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        name = " ".join([Path(script).name, *arguments])
        raise SystemExit(f"worker {name} failed:\n{completed.stdout}\n{completed.stderr}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def run_worker(kind: str, **values: Any) -> dict[str, Any]:
    """Run this script's worker ``kind`` in a fresh Python and return its JSON."""
    return run_script_worker(__file__, kind, **values)


def main() -> int:
    from qgis_landcover.core.inference.tile_plan import DEFAULT_STRIPE_WIDTH

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=8192, help="VRT side in pixels")
    parser.add_argument(
        "--small", type=int, default=0, help="small extent side, pixels (default: the stripe)"
    )
    parser.add_argument(
        "--large",
        type=int,
        default=0,
        help="large extent side, pixels (default: --size on a GPU, 3072 on the CPU)",
    )
    parser.add_argument(
        "--stripe-width",
        type=int,
        default=0,
        help=f"blending stripe width (default: {DEFAULT_STRIPE_WIDTH} on a GPU, 1024 on the CPU)",
    )
    parser.add_argument(
        "--bench-model",
        default="default",
        help="'default' (catalogue default, else a random U-Net), 'unet', or an .onnx file",
    )
    parser.add_argument("--tile-size", type=int, default=0, help="0: the model's")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch-size", type=int, default=0)
    parser.add_argument("--model-tiles", type=int, default=32, help="tiles pre-loaded")
    parser.add_argument("--model-seconds", type=float, default=20.0)
    parser.add_argument("--worker", choices=("classify", "model_only"))
    parser.add_argument("--vrt")
    parser.add_argument("--model")
    parser.add_argument("--extent", type=int)
    parser.add_argument("--output")
    args = parser.parse_args()
    if args.worker == "classify" and not args.stripe_width:
        args.stripe_width = DEFAULT_STRIPE_WIDTH
    if args.worker:
        worker = worker_classify if args.worker == "classify" else worker_model_only
        print(json.dumps(worker(args)))
        return 0

    with tempfile.TemporaryDirectory(prefix="bench_classify_") as folder_name:
        folder = Path(folder_name)
        vrt = build_vrt(folder / "mosaic.vrt", args.size)
        model, model_text = bench_model(args.bench_model, folder)
        common = {
            "vrt": vrt,
            "model": model,
            "device": args.device,
            "batch_size": args.batch_size,
            "tile_size": args.tile_size,
        }
        print(f"Input: {MOSAIC.name} repeated into a {args.size} x {args.size} px VRT (1 m).")
        print(f"Model: {model_text}.")
        print(f"CPU cores: {os.cpu_count()}; device: {args.device}.")
        model_only = run_worker(
            "model_only", **common, extent=args.size, model_tiles=args.model_tiles,
            model_seconds=args.model_seconds,
        )  # fmt: skip
        on_gpu = model_only["provider"] != "CPUExecutionProvider"
        # Memory grows with the extent's width up to the stripe width, then stays flat:
        # the small extent is one stripe wide. On the CPU narrower stripes keep both
        # runs short (the stripe width only changes how work is split, not the result).
        stripe = args.stripe_width or (DEFAULT_STRIPE_WIDTH if on_gpu else 1024)
        small = args.small or min(stripe, args.size)
        large = args.large or (args.size if on_gpu else min(3072, args.size))
        print(f"Extents {small}^2 and {large}^2, blended in stripes of {stripe} px.")
        plans = {side: tile_plan(model, side, args.tile_size) for side in (small, large, args.size)}
        if large < args.size:
            minutes = plans[args.size].tile_count / model_only["tiles_per_second"] / 60
            print(
                f"(The whole {args.size}^2 input would take about {minutes:.0f} min on this "
                f"CPU; --large {args.size} runs it.)"
            )
        runs = {}
        for side in (small, large):
            runs[side] = run_worker(
                "classify",
                **common,
                extent=side,
                stripe_width=stripe,
                output=folder / f"out{side}.tif",
            )
            (folder / f"out{side}.tif").unlink(missing_ok=True)
        # The pipeline chooses its tile size for the model (issue 13): time the model
        # alone again on the tiles the large run used, and plan with what each run used.
        used = runs[large]["tile_size"]
        if used != plans[large].tile_size:
            model_only = run_worker(
                "model_only", **{**common, "tile_size": used}, extent=args.size,
                model_tiles=args.model_tiles, model_seconds=args.model_seconds,
            )  # fmt: skip
        plans.update({side: tile_plan(model, side, run["tile_size"]) for side, run in runs.items()})
    big = runs[large]
    # The model alone on the tiles the extent needs (one plan, no stripe boundaries).
    needed = plans[large].tile_count
    model_seconds = needed / model_only["tiles_per_second"]
    model_mpx = big["pixels"] / model_seconds / 1e6
    e2e_mpx = big["pixels"] / big["seconds"] / 1e6
    ratio = e2e_mpx / model_mpx
    print(f"Execution provider: {big['provider']}")
    print(
        f"Model only : {model_only['tiles_per_second']:.2f} tiles/s -> {model_mpx:.3f} Mpx/s "
        f"({needed} tiles for {large}^2)"
    )
    for side, run in runs.items():
        print(
            f"End to end : {side} x {side} px in {run['seconds']:.1f} s "
            f"({run['pixels'] / run['seconds'] / 1e6:.3f} Mpx/s, {run['tiles']} tiles of which "
            f"{run['tiles'] - plans[side].tile_count} repeated on stripe edges, "
            f"{run['model_seconds']:.1f} s in the model), peak RSS {run['peak_rss_mb']:.0f} MB"
        )
    small_rss, big_rss = runs[small]["peak_rss_mb"], big["peak_rss_mb"]
    outside = 1 - big["model_seconds"] / big["seconds"]
    flat = big_rss / small_rss
    print(
        f"Ratio end-to-end / model-only: {ratio:.2f} (target >= {TARGET_RATIO}) "
        f"{'PASS' if ratio >= TARGET_RATIO else 'FAIL'}"
    )
    print(
        f"Time outside the model in the end-to-end run: {outside:.1%} (reading, blending and "
        "writing overlap the model; on a shared machine this is steadier than the ratio)"
    )
    print(
        f"Peak RSS {big_rss:.0f} MB for {large}^2 vs {small_rss:.0f} MB for {small}^2 "
        f"(x{flat:.2f}; target <= {TARGET_RSS_MB:.0f} MB and flat within {FLAT_TOLERANCE:.0%}) "
        f"{'PASS' if big_rss <= TARGET_RSS_MB and flat <= 1 + FLAT_TOLERANCE else 'FAIL'}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
