# SPDX-License-Identifier: GPL-2.0-or-later
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from qgis_landcover.core.errors import InputError, ModelContractError
from qgis_landcover.core.models.contract import ModelContract, read_contract


def example_contract(**changes: object) -> ModelContract:
    values: dict[str, object] = {
        "class_names": {0: "no data", 1: "water", 2: "tree"},
        "class_colors": {0: "#000000", 1: "#1f78b4", 2: "#33a02c"},
        "band_names": ["red", "green", "blue", "nir"],
        "resolution_cm": 100.0,
        "tile_size": 256,
        "output_margin": 64,
        "nodata_channel": 0,
        "input_scale": 1 / 256,
        "provenance": {"data": "test"},
    }
    values.update(changes)
    return ModelContract(**values)  # type: ignore[arg-type]


def one_by_one_conv_model(path: Path, in_channels: int = 4, classes: int = 3) -> Path:
    weights = np.arange(classes * in_channels, dtype=np.float32).reshape(classes, in_channels, 1, 1)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["y"])],
        "conv",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", in_channels, "H", "W"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", classes, "H", "W"])],
        [numpy_helper.from_array(weights, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


def test_round_trip_through_metadata_props() -> None:
    contract = example_contract()
    props = contract.to_metadata_props()
    # Deepness reads these keys with json.loads; the units are Deepness's.
    assert json.loads(props["model_type"]) == "Segmentor"
    assert json.loads(props["class_names"]) == {"0": "no data", "1": "water", "2": "tree"}
    assert json.loads(props["resolution"]) == 100.0
    assert json.loads(props["tile_size"]) == json.loads(props["tiles_size"]) == 256
    assert ModelContract.from_metadata_props(props) == contract
    assert contract.class_values == {0: 0, 1: 1, 2: 2}
    assert contract.class_channels == [1, 2]
    assert contract.output_size == 128


def test_deepness_style_metadata_gets_deepness_defaults() -> None:
    props = {
        "model_type": json.dumps("Segmentor"),
        "class_names": json.dumps({0: "background", 1: "field"}),
        "resolution": json.dumps(50),
        "tiles_size": json.dumps(512),
        "tiles_overlap": json.dumps(15),
        "standardization_mean": json.dumps([0.485, 0.456, 0.406]),
        "standardization_std": json.dumps([0.229, 0.224, 0.225]),
    }
    contract = ModelContract.from_metadata_props(props).with_band_count(3)
    assert contract.tile_size == 512 and contract.tiles_overlap_percent == 15
    assert contract.input_scale == pytest.approx(1 / 255)
    assert contract.output_margin == 0 and contract.nodata_channel is None
    assert contract.num_bands == 3
    assert contract.class_values == {0: 1, 1: 2}


def test_missing_required_key_is_named() -> None:
    props = example_contract().to_metadata_props()
    del props["resolution"]
    with pytest.raises(ModelContractError, match="lacks 'resolution'"):
        ModelContract.from_metadata_props(props)


def test_not_onnx_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "model.onnx"
    path.write_text("hello")
    with pytest.raises(InputError, match="Not a valid ONNX model"):
        read_contract(path)
    with pytest.raises(InputError, match="not found"):
        read_contract(tmp_path / "missing.onnx")
    with pytest.raises(InputError, match="is a folder, not a file"):
        read_contract(tmp_path)


def test_input_keys_round_trip_and_are_written_only_when_declared() -> None:
    declared = example_contract(input_dtype="uint8", input_range=(0, 255))
    props = declared.to_metadata_props()
    assert json.loads(props["input_dtype"]) == "uint8"
    assert json.loads(props["input_range"]) == [0, 255]
    assert ModelContract.from_metadata_props(props) == declared
    # A model that declares nothing keeps its metadata as it was (no new keys).
    props = example_contract().to_metadata_props()
    assert "input_dtype" not in props and "input_range" not in props


@pytest.mark.parametrize(
    ("changes", "dtype", "value_range"),
    [
        # The 2018 model (input_scale 1/256) and Deepness's 1/255: 8-bit imagery.
        ({}, "uint8", (0, 255)),
        ({"input_scale": 1 / 255}, "uint8", (0, 255)),
        ({"input_scale": 1 / 127.5}, "uint8", (0, 255)),
        # 1/10000: reflectance x 10000 in 16 bits; 1/4095: 12-bit values.
        ({"input_scale": 1e-4}, "uint16", (0, 10000)),
        ({"input_scale": 1 / 4095}, "uint16", (0, 4095)),
        # Declared keys win; a range alone gets the smallest type holding it.
        ({"input_range": (0, 1)}, "uint8", (0, 1)),
        ({"input_range": (0.0, 1.5)}, "float32", (0, 1.5)),
        ({"input_range": (-1, 1), "input_dtype": "float32"}, "float32", (-1, 1)),
        ({"input_dtype": "uint16"}, "uint16", (0, 65535)),
        ({"input_dtype": "float32"}, "float32", None),
    ],
)
def test_expected_input_declared_or_derived(
    changes: dict[str, object], dtype: str, value_range: tuple[float, float] | None
) -> None:
    expectation = example_contract(**changes).expected_input()
    assert expectation is not None
    assert expectation.dtype == dtype and expectation.value_range == value_range


def test_expected_input_is_unknown_for_other_scales() -> None:
    assert example_contract(input_scale=1.0).expected_input() is None
    assert example_contract(input_scale=0.01).expected_input() is None
