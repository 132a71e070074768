# SPDX-License-Identifier: GPL-2.0-or-later
"""``landcover:sample_design``: the points it writes, their reproducibility, and the
loop design -> fill the reference field -> ``landcover:sample_accuracy``."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from html import escape
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from osgeo import gdal, ogr
from qgis.core import QgsProcessingException
from qgis.PyQt.QtCore import QUrl
from sklearn.metrics import confusion_matrix

from qgis_landcover.core.accuracy.area_estimation import area_adjusted_accuracy
from qgis_landcover.core.sampling.design import allocate_samples, cochran_sample_size

from ..conftest import DATA

Run = Callable[..., dict[str, Any]]

LABELS = DATA / "chesapeake_1m_patches" / "m_3708020_sw_17_1_2014_mosaic_labels.tif"
X0, Y0 = 580000.0, 4100000.0  # upper-left corner of the mosaic, EPSG:26917, 1 m pixels


def labels() -> np.ndarray:
    dataset = gdal.Open(str(LABELS))
    return dataset.GetRasterBand(1).ReadAsArray()


def read_points(path: Path) -> list[dict[str, Any]]:
    source = ogr.Open(str(path))
    layer = source.GetLayer(0)
    points = []
    for feature in layer:
        geometry = feature.GetGeometryRef()
        points.append(
            {
                **feature.items(),
                "x": geometry.GetX(),
                "y": geometry.GetY(),
                "fid": feature.GetFID(),
            }
        )
    assert layer.GetSpatialRef().GetAuthorityCode(None) == "26917"
    return points


def design(run_algorithm: Run, output: Path, **changes: Any) -> dict[str, Any]:
    parameters = {
        "INPUT": str(LABELS),
        "EXPECTED_USER_ACCURACY": "0.9,3:0.7",
        "TARGET_STANDARD_ERROR": 0.02,
        "MIN_PER_CLASS": 20,
        "SEED": 3,
        "OUTPUT": str(output),
        **changes,
    }
    return run_algorithm("sample_design", parameters)


def test_design_then_sample_accuracy(run_algorithm: Run, tmp_path: Path) -> None:
    array = labels()
    results = design(run_algorithm, tmp_path / "design.gpkg")
    points = read_points(tmp_path / "design.gpkg")
    # Sizes by hand from the mosaic's class shares (nodata 0 left out).
    classes, counts = np.unique(array[array != 0], return_counts=True)
    shares = counts / counts.sum()
    users = [0.7 if c == 3 else 0.9 for c in classes]
    n = int(np.ceil(cochran_sample_size(shares, users, 0.02)))
    sizes = dict(zip(classes.tolist(), allocate_samples(n, shares, 20)[0].tolist(), strict=True))
    assert results["POINTS"] == len(points) == n
    assert results["SEED_USED"] == 3
    rows = np.array([int(Y0 - p["y"]) for p in points])
    cols = np.array([int(p["x"] - X0) for p in points])
    mapped = np.array([p["map_class"] for p in points])
    # On pixel centres, on the class they say, never on nodata; the reference is empty.
    assert all((p["x"] - X0) % 1 == 0.5 and (Y0 - p["y"]) % 1 == 0.5 for p in points)
    np.testing.assert_array_equal(array[rows, cols], mapped)
    assert {c: int((mapped == c).sum()) for c in sizes} == sizes
    assert all(p["reference"] is None for p in points)
    assert sorted(p["id"] for p in points) == list(range(1, n + 1))
    names = {p["map_class"]: p["map_name"] for p in points}
    assert all(isinstance(name, str) and name for name in names.values())

    # Fill the reference: the map class, but every 4th point of class 2 is class 3.
    reference = mapped.copy()
    wrong = np.flatnonzero(mapped == 2)[::4]
    reference[wrong] = 3
    source = ogr.Open(str(tmp_path / "design.gpkg"), 1)
    layer = source.GetLayer(0)
    for point, value in zip(points, reference.tolist(), strict=True):
        feature = layer.GetFeature(point["fid"])
        feature.SetField("reference", value)
        layer.SetFeature(feature)
    source = None
    results = run_algorithm(
        "sample_accuracy",
        {
            "CLASSIFIED": str(LABELS),
            "POINTS": str(tmp_path / "design.gpkg"),
            "REFERENCE_FIELD": "reference",
            "OUTPUT_HTML": str(tmp_path / "report.html"),
            "OUTPUT_JSON": str(tmp_path / "report.json"),
        },
    )
    report = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    sample_counts = confusion_matrix(mapped, reference, labels=classes.tolist())
    expected = area_adjusted_accuracy(sample_counts, counts.astype(float), classes.tolist())
    assert report["points"]["used"] == n
    assert report["area_adjusted"]["sample_counts"] == sample_counts.tolist()
    assert results["OVERALL_ACCURACY"] == pytest.approx(expected.overall_accuracy)
    # By hand: only class 2's 1 - 1/4 (about) of points right; the others all right.
    right = 1 - len(wrong) / sizes[2]
    assert results["OVERALL_ACCURACY"] == pytest.approx(shares[0] * right + shares[1:].sum())


def test_same_seed_same_points(run_algorithm: Run, tmp_path: Path) -> None:
    small = {"SAMPLE_SIZE": 30, "MIN_PER_CLASS": 5}
    design(run_algorithm, tmp_path / "a.gpkg", **small)
    design(run_algorithm, tmp_path / "b.gpkg", **small)
    results = design(run_algorithm, tmp_path / "c.gpkg", SEED=None, **small)
    first, again, other = (read_points(tmp_path / f"{n}.gpkg") for n in "abc")
    assert [(p["x"], p["y"]) for p in first] == [(p["x"], p["y"]) for p in again]
    assert len(first) == 30 and results["SEED_USED"] >= 0
    assert {(p["x"], p["y"]) for p in first} != {(p["x"], p["y"]) for p in other}


def test_bad_parameters(run_algorithm: Run, tmp_path: Path) -> None:
    with pytest.raises(QgsProcessingException, match=r"proportions in \(0, 1\]"):
        design(run_algorithm, tmp_path / "x.gpkg", EXPECTED_USER_ACCURACY="85")
    with pytest.raises(QgsProcessingException, match="classes 2, 5: give one"):
        design(run_algorithm, tmp_path / "x.gpkg", EXPECTED_USER_ACCURACY="3:0.7")
    assert not (tmp_path / "x.gpkg").exists()


def test_output_never_overwrites_the_input(run_algorithm: Run, tmp_path: Path) -> None:
    classified = tmp_path / "map.tif"
    gdal.Translate(str(classified), str(LABELS))
    before = classified.read_bytes()
    with pytest.raises(QgsProcessingException, match=r"OUTPUT .* would overwrite"):
        design(run_algorithm, classified, INPUT=str(classified))
    assert classified.read_bytes() == before


@pytest.mark.parametrize("name", ["sample_design", "suggest_points"])
def test_help_page_names_every_parameter(landcover_provider: Any, name: str) -> None:
    algorithm = landcover_provider.algorithm(name)
    page = Path(QUrl(algorithm.helpUrl()).toLocalFile())
    assert page.name == f"{name}.html" and page.is_file()
    html = page.read_text(encoding="utf-8")
    for definition in [*algorithm.parameterDefinitions(), *algorithm.outputDefinitions()]:
        assert f"<code>{definition.name()}</code>" in html, definition.name()
        assert escape(definition.description(), quote=False) in html, definition.description()
        # The modeler draws about 24 characters of a label.
        assert len(definition.description()) <= 24, definition.description()
    for link in re.findall(r'href="([^"#:]+)"', html):
        assert (page.parent / link).is_file(), link
    assert f'href="{name}.html"' in (page.parent / "index.html").read_text(encoding="utf-8")
