# SPDX-License-Identifier: GPL-2.0-or-later
"""The models shipped in ``qgis_landcover/models``: catalogue entries that match the
files, model cards beside them and in their metadata, and each model run through the
plugin (``landcover:classify``) on the held-out column of the real mosaic, scored
against its labels with numpy.

Bounds, from ``model_training/release/EVALUATION.md`` (measured through the plugin on the same
131,072 held-out pixels, 34.6 % tree canopy and 65.4 % low vegetation): the converted
2018 model 0.6155 overall accuracy, kappa 0.3233; the fine-tuned one 0.6175, 0.3274.
The floors (0.60, 0.30) sit 0.015 and 0.023 under the lower of them: room for ONNX
Runtime versions and CPUs, not for a broken pipeline. Overall accuracy alone cannot tell
a working model from a broken one here (calling every pixel low vegetation scores
0.654, every pixel tree 0.346), so kappa (0 for any constant map) must clear its floor.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from osgeo import gdal
from sklearn.metrics import accuracy_score, cohen_kappa_score

from model_training.release import evaluate_models
from model_training.release.ship import MAX_SHIPPED_BYTES
from qgis_landcover.core.files.checksum import file_sha256
from qgis_landcover.core.models.catalogue import BUILTIN_CATALOGUE, MODELS_DIR, load_catalogue
from qgis_landcover.core.models.contract import read_contract

Run = Callable[..., dict[str, Any]]

DOCUMENT = json.loads(BUILTIN_CATALOGUE.read_text(encoding="utf-8"))
LOCAL = [entry for entry in DOCUMENT["models"] if "file" in entry]
#: Floors on the held-out column (see the module docstring).
ACCURACY_FLOOR = 0.60
KAPPA_FLOOR = 0.30
#: The low-vegetation share of the held-out labelled pixels: what a constant map of the
#: majority class scores.
MAJORITY_SHARE = 0.6539


def labels_and_extent() -> tuple[np.ndarray, str]:
    window = evaluate_models.HELD_OUT
    dataset = gdal.Open(str(evaluate_models.LABELS))
    labels = dataset.ReadAsArray(window.col_off, window.row_off, window.width, window.height)
    labels = np.where(np.isin(labels, (5, 6)), 4, labels)
    return labels, evaluate_models.window_extent(evaluate_models.LABELS, window)


def test_every_shipped_model_is_listed_once_with_its_checksum() -> None:
    shipped = sorted(p.name for p in MODELS_DIR.glob("*.onnx"))
    assert sorted(entry["file"] for entry in LOCAL) == shipped
    for entry in LOCAL:
        path = MODELS_DIR / entry["file"]
        assert entry["size"] == path.stat().st_size < MAX_SHIPPED_BYTES
        assert entry["sha256"] == file_sha256(path), "python -m model_training.release.ship"


@pytest.mark.parametrize("entry", LOCAL, ids=[e["name"] for e in LOCAL])
def test_catalogue_entry_matches_the_model_and_its_card(entry: dict[str, Any]) -> None:
    path = MODELS_DIR / entry["file"]
    contract = read_contract(path)
    # The classes the catalogue documents are the model's (value -> name, no "no data").
    values = {
        contract.class_values[c]: name
        for c, name in contract.class_names.items()
        if c != contract.nodata_channel
    }
    assert {int(k): v for k, v in entry["classes"].items()} == values
    assert entry["resolution"] == contract.resolution_cm
    assert entry["bands"] == contract.band_names
    assert entry["tile_size"] == contract.tile_size
    assert entry["licence"] == contract.license
    # The card beside the model is the one in its metadata, and says what it must.
    card = path.with_suffix(".md").read_text(encoding="utf-8")
    assert contract.model_card == card
    if "variant_of" in entry:  # a variant's card points to its model's (test_quantize.py)
        assert f"variant of {entry['variant_of']}" in card
        assert "## Measured accuracy: the whole shipped mosaic, through the plugin" in card
        return
    for heading in ("licence", "Training data", "Classes and colours", "Input expectations"):
        assert heading in card, heading
    assert "## Measured accuracy: held-out pixels, through the plugin" in card
    assert "131,072 labelled pixels" in card
    assert "water" in card and "absent" in card


def test_default_model_is_a_shipped_one() -> None:
    default = load_catalogue().default_entry()
    assert default.file is not None and default.file.parent == MODELS_DIR
    assert default.name in {entry["name"] for entry in LOCAL}


@pytest.mark.parametrize("entry", LOCAL, ids=[e["name"] for e in LOCAL])
def test_shipped_model_classifies_the_held_out_column_through_the_plugin(
    run_algorithm: Run, tmp_path: Path, entry: dict[str, Any]
) -> None:
    labels, extent = labels_and_extent()
    valid = (labels >= 1) & (labels <= 4)
    assert valid.sum() == 131_072
    assert np.mean(labels[valid] == 3) == pytest.approx(MAJORITY_SHARE, abs=5e-5)
    results = run_algorithm(
        "classify",
        {
            "INPUT": str(evaluate_models.MOSAIC),
            "EXTENT": extent,
            "MODEL": str(MODELS_DIR / entry["file"]),
            "DEVICE": "cpu",
            "OUTPUT": str(tmp_path / "classes.tif"),
        },
    )
    classes = gdal.Open(results["OUTPUT"]).ReadAsArray()
    assert classes.shape == labels.shape
    assert set(np.unique(classes)) <= {int(value) for value in entry["classes"]}
    assert accuracy_score(labels[valid], classes[valid]) > ACCURACY_FLOOR
    assert cohen_kappa_score(labels[valid], classes[valid]) > KAPPA_FLOOR


def test_empty_model_is_the_default(run_algorithm: Run, tmp_path: Path) -> None:
    _, extent = labels_and_extent()
    outputs = []
    default = load_catalogue().default_entry().file
    # PRECISION=fp32: auto may pick the default model's int8 variant (test_quantize.py).
    for name, model, precision in (("empty", "", "fp32"), ("default", str(default), "auto")):
        results = run_algorithm(
            "classify",
            {
                "INPUT": str(evaluate_models.MOSAIC),
                "EXTENT": extent,
                "MODEL": model,
                "PRECISION": precision,
                "DEVICE": "cpu",
                "OUTPUT": str(tmp_path / f"{name}.tif"),
            },
        )
        outputs.append(gdal.Open(results["OUTPUT"]).ReadAsArray())
    np.testing.assert_array_equal(outputs[0], outputs[1])
