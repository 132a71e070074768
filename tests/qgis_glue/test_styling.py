# SPDX-License-Identifier: GPL-2.0-or-later
"""``qgis_glue.styling``: the classified raster opens with the paletted style the core
writes beside it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from osgeo import gdal
from qgis.core import (
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsRasterLayer,
    QgsSingleBandGrayRenderer,
)

from qgis_landcover.core.inference.classified_output import OutputPaths
from qgis_landcover.core.inference.classify import classify
from qgis_landcover.core.inference.gdal_source import GdalImageSource
from qgis_landcover.qgis_glue.styling import ClassifiedStyler

from ..conftest import DATA
from ..onnx_models import contract_for, pointwise_model

MOSAIC = DATA / "chesapeake_1m_patches" / "m_3708020_sw_17_1_2014_mosaic_naip.tif"


def test_styler_applies_the_qml(tmp_path: Path) -> None:
    naip = tmp_path / "naip.tif"
    gdal.Translate(str(naip), str(MOSAIC), srcWin=[200, 100, 64, 48])
    weights = np.eye(4, dtype=np.float32)
    model = pointwise_model(tmp_path / "m.onnx", weights, contract=contract_for(4))
    classify(GdalImageSource(naip), model, OutputPaths(tmp_path / "out.tif"))
    qml = tmp_path / "out.qml"
    # A label only the style file has, so the test sees the style applied.
    qml.write_text(qml.read_text().replace('label="class 1"', 'label="open water"'))
    layer = QgsRasterLayer(str(tmp_path / "out.tif"), "out")
    layer.setRenderer(QgsSingleBandGrayRenderer(layer.dataProvider(), 1))
    ClassifiedStyler.create(str(qml)).postProcessLayer(
        layer, QgsProcessingContext(), QgsProcessingFeedback()
    )
    assert layer.renderer().type() == "paletted"
    labels = [c.label for c in layer.renderer().classes()]
    assert labels == ["open water", "class 2", "class 3", "class 4"]
