# SPDX-License-Identifier: GPL-2.0-or-later
"""The model card layout (every section in its place, tables and bullet points as
Markdown), and the shipped fine-tuned model's card rebuilt byte for byte from its own
record (its metadata, its notes file and the held-out report)."""

from __future__ import annotations

import json
from pathlib import Path

from model_training.config import config_from_dict
from model_training.release.model_card import CardSection, CardTable, ModelCard, trained_model_card
from model_training.release.ship import read_notes
from qgis_landcover.core.models.catalogue import MODELS_DIR
from qgis_landcover.core.models.contract import read_contract

from ...conftest import ROOT

EVALUATION = ROOT / "model_training" / "release" / "evaluation"


def test_card_renders_every_section_in_order() -> None:
    card = ModelCard(
        title="tiny",
        summary="A tiny model.",
        sources=("Made here.", "Licence: MIT."),
        training_data=("Six patches.",),
        classes=("Value = channel.", "", CardTable(("value", "class"), (("1", "water"),))),
        inputs=("Bands: red.",),
        sections=(
            "## Held out\n\nAll of it.\n",
            CardSection("Check", ("- Overall accuracy: **0.900**",)),
        ),
        limits=("Tiny.",),
    )
    assert card.render() == (
        "# tiny\n\nA tiny model.\n\n"
        "## Source and licence\n\n- Made here.\n- Licence: MIT.\n\n"
        "## Training data\n\nSix patches.\n\n"
        "## Classes and colours\n\nValue = channel.\n\n| value | class |\n|---|---|\n"
        "| 1 | water |\n\n"
        "## Input expectations\n\n- Bands: red.\n\n"
        "## Held out\n\nAll of it.\n\n"
        "## Check\n\n- Overall accuracy: **0.900**\n\n"
        "## Known limits\n\n- Tiny.\n"
    )


def test_shipped_trained_model_card_is_rebuilt_from_its_record() -> None:
    # qgis_landcover/models/azure_2018_unet_finetuned.md was written by
    # `python -m model_training.release.ship` from these same inputs.
    shipped = MODELS_DIR / "azure_2018_unet_finetuned.onnx"
    contract = read_contract(shipped)
    provenance = contract.provenance
    report = json.loads((EVALUATION / "heldout.json").read_text(encoding="utf-8"))
    notes = read_notes(Path(EVALUATION / "azure_2018_unet_finetuned.yaml"), report)
    card = trained_model_card(
        contract,
        config_from_dict(provenance["config"]),
        provenance["metrics"],
        provenance,
        notes,
    )
    assert card.render() == shipped.with_suffix(".md").read_text(encoding="utf-8")
    assert card.render() == contract.model_card
