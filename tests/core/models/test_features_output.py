# SPDX-License-Identifier: GPL-2.0-or-later
"""The contract's ``features_output``: round trip, every inconsistency named, and the
graph check (the named output exists after the scores, with the declared channels).

Oracles: hand-written metadata values and graphs described by hand."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from qgis_landcover.core.errors import ModelContractError
from qgis_landcover.core.models.contract import FeaturesOutput, ModelContract
from qgis_landcover.core.models.validation import check_graph

from .test_contract import example_contract

FEATURES = FeaturesOutput("features", 64, 3, "head.weight", "head.bias", "relu")


def tensor(name: str, shape: list[object]) -> SimpleNamespace:
    return SimpleNamespace(name=name, type="tensor(float)", shape=shape)


def test_round_trip_and_files_without_it() -> None:
    contract = example_contract(features_output=FEATURES)
    props = contract.to_metadata_props()
    assert json.loads(props["features_output"]) == {
        "name": "features", "channels": 64, "kernel_size": 3, "weight": "head.weight",
        "bias": "head.bias", "activation": "relu", "margin": 0,
    }  # fmt: skip
    assert ModelContract.from_metadata_props(props) == contract
    assert contract.features_output is not None
    assert contract.features_output.neighbourhood_features == 576
    assert "features_output" not in example_contract().to_metadata_props()
    selected = example_contract(
        features_output=FeaturesOutput("f", 8, 1, "w", "b", head_channels=(2, 0, 1))
    )
    assert ModelContract.from_metadata_props(selected.to_metadata_props()) == selected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ('{"name": "f"}', r"expected an object with 'name', 'channels'"),
        ('{"name": "f", "channels": 2.5, "kernel_size": 3, "weight": "w", "bias": "b"}',
         r"must be integers"),
        ('{"name": "f", "channels": 8, "kernel_size": 2, "weight": "w", "bias": "b"}',
         r"'kernel_size' must be an odd number >= 1, got 2"),
        ('{"name": "f", "channels": 8, "kernel_size": 3, "weight": "w", "bias": "b", '
         '"activation": "tanh"}', r"'activation' 'tanh' is not one of none, relu, softmax"),
        ('{"name": "f", "channels": 8, "kernel_size": 3, "weight": "w", "bias": "b", '
         '"margin": 65}', r"'margin' 65 must lie between 0 and 'output_margin' 64"),
        ('{"name": "f", "channels": 8, "kernel_size": 3, "weight": "w", "bias": "b", '
         '"head_channels": [1, 1, 2]}', r"'head_channels' \[1, 1, 2\] must give one distinct"),
        ('{"name": "", "channels": 8, "kernel_size": 3, "weight": "w", "bias": "b"}',
         r"must name graph tensors"),
    ],
)  # fmt: skip
def test_inconsistent_values_are_named(value: str, message: str) -> None:
    props = {**example_contract().to_metadata_props(), "features_output": value}
    with pytest.raises(ModelContractError, match=message):
        ModelContract.from_metadata_props(props)


def test_the_graph_must_have_the_output_after_the_scores() -> None:
    contract = example_contract(features_output=FEATURES)
    image = [tensor("image", ["batch", 4, "h", "w"])]
    scores = tensor("scores", ["batch", 3, "sh", "sw"])
    features = tensor("features", ["batch", 64, "fh", "fw"])
    check_graph("m.onnx", contract, image, [scores, features], names_bands=True)
    with pytest.raises(ModelContractError, match=r"m.onnx: metadata 'features_output' names "
                       r"the output 'features', but the model's outputs after the scores "
                       r"are \[\]"):  # fmt: skip
        check_graph("m.onnx", contract, image, [scores], names_bands=True)
    with pytest.raises(ModelContractError, match=r"declares 64 channels but the output"):
        wrong = tensor("features", ["batch", 32, "fh", "fw"])
        check_graph("m.onnx", contract, image, [scores, wrong], names_bands=True)
    with pytest.raises(ModelContractError, match=r"names 3 classes but the model outputs 64"):
        # The features as the first output are taken for the scores, and refused.
        check_graph("m.onnx", contract, image, [features, scores], names_bands=True)
