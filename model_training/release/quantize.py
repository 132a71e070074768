# SPDX-License-Identifier: GPL-2.0-or-later
"""The int8 variant of a shipped fp32 model for CPUs, made with ONNX Runtime's own
static quantisation (:func:`onnxruntime.quantization.quantize_static`).

Settings (from the issue-13 measurements of QDQ / QOperator, per-tensor / per-channel,
MinMax / Entropy / Percentile calibration and excluded first / last convolutions, on
the shipped mosaic): QDQ format, per-channel int8 weights, uint8 activations, MinMax
calibration, no node excluded. QDQ per-channel MinMax lost the least accuracy and ran
fastest with ONNX Runtime's CPU provider; excluding the first and last convolutions
did not help.

Calibration imagery is shipped and is *not* the evaluation mosaic: the six NAIP clips
of ``data/naip_clips`` (four states, 2011-2022) and the NAIP of
``data/chesapeake_lowres_tile``, each centre-cropped / reflect-padded to 256 x 256 px
and seen as itself, flipped vertically, flipped horizontally and transposed: 28 tiles,
in sorted file order. The same inputs give the same bytes on one machine.

Usage::

    python -m model_training.release.quantize            # writes azure_2018_unet_int8.onnx + .md
    python -m model_training.release.ship --catalogue-only

The model card states the accuracy of both precisions on the whole shipped mosaic
through the plugin (``landcover:classify`` + ``landcover:agreement``) and the model-only
speed ratio measured side by side on this machine.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_static,
)
from onnxruntime.quantization.shape_inference import quant_pre_process
from osgeo import gdal

from qgis_landcover.core.errors import InputError, LandcoverError
from qgis_landcover.core.files.atomic import atomic_output
from qgis_landcover.core.files.checksum import file_sha256
from qgis_landcover.core.models.contract import ModelContract, read_contract
from qgis_landcover.core.raster.grid import Window

from ..onnx_metadata import write_metadata
from .evaluate_models import LABELS, MOSAIC, ROOT, Evaluation, evaluate
from .graph_rewrites import rewrite_for_int8

FP32_MODEL = ROOT / "qgis_landcover" / "models" / "azure_2018_unet.onnx"
INT8_MODEL = FP32_MODEL.with_name("azure_2018_unet_int8.onnx")
FP16_MODEL = FP32_MODEL.with_name("azure_2018_unet_fp16.onnx")
#: Shipped imagery used for calibration (never the evaluation mosaic).
CALIBRATION_IMAGES = (
    *sorted((ROOT / "data" / "naip_clips").glob("*.tif")),
    ROOT / "data" / "chesapeake_lowres_tile" / "m_3907833_nw_17_1_naip-new.tif",
)
#: Calibration tile side, pixels.
CALIBRATION_TILE = 256
#: The whole shipped mosaic (1024 x 512 px).
WHOLE_MOSAIC = Window(0, 0, 1024, 512)
#: The exact graph rewrites made before quantising (recorded in the metadata).
GRAPH_REWRITES = (
    "ConvTranspose 3x3 stride 2 -> Conv 2x2 to 4 C_out + DepthToSpace 2 (sub-pixel)",
    "Conv with fewer than 16 outputs -> filters repeated to 16 + Slice of the first C",
)
#: Tile side, pixels, of the model-only speed comparison: the tile the plugin picks
#: automatically for the int8 variant (core/inference/planning.py).
SPEED_TILE = 640
#: The largest loss of overall accuracy (vs fp32, on the shipped mosaic) the card
#: promises for the int8 variant; ``PRECISION=auto`` uses it only within this bound.
MAX_OVERALL_ACCURACY_LOSS = 0.005


@dataclass(frozen=True)
class Accuracy:
    """Agreement of one classification with the mosaic's labels (fractions, 0-1)."""

    overall_accuracy: float
    kappa: float
    mean_iou: float

    @classmethod
    def of(cls, evaluation: Evaluation) -> Accuracy:
        """The headline numbers of a :func:`~.evaluate_models.evaluate` run."""
        statistics = evaluation.report.statistics
        return cls(statistics.overall_accuracy, statistics.kappa.value, statistics.mean_iou)


def calibration_tiles(
    images: Sequence[Path] = CALIBRATION_IMAGES, tile: int = CALIBRATION_TILE
) -> list[np.ndarray]:
    """Float32 (1, bands, tile, tile) tiles scaled by 1/256 (the model's ``input_scale``):
    each image centre-cropped / reflect-padded to ``tile`` px, then itself, flipped
    up-down, flipped left-right and transposed. Order: ``images`` as given."""
    tiles = []
    for path in images:
        dataset = gdal.Open(str(path))
        if dataset is None:
            raise InputError(f"Cannot open the calibration image {path}.")
        pixels = dataset.ReadAsArray().astype(np.float32)
        for axis in (1, 2):
            excess = pixels.shape[axis] - tile
            if excess > 0:
                pixels = np.take(pixels, range(excess // 2, excess // 2 + tile), axis=axis)
        pad = [(0, 0), (0, tile - pixels.shape[1]), (0, tile - pixels.shape[2])]
        pixels = np.pad(pixels, pad, mode="reflect")
        for view in (pixels, pixels[:, ::-1], pixels[:, :, ::-1], pixels.transpose(0, 2, 1)):
            tiles.append(np.ascontiguousarray(view[None] / 256.0, dtype=np.float32))
    return tiles


class _Tiles(CalibrationDataReader):
    """The calibration tiles, in order, as ONNX Runtime's calibration reader."""

    def __init__(self, input_name: str, tiles: Sequence[np.ndarray]) -> None:
        self._feeds: Iterator[dict[str, np.ndarray]] = iter([{input_name: t} for t in tiles])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._feeds, None)


def quantize_int8(source: Path, destination: Path, tiles: Sequence[np.ndarray]) -> None:
    """Write the static int8 (QDQ, per-channel int8 weights, uint8 activations, MinMax)
    quantisation of the fp32 ONNX model ``source``, calibrated on ``tiles``, to
    ``destination`` (metadata as ONNX Runtime leaves it: see :func:`int8_contract`).

    The graph is first rewritten exactly for ONNX Runtime's int8 kernels
    (:func:`~.graph_rewrites.rewrite_for_int8`: sub-pixel convolutions for the
    transposed ones, narrow convolutions padded to 16 outputs); every graph output is
    kept, extra ones (e.g. features) included."""
    import onnx

    with tempfile.TemporaryDirectory(prefix="landcover-quantize-") as folder:
        rewritten = Path(folder) / "rewritten.onnx"
        model, _ = rewrite_for_int8(onnx.load(str(source)))
        onnx.save(model, str(rewritten))
        input_name = model.graph.input[0].name
        prepared = Path(folder) / "prepared.onnx"
        quant_pre_process(str(rewritten), str(prepared), skip_symbolic_shape=True)
        quantize_static(
            str(prepared),
            str(destination),
            _Tiles(input_name, tiles),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
        )


def int8_contract(
    fp32: ModelContract,
    fp32_sha256: str,
    card: str,
    measured: dict[str, Accuracy],
    precision: str = "int8",
) -> ModelContract:
    """``fp32``'s contract for its int8 variant: same input and classes; its
    ``provenance`` says ``precision`` ``"int8"``, ``derived_from`` (the fp32 model's
    name and SHA-256), the quantisation settings, ``max_overall_accuracy_loss`` and
    the ``mosaic_accuracy`` of each precision (``measured``, as in the card)."""
    provenance = {
        **fp32.provenance,
        "precision": precision,
        "derived_from": {"name": fp32.name, "sha256": fp32_sha256},
        "quantization": FP16_SETTINGS
        if precision == "fp16"
        else {
            "tool": f"onnxruntime.quantization.quantize_static {ort.__version__}",
            "format": "QDQ",
            "weights": "int8 per channel",
            "activations": "uint8 per tensor",
            "calibration": "MinMax",
            "graph_rewrites": list(GRAPH_REWRITES),
            "calibration_images": [str(p.relative_to(ROOT)) for p in CALIBRATION_IMAGES],
        },
        "max_overall_accuracy_loss": MAX_OVERALL_ACCURACY_LOSS,
        "mosaic_accuracy": {k: dataclasses.asdict(v) for k, v in measured.items()},
    }
    return dataclasses.replace(
        fp32,
        name=f"{fp32.name}-{precision}",
        provenance=provenance,
        model_card=card,
        features_output=None,  # its head is not float32: see scores_only
    )


def scores_only(source: Path, folder: Path) -> Path:
    """``source``, or a copy of it in ``folder`` without the features output (the
    model contract's ``features_output``, :func:`model_training.export.drop_features_output`):
    variants whose head is not float32 do not carry it (docs/model_contract.md; the
    contract names the float head's weights). It would cost an int8 run a float copy
    of the head's input per tile: measured with the 2018 U-Net, one 640 px tile, peak
    306 MiB against 202 MiB without it; a whole 8192 x 8192 px run 507 against
    456 MiB. Other extra outputs are kept."""
    import onnx

    from ..export import drop_features_output

    model = onnx.load(str(source))
    if not drop_features_output(model):
        return source
    # ... and the metadata naming it (write_metadata keeps the keys it does not write).
    kept = [p for p in model.metadata_props if p.key != "features_output"]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    stripped = folder / f"{source.stem}_scores_only.onnx"
    onnx.save(model, str(stripped))
    return stripped


def model_only_speed_ratio(
    fp32: Path, int8: Path, tile: int = SPEED_TILE, repeats: int = 5
) -> float:
    """fp32 seconds / int8 seconds per ``tile`` x ``tile`` tile, 2 threads, run
    alternately (best of ``repeats`` each) so both see the same machine load."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    options.enable_mem_pattern = False  # as the plugin's sessions
    sessions = [
        ort.InferenceSession(str(p), options, providers=["CPUExecutionProvider"])
        for p in (fp32, int8)
    ]
    feed = np.random.default_rng(0).random((1, 4, tile, tile), dtype=np.float32)
    best = [float("inf"), float("inf")]
    for _ in range(repeats + 1):  # the first round warms up
        for index, session in enumerate(sessions):
            started = time.perf_counter()
            session.run(None, {session.get_inputs()[0].name: feed})
            best[index] = min(best[index], time.perf_counter() - started)
    return best[0] / best[1]


def automatic_tiles(models: dict[str, Path], window: Window = WHOLE_MOSAIC) -> dict[str, int]:
    """The tile side, pixels, the plugin chooses on the CPU for each model over
    ``window`` (:func:`~qgis_landcover.core.inference.planning.automatic_tile_size`)."""
    from qgis_landcover.core.inference.pipeline import ClassifyOptions
    from qgis_landcover.core.inference.planning import automatic_tile_size
    from qgis_landcover.core.inference.session import load_session
    from qgis_landcover.core.progress import NullProgress

    tiles = {}
    for name, path in models.items():
        session = load_session(path, "cpu")
        options = ClassifyOptions(device="cpu")
        tile = automatic_tile_size(session, options, window, 0.0, NullProgress())
        tiles[name] = tile or session.contract.tile_size
    return tiles


def int8_card(
    fp32: ModelContract,
    fp32_acc: Accuracy,
    int8_acc: Accuracy,
    agree: float,
    speed: float,
    tiles: dict[str, int],
) -> str:
    """The int8 variant's model card (Markdown); ``tiles``: the automatic tile side of
    each precision on the mosaic (:func:`automatic_tiles`)."""
    loss = fp32_acc.overall_accuracy - int8_acc.overall_accuracy
    rows = "\n".join(
        f"| {name} | {a.overall_accuracy:.4f} | {a.kappa:.4f} | {a.mean_iou:.4f} |"
        for name, a in (("fp32", fp32_acc), ("int8", int8_acc))
    )
    images = ", ".join(f"`{p.relative_to(ROOT)}`" for p in CALIBRATION_IMAGES)
    return f"""# {fp32.name}-int8: int8 variant of {fp32.name} for CPUs

The same network as `{fp32.name}` (see `azure_2018_unet.md` for its source, licence
(MIT), training data, classes and input expectations), quantised to 8-bit integers with
ONNX Runtime's static quantisation (`python -m model_training.release.quantize`): QDQ
format, int8 weights per output channel, uint8 activations, MinMax calibration on
28 tiles of shipped imagery that is not the evaluation mosaic ({images}; each
256 x 256 px, plus its flips and transpose). Input, classes, margin, metadata tile size
and scores output are the fp32 model's; the fp32 model's features output (for
`landcover:adapt_model`) is not carried, as the head it describes is not float32 here.

Before quantising, the graph is rewritten exactly (the same function, checked by
`tests/model_training/release/test_graph_rewrites.py`) for ONNX Runtime's int8 CPU
kernels (`model_training/release/graph_rewrites.py`): each 3 x 3 stride-2
`ConvTranspose` becomes a 2 x 2 `Conv` to four times the channels followed by
`DepthToSpace` (sub-pixel convolution, no col2im buffer), and the 64 -> 5 head
convolution computes 16 channels (its filters repeated) followed by a `Slice` of the
first 5, so that the int8 convolution uses its im2col-free kernel.

## Measured accuracy: the whole shipped mosaic, through the plugin

`landcover:classify` then `landcover:agreement` (labels 5 and 6 merged into 4) on the
1024 x 512 px mosaic of `data/chesapeake_1m_patches` (West Virginia 2014), default
settings: the tile the plugin chooses for each file ({tiles["fp32"]} px for fp32,
{tiles["int8"]} px for int8; the network's per-tile mean subtraction makes the scores
depend slightly on the tile):

| precision | overall accuracy | kappa | mean IoU |
|---|---|---|---|
{rows}

Loss of overall accuracy vs fp32 (fp32 minus int8; negative: int8 scored higher):
{loss:+.4f}. Bound promised: a loss of at most {MAX_OVERALL_ACCURACY_LOSS}
(`max_overall_accuracy_loss` in the metadata; `PRECISION=auto` uses int8 only within
it). The two classifications give the same class on {agree:.2%} of the mosaic's
pixels.

## Speed

Model only, the same {SPEED_TILE} x {SPEED_TILE} px tile for both (the tile the plugin
chooses for this variant), 2 threads, best of 5 runs alternated on the CPU that built
it (with VNNI; shared, so noisy): int8 ran {speed:.1f}x as fast as fp32. End to end
through `landcover:classify` with automatic settings: `bench/RESULTS.md`. The gain
needs a CPU with int8 dot products (AVX-512 VNNI or AVX-VNNI); without them int8 can
be slower than fp32.

## Limits

All the fp32 model's limits apply. The accuracy above is measured on one 1 m NAIP
mosaic of one place and year; water is absent from its labels, so the int8 error on
water is unmeasured.
"""


def agreement_share(first: Path, second: Path) -> float:
    """Share of pixels (0-1) with the same class in two classified rasters."""
    a, b = (gdal.Open(str(p)).ReadAsArray() for p in (first, second))
    return float(np.mean(a == b))


def write_variant(model: Path, destination: Path, contract: ModelContract, card: str) -> None:
    """Write ``model`` to ``destination`` with ``contract`` in its metadata and ``card``
    beside it (``.md``); neither file is replaced unless both are complete."""
    card_path = destination.with_suffix(".md")
    with atomic_output(destination) as onnx_path, atomic_output(card_path) as card_tmp:
        onnx_path.write_bytes(model.read_bytes())
        write_metadata(onnx_path, contract)
        card_tmp.write_text(card, encoding="utf-8")


def build(source: Path = FP32_MODEL, destination: Path = INT8_MODEL) -> ModelContract:
    """Quantise ``source``, measure both precisions on the whole mosaic through the
    plugin, and write ``destination`` with its contract and card (and the card beside
    it, ``.md``). Nothing is replaced unless both files are complete."""
    fp32 = read_contract(source)
    with tempfile.TemporaryDirectory(prefix="landcover-int8-") as folder:
        work = Path(folder)
        quantized = work / "int8.onnx"
        quantize_int8(scores_only(source, work), quantized, calibration_tiles())
        # Measured as shipped: with the int8 contract (the plugin sizes int8 tiles apart).
        write_metadata(quantized, int8_contract(fp32, file_sha256(source), "", {}))
        runs = {
            name: evaluate(name, str(path), work, MOSAIC, LABELS, WHOLE_MOSAIC)
            for name, path in (("fp32", source), ("int8", quantized))
        }
        agree = agreement_share(runs["fp32"].classified, runs["int8"].classified)
        speed = model_only_speed_ratio(source, quantized)
        measured = {name: Accuracy.of(run) for name, run in runs.items()}
        tiles = automatic_tiles({"fp32": source, "int8": quantized})
        card = int8_card(fp32, measured["fp32"], measured["int8"], agree, speed, tiles)
        contract = int8_contract(fp32, file_sha256(source), card, measured)
        write_variant(quantized, destination, contract, card)
    return contract


#: How the fp16 variant is made (recorded in its metadata).
FP16_SETTINGS = {
    "tool": f"onnxruntime.transformers.float16.convert_float_to_float16 {ort.__version__}",
    "keep_io_types": True,
}


def convert_fp16(source: Path, destination: Path) -> None:
    """Write ``source`` with float16 weights and arithmetic and float32 input and output
    (``keep_io_types``), for GPUs."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    onnx.save(
        convert_float_to_float16(onnx.load(str(source)), keep_io_types=True), str(destination)
    )


def fp16_card(fp32: ModelContract, fp32_acc: Accuracy, fp16_acc: Accuracy, agree: float) -> str:
    """The fp16 variant's model card (Markdown)."""
    rows = "\n".join(
        f"| {name} | {a.overall_accuracy:.4f} | {a.kappa:.4f} | {a.mean_iou:.4f} |"
        for name, a in (("fp32", fp32_acc), ("fp16", fp16_acc))
    )
    loss = fp32_acc.overall_accuracy - fp16_acc.overall_accuracy
    return f"""# {fp32.name}-fp16: fp16 variant of {fp32.name} for GPUs

The same network as `{fp32.name}` (see `azure_2018_unet.md` for its source, licence
(MIT), training data, classes and input expectations), with float16 weights and
arithmetic and float32 input and output (ONNX Runtime's
`convert_float_to_float16(keep_io_types=True)`; `python -m
model_training.release.quantize --fp16`). `PRECISION=auto` runs it on a GPU (CUDA or
TensorRT provider); on a CPU it is not faster than fp32.

## Measured accuracy: the whole shipped mosaic, through the plugin

`landcover:classify` (on the CPU) then `landcover:agreement` (labels 5 and 6 merged
into 4) on the 1024 x 512 px mosaic of `data/chesapeake_1m_patches`, default tiling:

| precision | overall accuracy | kappa | mean IoU |
|---|---|---|---|
{rows}

Loss of overall accuracy vs fp32: {loss:+.4f} (bound: at most {MAX_OVERALL_ACCURACY_LOSS}).
The two classifications give the same class on {agree:.2%} of the mosaic's pixels.

## Speed

Not measured here (no GPU on the machine that built it): see `bench/RESULTS.md`.

## Limits

All the fp32 model's limits apply; water is absent from the mosaic's labels.
"""


def build_fp16(source: Path = FP32_MODEL, destination: Path = FP16_MODEL) -> ModelContract:
    """Convert ``source`` to fp16, measure both precisions on the whole mosaic through
    the plugin, and write ``destination`` with its contract and card (``.md`` beside)."""
    fp32 = read_contract(source)
    with tempfile.TemporaryDirectory(prefix="landcover-fp16-") as folder:
        work = Path(folder)
        converted = work / "fp16.onnx"
        convert_fp16(scores_only(source, work), converted)
        write_metadata(converted, int8_contract(fp32, file_sha256(source), "", {}, "fp16"))
        runs = {
            name: evaluate(name, str(path), work, MOSAIC, LABELS, WHOLE_MOSAIC)
            for name, path in (("fp32", source), ("fp16", converted))
        }
        agree = agreement_share(runs["fp32"].classified, runs["fp16"].classified)
        measured = {name: Accuracy.of(run) for name, run in runs.items()}
        card = fp16_card(fp32, measured["fp32"], measured["fp16"], agree)
        contract = int8_contract(fp32, file_sha256(source), card, measured, "fp16")
        write_variant(converted, destination, contract, card)
    return contract


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m model_training.release.quantize", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("source", nargs="?", type=Path, default=FP32_MODEL)
    parser.add_argument("destination", nargs="?", type=Path)
    parser.add_argument("--fp16", action="store_true", help="the fp16 variant (GPUs) instead")
    args = parser.parse_args(argv)
    if args.destination is None:
        args.destination = FP16_MODEL if args.fp16 else INT8_MODEL
    try:
        (build_fp16 if args.fp16 else build)(args.source, args.destination)
    except (LandcoverError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {args.destination} and {args.destination.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
