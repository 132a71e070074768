# SPDX-License-Identifier: GPL-2.0-or-later
"""Area-adjusted accuracy from points on the real Chesapeake label mosaic."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal
from sklearn.metrics import confusion_matrix

from qgis_landcover.core.accuracy.area_estimation import area_adjusted_accuracy
from qgis_landcover.core.accuracy.sample_accuracy import (
    PointCounts,
    assess_sample_accuracy,
    pixel_indices,
)
from qgis_landcover.core.errors import InputError
from qgis_landcover.core.progress import NullProgress
from qgis_landcover.core.raster.grid import Grid

from ...conftest import DATA

LABELS = DATA / "chesapeake_1m_patches" / "m_3708020_sw_17_1_2014_mosaic_labels.tif"
X0, Y0 = 580000.0, 4100000.0  # the mosaic's upper-left corner, 1 m pixels


def labels() -> np.ndarray:
    dataset = gdal.Open(str(LABELS))  # kept alive: a band must not outlive its dataset
    return dataset.GetRasterBand(1).ReadAsArray()


def stratified_points(per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns of ``per_class`` random pixels of every class."""
    array = labels()
    rng = np.random.default_rng(seed)
    rows, cols = [], []
    for value in np.unique(array):
        r, c = np.nonzero(array == value)
        pick = rng.choice(len(r), per_class, replace=False)
        rows.append(r[pick])
        cols.append(c[pick])
    return np.concatenate(rows), np.concatenate(cols)


def test_pixel_indices() -> None:
    grid = Grid("", (10.0, 2.0, 0.0, 20.0, 0.0, -2.0), 5, 4)
    rows, cols = pixel_indices(
        grid,
        np.array([10.0, 19.99, 11.0, 9.99, 20.0, np.nan]),
        np.array([20.0, 12.01, 13.0, 15, 15, 15]),
    )
    assert rows.tolist() == [0, 3, 3, -1, -1, -1]
    assert cols.tolist() == [0, 4, 0, -1, -1, -1]


def test_matches_the_estimator_on_oracle_counts() -> None:
    array = labels()
    rows, cols = stratified_points(25, seed=1)
    mapped_at_points = array[rows, cols]
    reference = mapped_at_points.astype(np.int64).copy()
    reference[::4] = 3  # the interpreter disagrees on some points
    # Pixel centres in map coordinates, plus one point outside the raster.
    xs = np.append(X0 + cols + 0.5, X0 - 10.0)
    ys = np.append(Y0 - rows - 0.5, Y0)
    reference_values = np.append(reference, 2)

    report = assess_sample_accuracy(LABELS, xs, ys, reference_values)

    classes, counts = np.unique(array[array != 0], return_counts=True)
    classes = classes.tolist()
    sample_counts = confusion_matrix(mapped_at_points, reference, labels=classes)
    expected = area_adjusted_accuracy(
        sample_counts, counts.astype(float), classes, hectares_per_unit=1e-4
    )
    estimate = report.area_adjusted
    assert [c.value for c in estimate.classes] == classes
    assert estimate.sample_counts == tuple(map(tuple, sample_counts.tolist()))
    np.testing.assert_allclose([c.mapped_area for c in estimate.classes], counts)
    np.testing.assert_allclose(
        [c.area for c in estimate.classes], [c.area for c in expected.classes]
    )
    assert report.overall_accuracy == pytest.approx(expected.overall_accuracy)
    assert report.points == PointCounts(total=76, used=75, outside_raster=1, ignored=0)
    assert report.mapped_pixels == {c: int(n) for c, n in zip(classes, counts, strict=True)}
    assert estimate.area_unit == "metre²"
    document = report.to_json()
    np.testing.assert_allclose(document["area_adjusted"]["mapped_area_ha"], counts / 10_000)
    assert document["points"] == {"total": 76, "used": 75, "outside_raster": 1, "ignored": 0}
    assert document["mapped_pixels"] == {
        str(c): int(n) for c, n in zip(classes, counts, strict=True)
    }
    assert document["overall_accuracy"] == report.overall_accuracy
    json.dumps(document, allow_nan=False)


def test_perfect_reference_recovers_the_map() -> None:
    rows, cols = stratified_points(10, seed=2)
    array = labels()
    report = assess_sample_accuracy(
        LABELS, X0 + cols + 0.5, Y0 - rows - 0.5, array[rows, cols].astype(np.int64)
    )
    estimate = report.area_adjusted
    assert report.overall_accuracy == 1.0
    for record in estimate.classes:
        assert record.area == pytest.approx(record.mapped_area)
        assert record.area_se == 0.0


def test_remaps_and_ignore_values() -> None:
    rows, cols = stratified_points(10, seed=3)
    truth = labels()[rows, cols].astype(np.int64)
    reference = np.where(truth == 5, 50, truth)  # the points use another code for 5
    report = assess_sample_accuracy(
        LABELS,
        X0 + cols + 0.5,
        Y0 - rows - 0.5,
        reference,
        classified_remap={3: 0},  # low vegetation -> ignored class 0
        reference_remap={50: 5},
    )
    assert [c.value for c in report.area_adjusted.classes] == [2, 5]
    assert report.overall_accuracy == 1.0
    assert report.points.ignored == 10


def test_geographic_crs_reports_square_degrees(tmp_path: Path) -> None:
    geographic = tmp_path / "labels_4326.tif"
    gdal.Warp(str(geographic), str(LABELS), dstSRS="EPSG:4326", resampleAlg="near")
    grid = gdal.Open(str(geographic)).GetGeoTransform()
    report = assess_sample_accuracy(
        geographic, np.array([grid[0] + 1e-4]), np.array([grid[3] - 1e-4]), np.array([2])
    )
    assert report.area_adjusted.area_unit == "degrees²"
    assert report.area_adjusted.hectares_per_unit is None
    assert "area_ha" not in report.to_json()["area_adjusted"]
    assert any("not projected" in w for w in report.warnings)


def test_map_classes_without_samples_are_warned_in_the_log() -> None:
    # Points only in classes 3 and 5: class 2 (most of the mosaic) has none.
    array = labels()
    rows, cols = stratified_points(5, seed=4)
    keep = array[rows, cols] != 2
    rows, cols = rows[keep], cols[keep]
    progress = NullProgress()
    report = assess_sample_accuracy(
        LABELS,
        X0 + cols + 0.5,
        Y0 - rows - 0.5,
        array[rows, cols].astype(np.int64),
        progress=progress,
    )
    valid = array[array != 0]
    share = float(np.mean(valid == 2))  # the weight of the stratum without samples
    # Every sampled point is right, so the overall accuracy is the sampled share of the map.
    assert report.overall_accuracy == pytest.approx(1 - share)
    (warning,) = [w for w in progress.warnings if "no samples" in w]
    assert f"'class 2' ({100 * share:.2f} % of the mapped area" in warning
    assert f"at most {100 * (1 - share):.2f} %" in warning
    assert warning in report.area_adjusted.warnings


def test_own_nonzero_nodata_is_no_stratum(tmp_path: Path) -> None:
    from .test_agreement import OWN_NODATA_CLASSIFIED, write_grid

    # Map classes 1, 2, 3 hold 5, 7 and 5 pixels; value 4 (3 pixels) is nodata.
    classified = write_grid(tmp_path / "map.tif", OWN_NODATA_CLASSIFIED, nodata=4)
    # (row, col) of each point, its map class and reference class; the last is on nodata.
    points = [(0, 0, 1), (0, 1, 2), (1, 2, 2), (1, 3, 2), (1, 1, 3), (2, 1, 1), (0, 4, 1)]
    rows, cols, reference = (np.array(v) for v in zip(*points, strict=True))
    report = assess_sample_accuracy(
        classified, 500000.0 + cols + 0.5, 4100000.0 - rows - 0.5, reference
    )
    estimate = report.area_adjusted
    assert report.mapped_pixels == {1: 5, 2: 7, 3: 5}
    assert estimate.sample_counts == ((1, 1, 0), (0, 2, 0), (1, 0, 1))
    assert report.points == PointCounts(total=7, used=6, outside_raster=0, ignored=1)
    # By hand: W = 5, 7, 5 / 17; OA = 5/17 * 1/2 + 7/17 * 1 + 5/17 * 1/2 = 12/17.
    assert report.overall_accuracy == pytest.approx(12 / 17)
    proportions = [c.area_proportion for c in estimate.classes]
    assert proportions == pytest.approx([5 / 17, 9.5 / 17, 2.5 / 17])
    # The unweighted sample statistics: 4 of the 6 used points agree.
    assert report.samples.overall_accuracy == pytest.approx(4 / 6)


def test_skipped_features_are_reported_when_given() -> None:
    rows, cols = stratified_points(3, seed=5)
    values = labels()[rows, cols].astype(np.int64)
    xs, ys = X0 + cols + 0.5, Y0 - rows - 0.5
    report = assess_sample_accuracy(LABELS, xs, ys, values, skipped_features=4)
    assert report.points.skipped_features == 4
    assert report.to_json()["points"]["skipped_features"] == 4
    # Without it, the JSON has no such key (as the core has always written it).
    plain = assess_sample_accuracy(LABELS, xs, ys, values)
    assert "skipped_features" not in plain.to_json()["points"]


def test_no_usable_point_is_an_error(tmp_path: Path) -> None:
    from .test_agreement import OWN_NODATA_CLASSIFIED, write_grid

    with pytest.raises(InputError, match=r"no validation points"):
        assess_sample_accuracy(LABELS, np.zeros(0), np.zeros(0), np.zeros(0, dtype=np.int64))
    with pytest.raises(InputError, match=r"None of the 2 points fall on the classified raster"):
        assess_sample_accuracy(LABELS, np.array([0.0, 1.0]), np.array([0.0, 1.0]), np.array([1, 2]))
    classified = write_grid(tmp_path / "map.tif", OWN_NODATA_CLASSIFIED, nodata=4)
    # On nodata (row 0, col 4), on class 1 with reference 0 (ignored), on class 2 remapped
    # to the ignored class 0.
    with pytest.raises(
        InputError,
        match=r"None of the 3 points on the classified raster can be used: 1 fall on its "
        r"nodata, 1 on an ignored map class and 1 have an ignored reference class",
    ):
        assess_sample_accuracy(
            classified,
            np.array([500004.5, 500000.5, 500002.5]),
            np.array([4099999.5, 4099999.5, 4099999.5]),
            np.array([1, 0, 2]),
            classified_remap={2: 0},
        )
    with pytest.raises(InputError, match=r"must be integers"):
        assess_sample_accuracy(LABELS, np.array([X0 + 1]), np.array([Y0 - 1]), np.array([1.5]))
