# SPDX-License-Identifier: GPL-2.0-or-later
"""``landcover:adapt_model`` through Processing: labels in another CRS (points with
class names, polygons), the report, the adapted model in ``landcover:classify``.

Oracles: the labels written (counts), pixel centres inside hand-placed squares, and
the adapted file's own contract."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from osgeo import gdal, ogr
from qgis.core import QgsProcessingException

from qgis_landcover.core.models.contract import read_contract

from ..conftest import ROOT
from ..onnx_models import without_features_output
from ..rasters import mosaic_crop
from ..vectors import geographic_layer, write_pixel_points

Run = Callable[..., dict[str, Any]]
MODEL = ROOT / "qgis_landcover" / "models" / "azure_2018_unet.onnx"
NAMES = {2: "tree canopy", 3: "Low vegetation"}


@pytest.fixture(scope="module")
def crop(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    """The mosaic's top-left 192 x 192 px (real NAIP; EPSG:26917, 1 m) and its labels."""
    return mosaic_crop(tmp_path_factory.mktemp("adapt_model"), 192)


def test_points_with_class_names_in_another_crs(
    run_algorithm: Run, crop: tuple, tmp_path: Path
) -> None:
    image, reference = crop
    generator = np.random.default_rng(0)
    pixels = []
    for value in (2, 3):
        r, c = np.nonzero(reference == value)
        pick = generator.choice(len(r), 12, replace=False)
        pixels += [(row, col, NAMES[value]) for row, col in zip(r[pick], c[pick], strict=True)]
    labels = write_pixel_points(tmp_path / "labels.gpkg", image, pixels)
    output, report = tmp_path / "adapted.onnx", tmp_path / "report.html"
    results = run_algorithm(
        "adapt_model",
        {
            "INPUT": str(image),
            "MODEL": str(MODEL),
            "LABELS": str(labels),
            "CLASS_FIELD": "class",
            "OUTPUT_MODEL": str(output),
            "OUTPUT_REPORT": str(report),
        },
    )
    assert results["LABELS_USED"] == 24
    assert 0.0 <= results["CV_ACCURACY"] <= 1.0
    assert results["OUTPUT_MODEL"] == str(output)
    contract = read_contract(output)
    assert contract.provenance["adaptation"]["labels_per_class"] == {"2": 12, "3": 12}
    assert contract.features_output == read_contract(MODEL).features_output
    html = report.read_text(encoding="utf-8")
    assert "Cross-validated confusion matrix" in html and "Labels used" in html
    assert "<td>12</td>" in html.replace(",", "")
    # The adapted model runs in classify like any other.
    classified = tmp_path / "classes.tif"
    run_algorithm(
        "classify", {"INPUT": str(image), "MODEL": str(output), "OUTPUT": str(classified)}
    )
    assert gdal.Open(str(classified)).ReadAsArray().shape == (192, 192)


def test_polygons_give_their_pixel_centres(run_algorithm: Run, crop: tuple, tmp_path: Path) -> None:
    # Two 6 x 6 m squares on pixel edges (36 pixel centres each), one per class, in
    # EPSG:4326: 72 labels.
    image, reference = crop
    x0, _, _, y0, _, _ = gdal.Open(str(image)).GetGeoTransform()
    path = tmp_path / "polygons.gpkg"
    source, layer, to_geographic = geographic_layer(path, image, ogr.wkbPolygon, ogr.OFTInteger)
    squares = []
    for value in (2, 3):
        r, c = np.nonzero(reference == value)
        for row, col in zip(r, c, strict=True):  # the first 6 x 6 block of the class
            if (
                row + 6 <= 192
                and col + 6 <= 192
                and (reference[row : row + 6, col : col + 6] == value).all()
            ):
                squares.append((value, row, col))
                break
    assert len(squares) == 2
    for value, row, col in squares:
        ring = ogr.Geometry(ogr.wkbLinearRing)
        for dr, dc in ((0, 0), (0, 6), (6, 6), (6, 0), (0, 0)):
            # Slightly inside the square, so reprojection noise keeps its 36 centres.
            x = x0 + col + dc + (0.01 if dc == 0 else -0.01)
            y = y0 - row - dr - (0.01 if dr == 0 else -0.01)
            lon, lat, _ = to_geographic.TransformPoint(x, y)
            ring.AddPoint_2D(lon, lat)
        polygon = ogr.Geometry(ogr.wkbPolygon)
        polygon.AddGeometry(ring)
        feature = ogr.Feature(layer.GetLayerDefn())
        feature.SetField("class", value)
        feature.SetGeometry(polygon)
        layer.CreateFeature(feature)
    del source  # closes the GeoPackage
    results = run_algorithm(
        "adapt_model",
        {
            "INPUT": str(image),
            "MODEL": str(MODEL),
            "LABELS": str(path),
            "CLASS_FIELD": "class",
            "OUTPUT_MODEL": str(tmp_path / "adapted.onnx"),
            "OUTPUT_REPORT": str(tmp_path / "report.html"),
        },
    )
    assert results["LABELS_USED"] == 72


def test_clear_messages(run_algorithm: Run, crop: tuple, tmp_path: Path) -> None:
    image, _ = crop
    pixels = [(5, col, "2" if col < 5 else "9") for col in range(10)]
    labels = write_pixel_points(tmp_path / "labels.gpkg", image, pixels)
    base = {
        "INPUT": str(image),
        "MODEL": str(MODEL),
        "LABELS": str(labels),
        "CLASS_FIELD": "class",
        "OUTPUT_MODEL": str(tmp_path / "out" / "adapted.onnx"),
        "OUTPUT_REPORT": str(tmp_path / "out" / "report.html"),
    }
    (tmp_path / "out").mkdir()
    with pytest.raises(QgsProcessingException, match=r"5 labels have class values the model"):
        run_algorithm("adapt_model", base)
    # A model without a features output.
    plain = without_features_output(MODEL, tmp_path / "plain.onnx")
    with pytest.raises(QgsProcessingException, match="does not expose its penultimate features"):
        run_algorithm("adapt_model", {**base, "MODEL": str(plain)})
    assert list((tmp_path / "out").iterdir()) == []
