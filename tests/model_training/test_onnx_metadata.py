# SPDX-License-Identifier: GPL-2.0-or-later
""":mod:`model_training.onnx_metadata`: the contract written into an ONNX file reads back."""

from __future__ import annotations

from pathlib import Path

from model_training.onnx_metadata import write_metadata
from qgis_landcover.core.models.contract import read_contract

from ..core.models.test_contract import example_contract, one_by_one_conv_model


def test_written_metadata_is_read_back_from_onnx(tmp_path: Path) -> None:
    path = one_by_one_conv_model(tmp_path / "m.onnx")
    write_metadata(path, example_contract())
    assert read_contract(path) == example_contract()
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"]
