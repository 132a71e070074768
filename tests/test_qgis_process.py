# SPDX-License-Identifier: GPL-2.0-or-later
"""``qgis_process`` (through scripts/qgis_process) sees the plugin's provider."""

from __future__ import annotations

from qgis_landcover.algorithms import algorithm_classes

from .conftest import qgis_process_json


def test_qgis_process_lists_provider_landcover() -> None:
    listing = qgis_process_json("list")
    assert "landcover" in listing["providers"], sorted(listing["providers"])
    provider = listing["providers"]["landcover"]
    assert provider["name"] == "Land cover (U-Net)"
    expected = {f"landcover:{cls().name()}" for cls in algorithm_classes()}
    assert set(provider["algorithms"]) == expected
