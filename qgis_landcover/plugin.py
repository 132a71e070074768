# SPDX-License-Identifier: GPL-2.0-or-later
"""The plugin object: registers the Processing provider, nothing else."""

from __future__ import annotations

from typing import Any

from qgis.core import QgsApplication

from .provider import LandcoverProvider


class LandcoverPlugin:
    """Plugin wrapper whose only job is the lifetime of :class:`LandcoverProvider`.

    ``initProcessing`` is what ``qgis_process`` and desktop QGIS call to register
    Processing providers; ``initGui`` calls it too so the provider also appears when
    the plugin is enabled from the Plugin Manager.
    """

    def __init__(self, iface: Any = None) -> None:
        self.iface = iface
        self.provider: LandcoverProvider | None = None

    def initProcessing(self) -> None:
        if self.provider is None:
            self.provider = LandcoverProvider()
            QgsApplication.processingRegistry().addProvider(self.provider)

    def initGui(self) -> None:
        self.initProcessing()

    def unload(self) -> None:
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
