# SPDX-License-Identifier: GPL-2.0-or-later
"""Styling outputs as QGIS loads them: the classified raster opens with its paletted
style (class colours and names, the ``.qml`` the core writes beside it)."""

from __future__ import annotations

from typing import ClassVar

from qgis.core import (
    QgsMapLayer,
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProcessingLayerPostProcessorInterface,
)


class ClassifiedStyler(QgsProcessingLayerPostProcessorInterface):
    """Applies the classified raster's QML style (paletted, with class names) when
    QGIS loads the output."""

    # QGIS keeps only a pointer to a post-processor: Python must keep the object alive.
    _alive: ClassVar[list[ClassifiedStyler]] = []

    def __init__(self, qml: str) -> None:
        super().__init__()
        self.qml = qml

    @classmethod
    def create(cls, qml: str) -> ClassifiedStyler:
        styler = cls(qml)
        cls._alive = [*cls._alive[-63:], styler]
        return styler

    def postProcessLayer(
        self, layer: QgsMapLayer, context: QgsProcessingContext, feedback: QgsProcessingFeedback
    ) -> None:
        message, ok = layer.loadNamedStyle(self.qml)
        if not ok:
            feedback.pushWarning(f"Could not apply the style {self.qml}: {message}")
        layer.triggerRepaint()
