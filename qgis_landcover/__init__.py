# SPDX-License-Identifier: GPL-2.0-or-later
"""QGIS plugin entry point for the "landcover" Processing provider.

QGIS calls :func:`classFactory` with the interface object; ``qgis_process`` calls it
with ``iface=None``, so nothing here may depend on the GUI.
"""

from __future__ import annotations

from typing import Any


def classFactory(iface: Any) -> Any:
    """Return the plugin instance QGIS loads (``iface`` may be ``None``)."""
    from .plugin import LandcoverPlugin

    return LandcoverPlugin(iface)
