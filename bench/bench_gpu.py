# SPDX-License-Identifier: GPL-2.0-or-later
"""GPU benchmark of issue #13: end-to-end and model-only throughput of a full-output
U-Net with the CUDA and TensorRT execution providers in fp16.

- Network: the training code's default U-Net (``model_training.unet.UNet``, random
  weights: they do not change the speed), output as large as its input (margin 0),
  exported with :func:`model_training.export.export_onnx` in fp16 (float32 input and
  output, half weights); TensorRT also gets ``trt_fp16_enable`` in the model-only run
  (the core's TensorRT options do not set it: its end-to-end run builds from the fp16
  graph as it is).
- Model only: ONNX Runtime I/O binding, the input batch and the scores in device memory
  (``OrtValue`` on ``cuda``), so that no host copy is timed; ``--model-seconds`` of runs.
- End-to-end: the core's ``classify`` (reading with ``GDAL_NUM_THREADS=ALL_CPUS`` and
  the pipeline's read-ahead, normalisation, the model, blending, argmax, compressed
  GeoTIFF writing) on a ``--size`` x ``--size`` VRT of the shipped 1 m mosaic.

Targets (issue #13, one H200): >= 300 Mpx/s end-to-end, end-to-end >= 0.8 x model-only.

Without a CUDA execution provider (``onnxruntime-gpu`` absent) it prints one ``SKIP``
line and exits 0, so ``make bench`` stays green on CPU machines.

Run: ``python bench/bench_gpu.py [--size 16384] [--tile-size 1024] [--batch-size 8]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

TARGET_MPX = 300.0
TARGET_RATIO = 0.8
CUDA = "CUDAExecutionProvider"
TENSORRT = "TensorrtExecutionProvider"


def export_unet(folder: Path, tile_size: int) -> Path:
    """The full-output U-Net as an fp16 ONNX file (float32 input / output) in ``folder``."""
    import torch

    from model_training.export import export_onnx
    from model_training.unet import UNet
    from qgis_landcover.core.models.contract import ModelContract

    torch.manual_seed(0)
    network = UNet(in_channels=4, num_classes=4).eval()
    contract = ModelContract(
        class_names={0: "water", 1: "tree canopy", 2: "low vegetation", 3: "barren/impervious"},
        class_values={0: 1, 1: 2, 2: 3, 3: 4},
        band_names=["red", "green", "blue", "nir"],
        resolution_cm=100.0,
        tile_size=tile_size,
        tiles_overlap_percent=0.0,
        standardization_mean=[0.45, 0.45, 0.4, 0.5],
        standardization_std=[0.2, 0.2, 0.2, 0.2],
        name="GPU benchmark U-Net (random weights, full output)",
    )
    sample = torch.rand(1, 4, 256, 256)
    fp16 = folder / "unet_fp16.onnx"
    export_onnx(network, fp16, contract, sample, fp16=True)
    return fp16


def providers_for(kind: str, cache: Path) -> list[Any]:
    """ONNX Runtime providers for ``cuda`` or ``tensorrt`` (fp16 engine, cached)."""
    if kind == "cuda":
        return [(CUDA, {"device_id": 0, "cudnn_conv_algo_search": "EXHAUSTIVE"})]
    return [
        (
            TENSORRT,
            {
                "device_id": 0,
                "trt_fp16_enable": True,
                "trt_engine_cache_enable": True,
                "trt_engine_cache_path": str(cache),
            },
        ),
        (CUDA, {"device_id": 0}),
    ]


def model_only(model: Path, kind: str, batch: int, tile: int, seconds: float, cache: Path) -> float:
    """Model-only Mpx/s with I/O binding (input and output in device memory)."""
    import numpy as np
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    import onnx

    providers = providers_for(kind, cache)
    input_name = onnx.load(str(model), load_external_data=False).graph.input[0].name
    if kind == "tensorrt":
        name, provider_options = providers[0]
        shape = f"{input_name}:{batch}x4x{tile}x{tile}"
        provider_options = {
            **provider_options,
            "trt_profile_min_shapes": shape,
            "trt_profile_max_shapes": shape,
            "trt_profile_opt_shapes": shape,
        }
        providers = [(name, provider_options), providers[1]]
    session = ort.InferenceSession(str(model), options, providers=providers)
    output_name = session.get_outputs()[0].name
    host = np.random.default_rng(0).random((batch, 4, tile, tile), dtype=np.float32)
    device_input = ort.OrtValue.ortvalue_from_numpy(host, "cuda", 0)
    binding = session.io_binding()
    binding.bind_ortvalue_input(input_name, device_input)
    binding.bind_output(output_name, "cuda", 0)
    for _ in range(3):  # warm-up (TensorRT builds its engine on the first run)
        session.run_with_iobinding(binding)
    binding.synchronize_outputs()
    runs = 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        session.run_with_iobinding(binding)
        runs += 1
    binding.synchronize_outputs()
    elapsed = time.perf_counter() - started
    return runs * batch * tile * tile / elapsed / 1e6


def end_to_end(
    model: Path, device: str, vrt: Path, output: Path, batch: int, tile: int
) -> tuple[float, str, float]:
    """Core ``classify`` of the whole VRT: (Mpx/s, provider, share of time in the model)."""
    from osgeo import gdal

    from qgis_landcover.core.inference.classified_output import OutputPaths
    from qgis_landcover.core.inference.classify import classify
    from qgis_landcover.core.inference.gdal_source import GdalImageSource
    from qgis_landcover.core.inference.pipeline import ClassifyOptions

    dataset = gdal.Open(str(vrt))
    options = ClassifyOptions(device=device, batch_size=batch, tile_size=tile, overviews=False)
    started = time.perf_counter()
    result = classify(GdalImageSource(dataset), str(model), OutputPaths(output), options=options)
    seconds = time.perf_counter() - started
    pixels = result.grid.width * result.grid.height
    return pixels / seconds / 1e6, result.execution_provider, result.model_seconds / seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=16384, help="VRT side, pixels")
    parser.add_argument("--tile-size", type=int, default=1024)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--model-seconds", type=float, default=10.0)
    args = parser.parse_args()

    import onnxruntime as ort

    available = ort.get_available_providers()
    if CUDA not in available:
        print(
            f"SKIP: no CUDA execution provider in this ONNX Runtime ({ort.__version__}; "
            f"providers: {', '.join(available)}). Install onnxruntime-gpu on a machine with "
            "an NVIDIA GPU and run `python bench/bench_gpu.py`."
        )
        return 0
    os.environ.setdefault("GDAL_NUM_THREADS", "ALL_CPUS")
    os.environ.setdefault("GDAL_CACHEMAX", "2048")
    from osgeo import gdal

    gdal.SetConfigOption("GDAL_NUM_THREADS", os.environ["GDAL_NUM_THREADS"])
    gdal.SetConfigOption("GDAL_CACHEMAX", os.environ["GDAL_CACHEMAX"])
    from bench_classify import MOSAIC, build_vrt

    kinds = ["cuda"] + (["tensorrt"] if TENSORRT in available else [])
    print(
        f"ONNX Runtime {ort.__version__}; providers {', '.join(available)}; "
        f"CPU cores {os.cpu_count()}; GDAL_NUM_THREADS={os.environ['GDAL_NUM_THREADS']}."
    )
    if TENSORRT not in available:
        print("TensorRT execution provider absent: CUDA only.")
    with tempfile.TemporaryDirectory(prefix="bench_gpu_") as folder_name:
        folder = Path(folder_name)
        fp16 = export_unet(folder, args.tile_size)
        vrt = build_vrt(folder / "mosaic.vrt", args.size)
        print(
            f"Full-output U-Net (training default size), tile {args.tile_size}, batch "
            f"{args.batch_size}; input {MOSAIC.name} repeated into {args.size}^2 px."
        )
        for kind in kinds:
            alone = model_only(
                fp16, kind, args.batch_size, args.tile_size, args.model_seconds, folder
            )
            e2e, provider, in_model = end_to_end(
                fp16, kind, vrt, folder / f"out_{kind}.tif", args.batch_size, args.tile_size
            )
            ratio = e2e / alone
            print(
                f"{kind:>8} fp16: model only {alone:.0f} Mpx/s (I/O binding); end to end "
                f"{e2e:.0f} Mpx/s ({provider}, {in_model:.0%} of the time in the model); "
                f"ratio {ratio:.2f} (>= {TARGET_RATIO}) "
                f"{'PASS' if ratio >= TARGET_RATIO else 'FAIL'}; end to end >= {TARGET_MPX:.0f}"
                f" Mpx/s {'PASS' if e2e >= TARGET_MPX else 'FAIL'}",
                flush=True,
            )
            (folder / f"out_{kind}.tif").unlink(missing_ok=True)
    print(
        "Note: the core's ModelSession.run copies each batch from and to the host; "
        "the model-only figure binds device buffers (the ceiling)."
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
