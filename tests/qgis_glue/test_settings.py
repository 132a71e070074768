# SPDX-License-Identifier: GPL-2.0-or-later
"""``qgis_glue.settings``: the plugin's ``landcover/...`` keys and their defaults."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from qgis.core import QgsApplication, QgsSettings

from qgis_landcover.qgis_glue import settings as settings_module
from qgis_landcover.qgis_glue.settings import (
    CACHE_DIR_SETTING,
    CATALOGUES_SETTING,
    model_cache_dir,
    model_catalogues,
)

from ..conftest import ROOT
from ..qgis_profile import PROFILE


@pytest.fixture
def qgs_settings() -> Iterator[QgsSettings]:
    """QGIS settings with the plugin's keys removed before and after the test."""
    settings = QgsSettings()
    for key in (CACHE_DIR_SETTING, CATALOGUES_SETTING):
        settings.remove(key)
    yield settings
    for key in (CACHE_DIR_SETTING, CATALOGUES_SETTING):
        settings.remove(key)


def test_every_documented_key_is_defined_here_and_nowhere_else() -> None:
    """The README documents the keys users set; they are the ones this module reads, and
    no other plugin module spells a ``landcover/`` key."""
    keys = {CACHE_DIR_SETTING, CATALOGUES_SETTING}
    assert keys == {"landcover/model_cache_dir", "landcover/model_catalogues"}
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert set(re.findall(r"`(landcover/[a-z_]+)`", readme)) == keys
    spelled = {
        path.relative_to(ROOT).as_posix()
        for path in (ROOT / "qgis_landcover").rglob("*.py")
        if re.search(r"[\"']landcover/[a-z_]", path.read_text(encoding="utf-8"))
    }
    assert spelled == {Path(settings_module.__file__).relative_to(ROOT).as_posix()}


def test_default_cache_is_under_the_qgis_settings_folder(qgs_settings: QgsSettings) -> None:
    expected = Path(QgsApplication.qgisSettingsDirPath()) / "landcover" / "models"
    assert model_cache_dir() == expected
    qgs_settings.setValue(CACHE_DIR_SETTING, "   ")  # blank: the default too
    assert model_cache_dir() == expected


def test_cache_setting_is_used_with_home_expanded(
    qgs_settings: QgsSettings, tmp_path: Path
) -> None:
    qgs_settings.setValue(CACHE_DIR_SETTING, f" {tmp_path / 'models'} ")
    assert model_cache_dir() == tmp_path / "models"
    qgs_settings.setValue(CACHE_DIR_SETTING, "~/landcover-models")
    assert model_cache_dir() == Path.home() / "landcover-models"


def test_catalogues_from_the_setting_then_the_extra_one(
    qgs_settings: QgsSettings, tmp_path: Path
) -> None:
    assert model_catalogues() == []
    assert model_catalogues("c.json") == ["c.json"]
    # One string separated by ';' (what a user types), blanks left out.
    qgs_settings.setValue(CATALOGUES_SETTING, f"{tmp_path / 'a.json'}; ;{tmp_path / 'b.md'}")
    assert model_catalogues("c.json") == [
        str(tmp_path / "a.json"),
        str(tmp_path / "b.md"),
        "c.json",
    ]
    # A list (what QgsSettings stores for a string list).
    qgs_settings.setValue(CATALOGUES_SETTING, ["x.json", " y.md "])
    assert model_catalogues() == ["x.json", "y.md"]


def test_tests_use_the_project_profile() -> None:
    """pytest-qgis would put its profile (and an authentication database) in
    .qgis-settings/ at the repository root; tests/qgis_profile.py points it here."""
    settings_dir = Path(QgsApplication.qgisSettingsDirPath()).resolve()
    assert settings_dir == (PROFILE / "profiles" / "default").resolve()
    assert Path(QgsSettings().fileName()).resolve().is_relative_to(PROFILE.resolve())
