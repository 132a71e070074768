# SPDX-License-Identifier: GPL-2.0-or-later
"""``qgis_glue.model_resolution``: a MODEL value resolved with QGIS's settings
(downloads, proxies and progress texts: tests/algorithms/test_download_model.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from qgis.core import QgsProcessingFeedback, QgsSettings

from qgis_landcover.core.errors import InputError, LandcoverError
from qgis_landcover.qgis_glue.model_resolution import resolve_model_in_qgis
from qgis_landcover.qgis_glue.settings import CATALOGUES_SETTING

from ..onnx_models import contract_for, pointwise_model


@pytest.fixture
def settings() -> Iterator[QgsSettings]:
    settings = QgsSettings()
    yield settings
    settings.remove(CATALOGUES_SETTING)


def catalogue(path: Path, name: str) -> Path:
    entry = {"name": name, "url": f"https://models.example/{name}.onnx", "sha256": "ab" * 32}
    path.write_text(json.dumps({"models": [entry]}))
    return path


def test_names_come_from_the_setting_and_the_extra_catalogue(
    settings: QgsSettings, tmp_path: Path
) -> None:
    settings.setValue(CATALOGUES_SETTING, str(catalogue(tmp_path / "team.json", "team-unet")))
    extra = catalogue(tmp_path / "extra.json", "extra-unet")
    with pytest.raises(
        InputError, match=r"^Unknown model 'nope'\. Known catalogue models: "
    ) as raised:
        resolve_model_in_qgis("nope", QgsProcessingFeedback(), catalogue=str(extra))
    known = str(raised.value).split("Known catalogue models: ")[1]
    assert "azure-2018-unet" in known  # the plugin's own catalogue
    assert "team-unet" in known and "extra-unet" in known


def test_a_model_file_is_used_where_it_is(tmp_path: Path) -> None:
    path = pointwise_model(
        tmp_path / "unet.onnx", np.ones((3, 4), np.float32), contract=contract_for(3)
    )
    assert resolve_model_in_qgis(str(path), None) == path
    with pytest.raises(LandcoverError, match=r"^SHA-256 mismatch for "):
        resolve_model_in_qgis(str(path), None, sha256="0" * 64)
