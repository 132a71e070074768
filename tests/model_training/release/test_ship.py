# SPDX-License-Identifier: GPL-2.0-or-later
"""Shipping a trained model: the evaluated graph copied unchanged with its card
completed (held-out section, sources, limits), nothing left behind on failure, and the
catalogue's checksums; the held-out card section against a hand-counted matrix."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import onnx
import pytest
import torch

from model_training.release import ship
from model_training.release.evaluate_models import heldout_section, report_markdown
from model_training.trainer import run
from qgis_landcover.core.accuracy.statistics import accuracy_statistics
from qgis_landcover.core.errors import InputError
from qgis_landcover.core.models.catalogue import read_catalogue
from qgis_landcover.core.models.contract import read_contract

from ..tiny import tiny_config

# Rows = classification, columns = reference, classes 2, 3, 4 (4 absent from the
# reference, as in the real held-out column): 100 tree, 300 low vegetation pixels.
MATRIX = [[90, 120, 0], [10, 180, 0], [0, 0, 0]]


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def report() -> dict[str, Any]:
    statistics = accuracy_statistics(
        MATRIX, [2, 3, 4], {2: "tree canopy", 3: "low vegetation", 4: "barren"}
    )
    return {
        "image": "data/mosaic.tif",
        "labels": "data/labels.tif",
        "window": [768, 0, 256, 512],
        "reference_remap": "5:4,6:4,15:0",
        "models": {"mine": {"model": "m.onnx", "classify_seconds": 1.0, **statistics.to_json()}},
    }


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.set_num_threads(1)
    run_dir = tmp_path_factory.mktemp("run")
    return run(tiny_config(run_dir, train__epochs=1, train__best_metric="none")).model_path


def without_metadata(path: Path) -> bytes:
    model = onnx.load(str(path))
    del model.metadata_props[:]
    return model.SerializeToString()


def test_heldout_section_and_table_state_the_hand_counted_figures() -> None:
    table = report_markdown(report())
    assert "| mine | 0.6750 | " in table and "| 1.0 |" in table
    assert table.count("| n/a |") == 2  # water and barren: absent from the reference
    text = heldout_section(report(), "mine")
    assert "pixels 768-1023 x 0-511 of `data/mosaic.tif`" in text
    # 400 labelled pixels: 100 tree (25 %), 300 low vegetation (75 %); 4 is not shown.
    assert "400 labelled pixels (tree canopy 25.0%, low vegetation 75.0%)" in text
    assert "| overall accuracy | **0.6750** |" in text  # (90 + 180) / 400
    # Kappa: p0 = 0.675, pc = (210 * 100 + 190 * 300) / 400^2 = 0.4875.
    assert f"| Cohen's kappa | **{(0.675 - 0.4875) / (1 - 0.4875):.4f}** |" in text
    assert "| IoU tree canopy | 0.4091 |" in text  # 90 / (90 + 120 + 10)
    assert "| IoU low vegetation | 0.5806 |" in text  # 180 / (180 + 10 + 120)
    assert "| IoU barren and impervious | n/a (absent from these pixels) |" in text
    assert "| IoU water | n/a (absent from these pixels) |" in text
    assert "A map of low vegetation only (the majority class) would score overall accuracy " \
        "0.750 and kappa 0" in text  # fmt: skip


def test_ship_copies_the_graph_and_completes_the_card(trained: Path, tmp_path: Path) -> None:
    notes_file = tmp_path / "notes.yaml"
    notes_file.write_text(
        "evaluated_as: mine\nsources: [Initial weights from nowhere.]\nlimits: [Tiny.]\n"
    )
    notes = ship.read_notes(notes_file, report())
    destination = tmp_path / "models" / "mine.onnx"
    destination.parent.mkdir()
    shipped = ship.ship(trained, destination, notes)

    assert without_metadata(destination) == without_metadata(trained)
    before, after = read_contract(trained), read_contract(destination)
    assert after == shipped
    assert {**after.__dict__, "model_card": ""} == {**before.__dict__, "model_card": ""}
    card = destination.with_suffix(".md").read_text(encoding="utf-8")
    assert after.model_card == card != before.model_card
    assert "## Measured accuracy: held-out pixels, through the plugin" in card
    assert "- Initial weights from nowhere." in card
    assert card.rstrip().endswith("- Tiny.")
    for limit in ship.PATCH_LIMITS:
        assert f"- {limit}" in card
    assert sorted(p.name for p in destination.parent.iterdir()) == ["mine.md", "mine.onnx"]


def test_failed_ship_leaves_nothing(
    trained: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ship, "MAX_SHIPPED_BYTES", 1000)
    destination = tmp_path / "mine.onnx"
    with pytest.raises(InputError, match="too big to ship"):
        ship.ship(trained, destination, ship.card_notes(None, None))
    assert list(tmp_path.iterdir()) == []


def test_bad_notes_are_named(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"has no model 'other' \(it has mine\)"):
        ship.card_notes(report(), "other")
    notes = tmp_path / "notes.yaml"
    notes.write_text("evaluated: mine\n")
    with pytest.raises(InputError, match=r"unknown keys \['evaluated'\]"):
        ship.read_notes(notes, report())


def test_catalogue_checksums_are_the_files(trained: Path, tmp_path: Path) -> None:
    model = tmp_path / "local.onnx"
    model.write_bytes(trained.read_bytes())
    catalogue = tmp_path / "catalogue.json"
    remote = {"name": "remote", "url": "https://example.org/m.onnx", "sha256": None}
    catalogue.write_text(
        json.dumps(
            {"default": "local", "models": [{"name": "local", "file": "local.onnx"}, remote]}
        )
    )
    [entry] = ship.update_catalogue(catalogue)
    document = json.loads(catalogue.read_text())
    assert document["models"][0]["sha256"] == hashlib.sha256(model.read_bytes()).hexdigest()
    assert document["models"][0]["size"] == len(model.read_bytes()) == entry["size"]
    assert document["models"][1] == remote
    assert read_catalogue(catalogue).entry("local").sha256 == entry["sha256"]
    model.unlink()
    with pytest.raises(InputError, match=r"'local': .*local\.onnx is missing"):
        ship.update_catalogue(catalogue)
