# SPDX-License-Identifier: GPL-2.0-or-later
"""The one contract builder: classes in channel order, standardisation only where
measured, the card added afterwards; a trained model's channels are its class values
in increasing order."""

from __future__ import annotations

from pathlib import Path

from model_training.config import ExportConfig, NormalizationConfig
from model_training.release.contract import (
    ModelClass,
    build_contract,
    trained_contract,
    with_card,
)
from model_training.release.model_card import ModelCard

from ..tiny import tiny_config

CLASSES = [
    ModelClass(0, "no data", "#000000"),
    ModelClass(1, "water", "#1f78b4"),
    ModelClass(7, "tree canopy", "#33a02c"),
]


def test_build_contract_keeps_channel_order_and_what_is_given() -> None:
    export = ExportConfig(name="m", license="MIT", resolution_cm=50.0, tile_size=128)
    normalization = NormalizationConfig(input_scale=0.5, input_dtype="uint8")
    contract = build_contract(
        CLASSES,
        ["red", "nir"],
        export,
        normalization,
        output_margin=16,
        nodata_channel=0,
        provenance={"source": "here"},
    )
    assert contract.class_names == {0: "no data", 1: "water", 2: "tree canopy"}
    assert contract.class_values == {0: 0, 1: 1, 2: 7}
    assert contract.class_colors == {0: "#000000", 1: "#1f78b4", 2: "#33a02c"}
    assert contract.band_names == ["red", "nir"]
    assert (contract.name, contract.license, contract.resolution_cm) == ("m", "MIT", 50.0)
    assert (contract.tile_size, contract.tiles_overlap_percent) == (128, 25.0)
    assert (contract.output_margin, contract.nodata_channel) == (16, 0)
    assert (contract.input_scale, contract.input_range) == (0.5, (0.0, 255.0))
    assert contract.standardization_mean is None and contract.standardization_std is None
    assert contract.provenance == {"source": "here"} and contract.model_card == ""

    standardised = build_contract(
        CLASSES[1:], ["red", "nir"], export, normalization, output_margin=0,
        standardization=([0.25, 0.5], [1, 2]),
    )  # fmt: skip
    assert standardised.standardization_mean == [0.25, 0.5]
    assert standardised.standardization_std == [1.0, 2.0]
    assert standardised.class_values == {0: 1, 1: 7} and standardised.nodata_channel is None

    card = ModelCard("m", "A model.", (), (), (), (), (), ("None known.",))
    carded = with_card(contract, card)
    assert carded.model_card == card.render() and carded.model_card.startswith("# m\n")
    assert {**carded.__dict__, "model_card": ""} == contract.__dict__


def test_trained_channels_are_the_class_values_in_increasing_order(tmp_path: Path) -> None:
    config = tiny_config(
        tmp_path,
        labels__classes={"4": "barren", "2": "tree", "3": "grass"},
        labels__colors={},
        sampler__rare_classes=[4],
    )
    contract = trained_contract(config, [0.1] * 4, [0.2] * 4, metrics={"miou": 0.5})
    assert contract.class_names == {0: "tree", 1: "grass", 2: "barren"}
    assert contract.class_values == {0: 2, 1: 3, 2: 4}
    assert contract.class_colors == {}
    assert contract.standardization_mean == [0.1] * 4
    assert "- Mean IoU: 0.5000" in contract.model_card
    assert "| 2 | 4 | barren |  |" in contract.model_card
