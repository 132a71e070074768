# SPDX-License-Identifier: GPL-2.0-or-later
"""Why issue #13's fp32 target (3.5x today) is not reached: the default model in fp32,
model only, at each tile size, in fresh processes, side by side in one run.

The 2018 network keeps the centre ``tile - 128`` pixels of each tile (margin 64), so its
compute per output pixel falls as ``tile^2 / (tile - 128)^2`` (4.0 at 256 px, 2.25 at
384, 1.56 at 640, 1.31 at 1024): larger tiles are faster per output pixel, but ONNX
Runtime's activations grow with the tile's area. For each tile size this prints output
Mpx/s of the core's session (:func:`~qgis_landcover.core.inference.session.load_session`,
the plugin's options) on real tiles of the shipped 1 m mosaic, the ratio to today's
setting (256 px, batch 4) measured in the same run, and the process's peak RSS (VmHWM)
against issue #13's 450 MB target for the whole classify run.

Run: ``python bench/bench_fp32_tiles.py [--tiles 256x4,384,512,640,768,1024]``
(about 2 minutes on 2 idle cores).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_classify import MOSAIC, peak_rss_mb, run_script_worker  # noqa: E402

FP32 = ROOT / "qgis_landcover" / "models" / "azure_2018_unet.onnx"
RSS_TARGET_MIB = 450e6 / 2**20


def measure(tile: int, batch: int, seconds: float) -> dict[str, float]:
    """Output Mpx/s and peak RSS of the fp32 session on ``batch`` tiles of ``tile`` px."""
    from osgeo import gdal

    from qgis_landcover.core.inference.session import load_session

    session = load_session(FP32, "cpu")
    image = gdal.Open(str(MOSAIC)).ReadAsArray().astype(np.float32) / 255.0
    # The mosaic is 1024 x 512 px: repeat it for tiles taller than that (real pixels).
    image = np.tile(image, (1, -(-tile // image.shape[1]), -(-tile // image.shape[2])))
    batch_array = np.stack([image[:, :tile, :tile]] * batch)
    session.run(batch_array)  # warm-up: ORT plans the shapes on the first run
    runs, start = 0, time.perf_counter()
    while runs < 2 or time.perf_counter() - start < seconds:
        session.run(batch_array)
        runs += 1
    elapsed = time.perf_counter() - start
    output_px = runs * batch * session.output_size(tile) ** 2
    return {"mpx_s": output_px / elapsed / 1e6, "rss_mib": peak_rss_mb()}


def in_fresh_process(tile: int, batch: int, seconds: float) -> dict[str, float]:
    return run_script_worker(__file__, f"{tile}x{batch}", seconds=seconds)


def parse_setting(text: str) -> tuple[int, int]:
    tile, _, batch = text.partition("x")
    return int(tile), int(batch or 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tiles", default="256x4,384,512,640,768,1024")
    parser.add_argument("--seconds", type=float, default=8.0, help="timing per setting")
    parser.add_argument("--worker", default="")
    arguments = parser.parse_args()
    if arguments.worker:
        print(json.dumps(measure(*parse_setting(arguments.worker), arguments.seconds)))
        return
    settings = [parse_setting(text) for text in arguments.tiles.split(",")]
    today = in_fresh_process(256, 4, arguments.seconds)
    print(f"fp32 model only, {FP32.name}; today = 256 px x 4: {today['mpx_s']:.3f} Mpx/s")
    print("tile x batch | compute / output px | Mpx/s | vs today | peak RSS MiB | <= 450 MB")
    for tile, batch in settings:
        found = in_fresh_process(tile, batch, arguments.seconds)
        compute = tile**2 / (tile - 128) ** 2
        fits = "yes" if found["rss_mib"] <= RSS_TARGET_MIB else "no"
        print(
            f"{tile} x {batch} | {compute:.2f} | {found['mpx_s']:.3f} | "
            f"{found['mpx_s'] / today['mpx_s']:.2f}x | {found['rss_mib']:.0f} | {fits}"
        )
    print("(the model alone; a classify run adds the pipeline's buffers to the peak)")


if __name__ == "__main__":
    main()
