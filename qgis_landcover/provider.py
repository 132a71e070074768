# SPDX-License-Identifier: GPL-2.0-or-later
"""The ``landcover`` Processing provider."""

from __future__ import annotations

from pathlib import Path

from qgis.core import QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

from .algorithms import algorithm_classes

PLUGIN_DIR = Path(__file__).resolve().parent


def plugin_version() -> str:
    """Version string read from the plugin's ``metadata.txt`` (one source of truth)."""
    for line in (PLUGIN_DIR / "metadata.txt").read_text(encoding="utf-8").splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "version":
            return value.strip()
    return "unknown"


class LandcoverProvider(QgsProcessingProvider):
    """Land-cover classification (U-Net, ONNX) and accuracy assessment."""

    def id(self) -> str:
        return "landcover"

    def name(self) -> str:
        return "Land cover (U-Net)"

    def longName(self) -> str:
        return f"Land cover (U-Net) {plugin_version()}"

    def icon(self) -> QIcon:
        return QIcon(str(PLUGIN_DIR / "icon.svg"))

    def svgIconPath(self) -> str:
        return str(PLUGIN_DIR / "icon.svg")

    def versionInfo(self) -> str:
        return plugin_version()

    def helpId(self) -> str:
        # Empty: QGIS would make it a docs.qgis.org address, which has no page for the
        # plugin. Each algorithm's helpUrl() points at its page shipped in the plugin.
        return ""

    def supportedOutputRasterLayerExtensions(self) -> list[str]:
        # Outputs are written with GDAL's GTiff driver (tiled, compressed, colour table).
        return ["tif"]

    def loadAlgorithms(self) -> None:
        for algorithm_class in algorithm_classes():
            self.addAlgorithm(algorithm_class())
