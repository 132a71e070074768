# SPDX-License-Identifier: GPL-2.0-or-later
"""The plugin's QGIS settings (``QgsSettings``, per user profile): every
``landcover/...`` key and its default, in one place.

=============================  ==========================================================
``landcover/model_cache_dir``  folder for downloaded models; default
                               ``<QGIS settings folder>/landcover/models``
``landcover/model_catalogues`` extra model catalogue files read after the plugin's own
                               (a list, or one string separated by ``;``); default none
=============================  ==========================================================
"""

from __future__ import annotations

from pathlib import Path

from qgis.core import QgsApplication, QgsSettings

CACHE_DIR_SETTING = "landcover/model_cache_dir"
"""QgsSettings key: folder for downloaded models (default: see :func:`model_cache_dir`)."""
CATALOGUES_SETTING = "landcover/model_catalogues"
"""QgsSettings key: extra catalogue files (a list, or one string separated by ';')."""
DEFAULT_CACHE_SUBFOLDER = Path("landcover", "models")
"""The cache folder when the setting is empty, relative to QGIS's settings folder."""


def model_cache_dir() -> Path:
    """The model cache folder: the ``landcover/model_cache_dir`` setting (``~``
    expanded), else ``<QGIS settings folder>/landcover/models`` (per user profile)."""
    configured = str(QgsSettings().value(CACHE_DIR_SETTING, "") or "").strip()
    if configured:
        return Path(configured).expanduser()
    return Path(QgsApplication.qgisSettingsDirPath()) / DEFAULT_CACHE_SUBFOLDER


def model_catalogues(extra: str = "") -> list[str]:
    """Catalogue files from the ``landcover/model_catalogues`` setting, then ``extra``
    (e.g. an algorithm's catalogue parameter); blank entries are left out."""
    value = QgsSettings().value(CATALOGUES_SETTING, [])
    items = value.split(";") if isinstance(value, str) else list(value or [])
    return [str(item).strip() for item in [*items, extra] if str(item or "").strip()]
