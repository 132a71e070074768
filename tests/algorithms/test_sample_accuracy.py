# SPDX-License-Identifier: GPL-2.0-or-later
"""``landcover:sample_accuracy`` with validation points in another CRS than the map."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from osgeo import gdal, ogr
from qgis.core import QgsProcessingException, QgsVectorLayer
from sklearn.metrics import confusion_matrix

from qgis_landcover.algorithms.sample_accuracy import class_code
from qgis_landcover.core.accuracy.area_estimation import area_adjusted_accuracy

from ..conftest import DATA
from ..feedback import RecordingFeedback
from ..vectors import write_pixel_points

Run = Callable[..., dict[str, Any]]

LABELS = DATA / "chesapeake_1m_patches" / "m_3708020_sw_17_1_2014_mosaic_labels.tif"


def labels() -> np.ndarray:
    dataset = gdal.Open(str(LABELS))  # kept alive while its band is read
    return dataset.GetRasterBand(1).ReadAsArray()


def write_points(
    path: Path, rows: np.ndarray, cols: np.ndarray, values: list[Any], field_type: int
) -> Path:
    """Pixel centres of the mosaic as a GeoPackage in EPSG:4326 with field ``ref``."""
    pixels = zip(rows, cols, values, strict=True)
    return write_pixel_points(path, LABELS, pixels, field_type, field="ref")


def sample(per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    array = labels()
    rng = np.random.default_rng(seed)
    picks = []
    for value in np.unique(array):
        rows, cols = np.nonzero(array == value)
        chosen = rng.choice(len(rows), per_class, replace=False)
        picks.append((rows[chosen], cols[chosen]))
    return np.concatenate([p[0] for p in picks]), np.concatenate([p[1] for p in picks])


def test_points_in_another_crs(run_algorithm: Run, tmp_path: Path) -> None:
    rows, cols = sample(20, seed=7)
    array = labels()
    mapped = array[rows, cols].astype(int)
    reference = mapped.copy()
    reference[::5] = 2  # some points interpreted as tree canopy
    values: list[Any] = reference.tolist()
    values[3] = None  # a point without a reference value is skipped
    points = write_points(tmp_path / "points.gpkg", rows, cols, values, ogr.OFTInteger)
    results = run_algorithm(
        "sample_accuracy",
        {
            "CLASSIFIED": str(LABELS),
            "POINTS": str(points),
            "REFERENCE_FIELD": "ref",
            "OUTPUT_HTML": str(tmp_path / "report.html"),
            "OUTPUT_JSON": str(tmp_path / "report.json"),
        },
    )
    report = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    keep = np.arange(len(rows)) != 3
    classes, counts = np.unique(array[array != 0], return_counts=True)
    classes = classes.tolist()
    sample_counts = confusion_matrix(mapped[keep], reference[keep], labels=classes)
    expected = area_adjusted_accuracy(sample_counts, counts.astype(float), classes)
    assert report["area_adjusted"]["sample_counts"] == sample_counts.tolist()
    assert results["OVERALL_ACCURACY"] == pytest.approx(expected.overall_accuracy)
    np.testing.assert_allclose(report["area_adjusted"]["area"], [c.area for c in expected.classes])
    np.testing.assert_allclose(report["area_adjusted"]["mapped_area_ha"], counts / 10_000)
    assert report["points"]["used"] == len(rows) - 1
    assert report["points"]["skipped_features"] == 1
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "Olofsson" in html and "rows = classification (map)" in html


def test_text_field_with_whole_numbers_and_a_memory_layer(
    run_algorithm: Run, tmp_path: Path
) -> None:
    rows, cols = sample(5, seed=8)
    truth = labels()[rows, cols]
    points = write_points(
        tmp_path / "text.gpkg", rows, cols, [f" {v} " for v in truth], ogr.OFTString
    )
    layer = QgsVectorLayer(f"{points}|layername=labels", "points", "ogr")
    assert layer.isValid()
    results = run_algorithm(
        "sample_accuracy",
        {
            "CLASSIFIED": str(LABELS),
            "POINTS": layer,
            "REFERENCE_FIELD": "ref",
            "OUTPUT_HTML": str(tmp_path / "report.html"),
        },
    )
    assert results["OVERALL_ACCURACY"] == 1.0


def test_bad_points(run_algorithm: Run, tmp_path: Path) -> None:
    rows, cols = sample(3, seed=9)
    decimals = write_points(tmp_path / "decimals.gpkg", rows, cols, [2.0] * 8 + [1.5], ogr.OFTReal)
    base = {"CLASSIFIED": str(LABELS), "OUTPUT_HTML": str(tmp_path / "out" / "r.html")}
    with pytest.raises(QgsProcessingException, match=r"'1\.5' in field 'ref' is not an integer"):
        run_algorithm(
            "sample_accuracy", {**base, "POINTS": str(decimals), "REFERENCE_FIELD": "ref"}
        )
    with pytest.raises(QgsProcessingException, match=r"REFERENCE_FIELD|no field 'class'"):
        run_algorithm(
            "sample_accuracy", {**base, "POINTS": str(decimals), "REFERENCE_FIELD": "class"}
        )
    assert not (tmp_path / "out").exists()


def test_map_class_without_points_is_a_warning_in_the_log(
    run_algorithm: Run, tmp_path: Path
) -> None:
    rows, cols = sample(4, seed=10)
    array = labels()
    keep = array[rows, cols] != 2  # no point in tree canopy, most of the mosaic
    rows, cols = rows[keep], cols[keep]
    points = write_points(
        tmp_path / "points.gpkg", rows, cols, array[rows, cols].tolist(), ogr.OFTInteger
    )
    feedback = RecordingFeedback()
    results = run_algorithm(
        "sample_accuracy",
        {
            "CLASSIFIED": str(LABELS),
            "POINTS": str(points),
            "REFERENCE_FIELD": "ref",
            "OUTPUT_HTML": str(tmp_path / "report.html"),
        },
        feedback=feedback,
    )
    share = float(np.mean(array[array != 0] == 2))
    assert results["OVERALL_ACCURACY"] == pytest.approx(1 - share)  # every point right
    (warning,) = [w for w in feedback.warnings if "no samples" in w]
    assert f"'class 2' ({100 * share:.2f} % of the mapped area" in warning
    assert f"at most {100 * (1 - share):.2f} %" in warning


def test_empty_layer_or_no_usable_feature(run_algorithm: Run, tmp_path: Path) -> None:
    base = {
        "CLASSIFIED": str(LABELS),
        "REFERENCE_FIELD": "ref",
        "OUTPUT_HTML": str(tmp_path / "out" / "r.html"),
    }
    empty = write_points(tmp_path / "empty.gpkg", np.zeros(0), np.zeros(0), [], ogr.OFTInteger)
    with pytest.raises(QgsProcessingException, match=r"validation layer '.*' holds no points"):
        run_algorithm("sample_accuracy", {**base, "POINTS": str(empty)})
    rows, cols = sample(1, seed=11)
    nulls = write_points(tmp_path / "nulls.gpkg", rows, cols, [None] * len(rows), ogr.OFTInteger)
    with pytest.raises(
        QgsProcessingException,
        match=rf"None of the {len(rows)} features of '.*' can be used: each has a NULL 'ref'",
    ):
        run_algorithm("sample_accuracy", {**base, "POINTS": str(nulls)})
    assert not (tmp_path / "out").exists()


def test_class_code() -> None:
    assert class_code(3) == 3 and class_code(3.0) == 3 and class_code(" -2 ") == -2
    assert class_code(None) is None
    for bad in (1.5, "x", "1.0", True):
        with pytest.raises(ValueError):
            class_code(bad)
