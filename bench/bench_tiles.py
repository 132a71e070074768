# SPDX-License-Identifier: GPL-2.0-or-later
"""Benchmark of the many-tiles job (issue 14): the same 16-chunk job on three
executors, side by side, and the measured per-chunk costs behind the cluster estimates
in ``bench/RESULTS.md``.

Input: copies of the real 1 m NAIP mosaic (data/chesapeake_1m_patches, 1024 x 512 px)
as separate GeoTIFF tiles side by side (the job's virtual mosaic over many files),
covering 4 x 4 chunks of ``--chunk-size`` px (default 512: 2048 x 2048 px, eight
tiles; smaller chunks leave the job's few seconds to worker start-up).
Model: the default model through the core's model resolution with ``--precision``
(``auto``: the int8 variant on CPUs with VNNI, as ``landcover:classify`` does).

Executors, in rounds (A B C, A B C, ...; ``--rounds``) so that the load of the shared
machine falls on all alike, each round a fresh output folder (nothing skipped):

- A: 1 local worker process x 2 threads (ONNX Runtime on both cores);
- B: 2 local worker processes x 1 thread (each pinned to one core);
- C: a Dask LocalCluster of 2 worker processes x 1 thread.

Printed: wall time of the whole job (worker start-up included), output Mpx/s, the
ratios B/A and C/A (scaling efficiency of two processes against two threads on the
same cores) and C/B (Dask against the local pool), the median seconds of one chunk in
its worker (from the manifest), and whether the three mosaics are identical. Then a
chunk's fixed cost without the network: the same job on large chunks with a 1x1
convolution model (reading, nodata fill, normalisation, blending, argmax, COG with
overviews, class areas, manifest), the CPU-side ceiling of one worker whatever the
accelerator.

Run: ``python bench/bench_tiles.py [--chunk-size 512] [--rounds 1]`` (a minute on 2
idle cores, a few under load).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MOSAIC = ROOT / "data" / "chesapeake_1m_patches" / "m_3708020_sw_17_1_2014_mosaic_naip.tif"
CHUNKS_PER_SIDE = 4


def write_tiles(folder: Path, side: int) -> list[Path]:
    """Copies of the shipped mosaic as adjacent GeoTIFF tiles covering ``side`` x
    ``side`` px (the last row and column cut to fit)."""
    from osgeo import gdal

    source = gdal.Open(str(MOSAIC))
    width, height = source.RasterXSize, source.RasterYSize
    x0, dx, _, y0, _, dy = source.GetGeoTransform()
    tiles = []
    for row in range(0, side, height):
        for col in range(0, side, width):
            target = folder / f"tile_r{row // height}_c{col // width}.tif"
            window = [0, 0, min(width, side - col), min(height, side - row)]
            copy = gdal.Translate(str(target), source, srcWin=window)
            copy.SetGeoTransform((x0 + col * dx, dx, 0.0, y0 + row * dy, 0.0, dy))
            copy = None
            tiles.append(target)
    return tiles


def chunk_seconds(manifest: Path) -> list[float]:
    """Seconds of each done chunk in its worker, from the manifest."""
    from osgeo import ogr

    source = ogr.Open(str(manifest))
    return [f.GetField("seconds") for f in source.GetLayer(0) if f.GetField("status") == "done"]


def run_job(
    tiles: list[Path],
    model: Path,
    folder: Path,
    chunk_size: int,
    executor: Any,
) -> dict[str, Any]:
    """Build and run the job in ``folder``; wall seconds, pixels, chunk seconds."""
    from qgis_landcover.core.tiles.job import build_job, plan_chunks
    from qgis_landcover.core.tiles.run import run_tiles_job

    job = build_job(tiles, model=model, output_folder=folder, chunk_size=chunk_size)
    chunks = len(plan_chunks(job))
    started = time.perf_counter()
    result = run_tiles_job(job, executor)
    seconds = time.perf_counter() - started
    if result.chunks_done != chunks:
        raise SystemExit(f"{result.chunks_done} of {chunks} chunks done: the job failed")
    return {
        "seconds": seconds,
        "pixels": result.pixels_classified,
        "chunks": chunks,
        "chunk_seconds": chunk_seconds(result.manifest),
        "mosaic": result.mosaic,
    }


def read(path: Path) -> Any:
    from osgeo import gdal

    return gdal.Open(str(path)).ReadAsArray()


def executors() -> list[tuple[str, str, Callable[[], Any]]]:
    from qgis_landcover.core.tiles.dask_executor import DaskExecutor
    from qgis_landcover.core.tiles.local_executor import LocalExecutor

    return [
        ("A", "1 local worker x 2 threads", lambda: LocalExecutor(1)),
        ("B", "2 local workers x 1 thread", lambda: LocalExecutor(2)),
        ("C", "2 Dask workers x 1 thread", lambda: DaskExecutor(None, 2)),
    ]


def fixed_cost(folder: Path, side: int) -> dict[str, Any]:
    """The many-tiles job on ``side``^2 px in 4 chunks with a 1x1 convolution model on 2
    local workers: everything a chunk costs except the network."""
    import numpy as np

    from qgis_landcover.core.tiles.local_executor import LocalExecutor
    from tests.onnx_models import contract_for, pointwise_model

    weights = np.array(
        [[1.0, -0.5, 0.0, 0.2], [-0.3, 1.0, -0.2, 0.1], [0.0, -0.4, 1.0, -0.1], [0.1, 0, -0.6, 0.5]]
    )
    model = pointwise_model(
        folder / "pointwise.onnx", weights, contract=contract_for(4, input_scale=1 / 255)
    )
    tiles_folder = folder / "tiles"
    tiles_folder.mkdir()
    tiles = write_tiles(tiles_folder, side)
    return run_job(tiles, model, folder / "job", side // 2, LocalExecutor(2))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chunk-size", type=int, default=512, help="chunk side, px (512)")
    parser.add_argument("--rounds", type=int, default=1, help="rounds of A B C (1)")
    parser.add_argument("--precision", default="auto", help="auto / fp32 / int8 (auto)")
    parser.add_argument(
        "--fixed-cost-side", type=int, default=4096, help="side of the 1x1-model job (4096)"
    )
    args = parser.parse_args()

    import numpy as np

    from qgis_landcover.core.models.resolve import resolve_model

    try:
        import distributed  # noqa: F401 (only whether it is there)
    except ImportError:
        print("SKIP: dask[distributed] is not installed (pip install 'dask[distributed]').")
        return 0
    model = resolve_model("", precision=args.precision, on_gpu=False)
    side = CHUNKS_PER_SIDE * args.chunk_size
    print(
        f"Model: {model.name} (PRECISION={args.precision}); {os.cpu_count()} CPUs; load "
        f"average {os.getloadavg()[0]:.2f} at the start."
    )
    with tempfile.TemporaryDirectory(prefix="bench_tiles_") as scratch:
        folder = Path(scratch)
        (folder / "tiles").mkdir()
        tiles = write_tiles(folder / "tiles", side)
        print(
            f"Input: {len(tiles)} GeoTIFF tiles, {side} x {side} px; chunks of "
            f"{args.chunk_size} px: {CHUNKS_PER_SIDE**2} chunks.",
            flush=True,
        )
        runs: dict[str, list[dict[str, Any]]] = {}
        for round_number in range(args.rounds):
            for key, label, make in executors():
                run = run_job(
                    tiles, model, folder / f"{key}{round_number}", args.chunk_size, make()
                )
                runs.setdefault(key, []).append(run)
                print(
                    f"  round {round_number + 1} {key} ({label}): {run['seconds']:.1f} s, "
                    f"{run['chunks']} chunks",
                    flush=True,
                )
        mosaics = {key: read(r[0]["mosaic"]) for key, r in runs.items()}
        labels = {key: label for key, label, _ in executors()}
        best = {key: min(r["seconds"] for r in rs) for key, rs in runs.items()}
        pixels = runs["A"][0]["pixels"]
        print()
        print(f"{'executor':<30} {'best s':>7} {'Mpx/s':>7} {'median chunk s':>15}")
        for key, rs in runs.items():
            median = statistics.median(s for r in rs for s in r["chunk_seconds"])
            print(
                f"{key} {labels[key]:<28} {best[key]:>7.1f} {pixels / best[key] / 1e6:>7.4f} "
                f"{median:>15.2f}"
            )
        print()
        print(f"B/A (2 processes x 1 thread vs 1 process x 2 threads): {best['A'] / best['B']:.2f}")
        print(f"C/A (2 Dask workers vs 1 process x 2 threads): {best['A'] / best['C']:.2f}")
        print(f"C/B (Dask vs the local pool, same 2 x 1): {best['B'] / best['C']:.2f}")
        same = {key: float(np.mean(mosaics[key] == mosaics["A"])) for key in mosaics if key != "A"}
        print("Identical to A's mosaic: " + ", ".join(f"{k} {v:.4%}" for k, v in same.items()))
        per_chunk = statistics.median(s for r in runs["B"] for s in r["chunk_seconds"])
        chunk_px = pixels / runs["B"][0]["chunks"]
        print(
            f"Per chunk (B, one core): {per_chunk:.2f} s for {chunk_px / 1e6:.3f} Mpx = "
            f"{chunk_px / per_chunk / 1e6:.4f} Mpx/s per core, "
            f"{per_chunk / (chunk_px / 1e6):.1f} core-s per output Mpx."
        )
        fixed_side = args.fixed_cost_side
        fixed_folder = folder / "fixed"
        fixed_folder.mkdir()
        fixed = fixed_cost(fixed_folder, fixed_side)
        fixed_median = statistics.median(fixed["chunk_seconds"])
        fixed_px = fixed["pixels"] / fixed["chunks"]
        print(
            f"Fixed cost (1x1 model, {fixed['chunks']} chunks of {fixed_side // 2} px, 2 local "
            f"workers): {fixed_median:.2f} s per chunk of {fixed_px / 1e6:.2f} Mpx = "
            f"{fixed_px / fixed_median / 1e6:.2f} Mpx/s per core without the network; job "
            f"{fixed['seconds']:.1f} s."
        )
    print(f"Load average at the end: {os.getloadavg()[0]:.2f} (1 min).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
