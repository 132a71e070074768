# SPDX-License-Identifier: GPL-2.0-or-later
"""pytest plugin (``-p tests.qgis_profile`` in pyproject.toml): the QGIS that pytest-qgis
starts uses the project-local profile ``.qgis/pytest-profile``.

pytest-qgis (5.x) puts its profile in ``<rootdir>/.qgis-settings`` and sets
``QGIS_CUSTOM_CONFIG_PATH`` to it, overriding the Makefile's, with no option to choose
another folder; the profile holds an authentication database, which has no place at the
repository root. It does so before any conftest is imported, so this module, loaded with
``-p`` (before pytest-qgis's hooks run), replaces the function that chooses the folder.
``tests/qgis_glue/test_settings.py`` checks the result.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest_qgis.plugin
from qgis.core import QgsApplication
from qgis.PyQt.QtCore import QSettings

PROFILE = Path(__file__).resolve().parent.parent / ".qgis" / "pytest-profile"
"""The QGIS profile folder of the tests (``QGIS_CUSTOM_CONFIG_PATH``)."""


def load_project_profile(config: Any) -> None:
    """What pytest-qgis's ``_load_qgis_settings`` does, in :data:`PROFILE` (one
    subfolder per pytest-xdist worker, as pytest-qgis does)."""
    path = PROFILE
    worker = pytest_qgis.plugin._get_xdist_worker_id(config)
    if worker is not None:
        path = path / worker
    os.environ["QGIS_CUSTOM_CONFIG_PATH"] = str(path)
    os.environ["QGIS_OPTIONS_PATH"] = str(path)
    settings_path = path / "profiles" / "default"
    (settings_path / QgsApplication.QGIS_ORGANIZATION_NAME).mkdir(parents=True, exist_ok=True)
    QSettings.setDefaultFormat(QSettings.IniFormat)
    QSettings.setPath(QSettings.IniFormat, QSettings.UserScope, str(settings_path))


# Fail loudly if a pytest-qgis release renames what is replaced here.
assert callable(pytest_qgis.plugin._load_qgis_settings), "pytest-qgis changed"
pytest_qgis.plugin._load_qgis_settings = load_project_profile
