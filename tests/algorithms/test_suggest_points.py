# SPDX-License-Identifier: GPL-2.0-or-later
"""``landcover:suggest_points``: the core's points as a layer ready for labelling."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from osgeo import gdal, ogr
from qgis.core import QgsProcessingException

from qgis_landcover.core.inference.gdal_source import GdalImageSource
from qgis_landcover.core.sampling.uncertainty import suggest_points

from ..conftest import DATA
from ..onnx_models import contract_for, pointwise_model

Run = Callable[..., dict[str, Any]]

MOSAIC = DATA / "chesapeake_1m_patches" / "m_3708020_sw_17_1_2014_mosaic_naip.tif"
WEIGHTS = 4 * np.array([[1.0, -0.5, 0.0, 0.2], [-0.3, 1.0, -0.2, 0.1], [0.0, -0.4, 1.0, -0.1]])


def test_points_layer(run_algorithm: Run, tmp_path: Path) -> None:
    crop = tmp_path / "naip.tif"
    gdal.Translate(str(crop), str(MOSAIC), srcWin=[300, 100, 96, 80])
    model = pointwise_model(
        tmp_path / "m.onnx", WEIGHTS, contract=contract_for(3, input_scale=1 / 255)
    )
    results = run_algorithm(
        "suggest_points",
        {
            "INPUT": str(crop),
            "MODEL": str(model),
            "COUNT": 9,
            "MIN_DISTANCE": 10,
            "DEVICE": "cpu",
            "OUTPUT": str(tmp_path / "points.gpkg"),
        },
    )
    expected = suggest_points(GdalImageSource(crop), model, 9, min_distance=10)
    source = ogr.Open(str(tmp_path / "points.gpkg"))
    layer = source.GetLayer(0)
    assert layer.GetSpatialRef().GetAuthorityCode(None) == "26917"
    features = list(layer)
    assert results["POINTS"] == len(features) == 9
    np.testing.assert_allclose([f.GetGeometryRef().GetX() for f in features], expected.xs)
    np.testing.assert_allclose([f.GetGeometryRef().GetY() for f in features], expected.ys)
    assert [f["predicted"] for f in features] == expected.classes.tolist()
    assert [f["predicted_name"] for f in features] == [
        f"class {c}" for c in expected.classes.tolist()
    ]
    np.testing.assert_allclose([f["margin"] for f in features], expected.margins, atol=1e-4)
    assert all(f["class"] is None for f in features)
    assert [f["id"] for f in features] == list(range(1, 10))


def test_bad_count(run_algorithm: Run, tmp_path: Path) -> None:
    with pytest.raises(QgsProcessingException, match="COUNT"):
        run_algorithm(
            "suggest_points",
            {"INPUT": str(MOSAIC), "COUNT": 0, "OUTPUT": str(tmp_path / "p.gpkg")},
        )
    assert not (tmp_path / "p.gpkg").exists()
