# SPDX-License-Identifier: GPL-2.0-or-later
"""Styling outputs as QGIS loads them: a raster the core writes with a ``.qml`` style
beside it (the classified raster: class colours and names; the agreement raster: agree
and disagree) opens with that style, i.e. its few real classes, not the 256 entries of
the GeoTIFF's colour table that QGIS would list otherwise."""

from __future__ import annotations

import os
from typing import ClassVar

from qgis.core import (
    QgsMapLayer,
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProcessingLayerPostProcessorInterface,
)


class ClassifiedStyler(QgsProcessingLayerPostProcessorInterface):
    """Applies a class raster's QML style (paletted, with class names) when QGIS loads
    the output: Processing loads outputs without the ``.qml`` beside them."""

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


def style_on_load(
    context: QgsProcessingContext, output: str | None, qml: str | os.PathLike[str]
) -> None:
    """Have QGIS apply the style ``qml`` when it loads ``output`` on completion (the
    dialogs, ``runAndLoadResults``); nothing when ``output`` is skipped or not loaded."""
    if output and context.willLoadLayerOnCompletion(output):
        details = context.layerToLoadOnCompletionDetails(output)
        details.setPostProcessor(ClassifiedStyler.create(str(qml)))
