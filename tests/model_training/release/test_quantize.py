# SPDX-License-Identifier: GPL-2.0-or-later
"""The int8 variant: its quantisation is deterministic, the shipped file derives from
the shipped fp32 model and is catalogued as its variant, and it classifies the whole
shipped mosaic through the plugin as its card states.

Measured (model_training/release/quantize.py, ONNX Runtime 1.32, this CPU; each file at
the tile the plugin chooses: 384 px fp32, 640 px int8): fp32 and int8 give the same
class on 99.59 % of the mosaic's 524,288 pixels; the floor 0.995 leaves room for other
CPUs' rounding, not for a broken model.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from osgeo import gdal

from model_training.release import evaluate_models
from model_training.release.quantize import (
    FP32_MODEL,
    GRAPH_REWRITES,
    INT8_MODEL,
    MAX_OVERALL_ACCURACY_LOSS,
    calibration_tiles,
    quantize_int8,
    scores_only,
)
from qgis_landcover.core.files.checksum import file_sha256
from qgis_landcover.core.models.catalogue import load_catalogue
from qgis_landcover.core.models.contract import read_contract
from tests.model_training.release.test_graph_rewrites import _small_unet
from tests.onnx_models import pointwise_model

Run = Callable[..., dict[str, Any]]
#: Share of the mosaic's pixels where int8 and fp32 agree must exceed this.
AGREEMENT_FLOOR = 0.995


def test_quantization_gives_the_same_bytes_twice(tmp_path: Path) -> None:
    weights = np.random.default_rng(1).normal(size=(3, 4)).astype(np.float32)
    model = pointwise_model(tmp_path / "tiny.onnx", weights)
    tiles = calibration_tiles()[:4]
    first, second = tmp_path / "first.onnx", tmp_path / "second.onnx"
    quantize_int8(model, first, tiles)
    quantize_int8(model, second, tiles)
    assert first.read_bytes() == second.read_bytes()
    assert b"QuantizeLinear" in first.read_bytes()


def test_quantization_keeps_every_output_and_rewrites_the_graph_first(tmp_path: Path) -> None:
    """A graph with an extra output (here named "features"): quantize_int8 keeps every
    output (build drops the contract's features output first: scores_only), its
    ConvTranspose became a sub-pixel Conv and its 5-channel head computes 16 (sliced
    back to 5)."""
    source = tmp_path / "small.onnx"
    onnx.save(_small_unet(), str(source))
    quantized = tmp_path / "int8.onnx"
    tiles = [t[:, :, :32, :32] for t in calibration_tiles()[:2]]
    quantize_int8(source, quantized, tiles)
    model = onnx.load(str(quantized))
    assert [o.name for o in model.graph.output] == ["scores", "features"]
    ops = [n.op_type for n in model.graph.node]
    assert "ConvTranspose" not in ops and "DepthToSpace" in ops and "QuantizeLinear" in ops
    session = ort.InferenceSession(str(quantized), providers=["CPUExecutionProvider"])
    scores, features = session.run(None, {"image": tiles[0][:, :, :8, :8]})
    assert scores.shape == (1, 5, 16, 16) and features.shape == (1, 16, 8, 8)


def test_shipped_int8_is_quantised_from_the_rewritten_graph() -> None:
    int8, fp32 = onnx.load(str(INT8_MODEL)), onnx.load(str(FP32_MODEL))
    ops = [n.op_type for n in int8.graph.node]
    assert ops.count("DepthToSpace") == 3 and "ConvTranspose" not in ops
    # The scores, not the fp32 model's features output (its head is not float32 here).
    assert [o.name for o in fp32.graph.output] == ["scores", "features"]
    assert [o.name for o in int8.graph.output] == ["scores"]
    contract = read_contract(INT8_MODEL)
    assert read_contract(FP32_MODEL).features_output is not None
    assert contract.features_output is None
    assert contract.provenance["quantization"]["graph_rewrites"] == list(GRAPH_REWRITES)


def test_variants_are_made_from_the_scores_only(tmp_path: Path) -> None:
    stripped = scores_only(FP32_MODEL, tmp_path)
    assert stripped != FP32_MODEL
    assert [o.name for o in onnx.load(str(stripped)).graph.output] == ["scores"]
    assert read_contract(stripped).features_output is None
    assert scores_only(stripped, tmp_path) == stripped  # nothing to drop


def test_calibration_tiles_are_not_the_evaluation_mosaic() -> None:
    tiles = calibration_tiles()
    assert len(tiles) == 28
    assert all(t.shape == (1, 4, 256, 256) and t.dtype == np.float32 for t in tiles)
    assert min(t.min() for t in tiles) >= 0.0 and max(t.max() for t in tiles) < 1.0


def test_shipped_int8_derives_from_the_shipped_fp32_and_is_its_variant() -> None:
    fp32, int8 = read_contract(FP32_MODEL), read_contract(INT8_MODEL)
    assert int8.provenance["precision"] == "int8"
    assert int8.provenance["derived_from"] == {
        "name": "azure-2018-unet",
        "sha256": file_sha256(FP32_MODEL),
    }
    assert int8.provenance["max_overall_accuracy_loss"] == MAX_OVERALL_ACCURACY_LOSS
    assert (int8.band_names, int8.class_names, int8.output_margin, int8.input_scale) == (
        fp32.band_names,
        fp32.class_names,
        fp32.output_margin,
        fp32.input_scale,
    )
    catalogue = load_catalogue()
    variants = catalogue.variants("azure-2018-unet")
    assert sorted(variants) == ["fp32", "int8"]
    assert variants["int8"].file == INT8_MODEL
    assert variants["int8"].sha256 == file_sha256(INT8_MODEL)
    assert variants["int8"].variant_of == "azure-2018-unet"
    assert INT8_MODEL.with_suffix(".md").read_text(encoding="utf-8") == int8.model_card


def _mosaic_accuracy(classes: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """OA, kappa and mean IoU over the classes present in the labels (as
    landcover:agreement computes them; labels 5, 6 -> 4, others outside 1-4 ignored)."""
    labels = np.where(np.isin(labels, (5, 6)), 4, labels)
    valid = (labels >= 1) & (labels <= 4)
    predicted, reference = classes[valid].astype(np.int64), labels[valid].astype(np.int64)
    matrix = np.bincount(predicted * 5 + reference, minlength=25).reshape(5, 5)[1:, 1:]
    total = matrix.sum()
    accuracy = np.trace(matrix) / total
    chance = (matrix.sum(0) * matrix.sum(1)).sum() / total**2
    present = matrix.sum(0) > 0
    with np.errstate(invalid="ignore"):  # classes absent from both: 0 / 0, not used
        iou = np.diag(matrix) / (matrix.sum(0) + matrix.sum(1) - np.diag(matrix))
    return {
        "overall_accuracy": float(accuracy),
        "kappa": float((accuracy - chance) / (1 - chance)),
        "mean_iou": float(iou[present].mean()),
    }


@pytest.mark.slow
def test_int8_agrees_with_fp32_and_scores_what_its_card_states(
    run_algorithm: Run, tmp_path: Path
) -> None:
    labels = gdal.Open(str(evaluate_models.LABELS)).ReadAsArray()
    classified = {}
    for precision in ("fp32", "int8"):
        results = run_algorithm(
            "classify",
            {
                "INPUT": str(evaluate_models.MOSAIC),
                "MODEL": "",
                "PRECISION": precision,
                "DEVICE": "cpu",
                "OUTPUT": str(tmp_path / f"{precision}.tif"),
            },
        )
        classified[precision] = gdal.Open(results["OUTPUT"]).ReadAsArray()
    assert classified["int8"].shape == labels.shape == (512, 1024)
    assert np.mean(classified["int8"] == classified["fp32"]) > AGREEMENT_FLOOR
    stated = read_contract(INT8_MODEL).provenance["mosaic_accuracy"]
    for precision, classes in classified.items():
        measured = _mosaic_accuracy(classes, labels)
        for key, value in measured.items():
            assert value == pytest.approx(stated[precision][key], abs=0.001), (precision, key)
    loss = stated["fp32"]["overall_accuracy"] - stated["int8"]["overall_accuracy"]
    assert loss <= MAX_OVERALL_ACCURACY_LOSS


@pytest.mark.slow
def test_shipped_int8_graph_is_a_fresh_quantisation_of_the_shipped_fp32(tmp_path: Path) -> None:
    fresh = tmp_path / "int8.onnx"
    quantize_int8(scores_only(FP32_MODEL, tmp_path), fresh, calibration_tiles())
    shipped_graph = onnx.load(str(INT8_MODEL)).graph.SerializeToString()
    assert onnx.load(str(fresh)).graph.SerializeToString() == shipped_graph
