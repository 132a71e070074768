# SPDX-License-Identifier: GPL-2.0-or-later
"""``core.models.onnx_metadata``: an ONNX file's metadata read without ONNX Runtime
equals what ONNX Runtime reads (the independent oracle), for the shipped models and
models written with ``onnx``; damaged files are refused."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
from onnx import TensorProto, helper

from qgis_landcover.core.errors import InputError
from qgis_landcover.core.models.contract import read_metadata_props
from qgis_landcover.core.models.onnx_metadata import read_onnx_metadata

from ...onnx_models import contract_for, pointwise_model

SHIPPED = Path(__file__).resolve().parents[3] / "qgis_landcover" / "models"


def ort_metadata(path: Path) -> dict[str, str]:
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return dict(session.get_modelmeta().custom_metadata_map)


@pytest.mark.parametrize(
    "name", ["azure_2018_unet.onnx", "azure_2018_unet_int8.onnx", "azure_2018_unet_finetuned.onnx"]
)
def test_shipped_models_read_as_onnx_runtime_reads_them(name: str) -> None:
    path = SHIPPED / name
    metadata = read_onnx_metadata(path)
    assert metadata == ort_metadata(path)
    assert "class_names" in metadata


def tiny_model(path: Path, props: list[tuple[str, str]]) -> Path:
    """An identity model with ``props`` as metadata, in that order (repeats kept)."""
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    for key, value in props:
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(path))
    return path


def test_unicode_empty_and_repeated_keys(tmp_path: Path) -> None:
    props = [("name", "Wald – forêt 🌲"), ("empty", ""), ("k", "first"), ("k", "last")]
    path = tiny_model(tmp_path / "m.onnx", props)
    assert read_onnx_metadata(path) == ort_metadata(path)
    assert read_onnx_metadata(path) == {"name": "Wald – forêt 🌲", "empty": "", "k": "last"}
    assert read_onnx_metadata(tiny_model(tmp_path / "none.onnx", [])) == {}


def test_a_model_with_weights_reads_the_same(tmp_path: Path) -> None:
    path = pointwise_model(tmp_path / "p.onnx", np.eye(4), contract=contract_for(4))
    assert read_onnx_metadata(path) == ort_metadata(path)


@pytest.mark.parametrize("cut", [0.5, 0.999])
def test_a_truncated_file_is_refused(tmp_path: Path, cut: float) -> None:
    data = (SHIPPED / "azure_2018_unet.onnx").read_bytes()
    path = tmp_path / "cut.onnx"
    path.write_bytes(data[: int(len(data) * cut)])
    with pytest.raises(InputError, match="Not a valid ONNX model"):
        read_onnx_metadata(path)


def test_text_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "notes.onnx"
    path.write_text("# not a model\n" * 10)
    with pytest.raises(InputError, match="Not a valid ONNX model"):
        read_onnx_metadata(path)


def test_contract_reading_falls_back_without_onnx_runtime(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = pointwise_model(tmp_path / "p.onnx", np.eye(4), contract=contract_for(4))
    expected = read_metadata_props(path)
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime fails
    assert read_metadata_props(path) == expected
