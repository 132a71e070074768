# SPDX-License-Identifier: GPL-2.0-or-later
"""Stratified random sample designs: sizes against Olofsson et al. (2014)'s worked
example, points on the right pixels, reproducible with a seed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal, osr

from qgis_landcover.core.errors import InputError
from qgis_landcover.core.sampling.design import (
    ExpectedAccuracies,
    allocate_samples,
    cochran_sample_size,
    design_sample,
    expected_standard_error,
    parse_expected_accuracies,
)

from ...conftest import TEST_DATA

CASE = json.loads((TEST_DATA / "accuracy_cases.json").read_text(encoding="utf-8"))[
    "olofsson_2014_area_adjusted"
]
# Olofsson et al. (2014), section 5.1: anticipated user's accuracies of deforestation,
# forest gain, stable forest and stable non-forest, and the target standard error of the
# overall accuracy; their sample size is n = 641 (eq. 13).
USERS = [0.7, 0.6, 0.9, 0.95]
TARGET_SE = 0.01
PUBLISHED_N = 641


def weights() -> np.ndarray:
    pixels = np.array(CASE["mapped_area_pixels"], dtype=float)
    return pixels / pixels.sum()


def test_cochran_size_of_the_worked_example() -> None:
    n = cochran_sample_size(weights(), USERS, TARGET_SE)
    # By hand: sum W_i S_i = 0.02*0.45826 + 0.015*0.48990 + 0.32*0.3 + 0.645*0.21794
    # = 0.253085; (0.253085 / 0.01)^2 = 640.5 -> 641 points.
    assert n == pytest.approx(640.5, abs=0.1)
    assert int(np.ceil(n)) == PUBLISHED_N


def test_allocation_of_the_worked_example() -> None:
    w = weights()
    # Proportional: 641 * W = 12.8, 9.6, 205.1, 413.4.
    sizes, warnings = allocate_samples(PUBLISHED_N, w, 0)
    assert sizes.tolist() == [13, 10, 205, 413] and not warnings
    # 75 for each change class, the remaining 491 in proportion to the stable classes'
    # areas: 491 * 0.32 / 0.965 = 162.8, 491 * 0.645 / 0.965 = 328.2.
    sizes, _ = allocate_samples(PUBLISHED_N, w, 75)
    assert sizes.tolist() == [75, 75, 163, 328]
    # The minimums alone exceed the total: every class gets it, with a warning.
    sizes, warnings = allocate_samples(100, w, 50)
    assert sizes.tolist() == [50] * 4 and "200 points" in warnings[0]
    # Standard error of the overall accuracy with that allocation (eq. 5 with U_i):
    # sqrt(0.02^2*0.21/74 + 0.015^2*0.24/74 + 0.32^2*0.09/162 + 0.645^2*0.0475/327).
    expected = np.sqrt(
        0.02**2 * 0.21 / 74 + 0.015**2 * 0.24 / 74 + 0.32**2 * 0.09 / 162 + 0.645**2 * 0.0475 / 327
    )
    assert expected_standard_error(w, USERS, [75, 75, 163, 328]) == pytest.approx(expected)


def write_classes(path: Path, array: np.ndarray, nodata: int | None = None) -> Path:
    dataset = gdal.GetDriverByName("GTiff").Create(
        str(path), array.shape[1], array.shape[0], 1, gdal.GDT_Byte, ["TILED=YES"]
    )
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(26917)
    dataset.SetProjection(srs.ExportToWkt())
    dataset.SetGeoTransform((500000.0, 2.0, 0.0, 4100000.0, 0.0, -2.0))
    band = dataset.GetRasterBand(1)
    if nodata is not None:
        band.SetNoDataValue(nodata)
    band.WriteArray(array)
    dataset = None
    return path


def example_raster(tmp_path: Path) -> tuple[Path, np.ndarray]:
    """200 x 100 pixels with the worked example's shares: 400, 300, 6400, 12900 pixels
    of classes 1-4, shuffled, plus a border of nodata (255) and of ignored 0."""
    rng = np.random.default_rng(3)
    values = np.repeat([1, 2, 3, 4], [400, 300, 6400, 12900]).astype(np.uint8)
    inner = rng.permutation(values).reshape(100, 200)
    array = np.full((104, 204), 255, dtype=np.uint8)
    array[2:102, 2:202] = inner
    array[2:102, 2] = 0  # ignored: replaces 100 pixels of the classes
    return write_classes(tmp_path / "map.tif", array, nodata=255), array


def test_design_of_a_raster_with_the_example_shares(tmp_path: Path) -> None:
    path, array = example_raster(tmp_path)
    counts = {c: int((array == c).sum()) for c in (1, 2, 3, 4)}
    design = design_sample(
        path,
        expected_accuracies=ExpectedAccuracies(None, dict(zip([1, 2, 3, 4], USERS, strict=True))),
        target_standard_error=TARGET_SE,
        min_per_class=75,
        seed=11,
    )
    shares = np.array([counts[c] for c in (1, 2, 3, 4)]) / sum(counts.values())
    assert [s.mapped_pixels for s in design.strata] == [counts[c] for c in (1, 2, 3, 4)]
    assert design.cochran_size == pytest.approx(cochran_sample_size(shares, USERS, TARGET_SE))
    assert [s.samples for s in design.strata] == allocate_samples(641, shares, 75)[0].tolist()
    assert design.total == 641
    # Every point is the centre of a pixel of its map class, never nodata or 0, no repeats.
    assert (array[design.rows, design.cols] == design.map_classes).all()
    assert len({(r, c) for r, c in zip(design.rows, design.cols, strict=True)}) == design.total
    np.testing.assert_allclose(design.xs, 500000.0 + 2.0 * design.cols + 1.0)
    np.testing.assert_allclose(design.ys, 4100000.0 - 2.0 * design.rows - 1.0)
    for stratum in design.strata:
        assert (design.map_classes == stratum.value).sum() == stratum.samples == stratum.drawn


def test_same_seed_same_points_other_seed_other_points(tmp_path: Path) -> None:
    path, _ = example_raster(tmp_path)
    first = design_sample(path, seed=5, min_per_class=20)
    again = design_sample(path, seed=5, min_per_class=20)
    other = design_sample(path, seed=6, min_per_class=20)
    np.testing.assert_array_equal(first.rows, again.rows)
    np.testing.assert_array_equal(first.cols, again.cols)
    assert first.seed == 5
    assert set(zip(first.rows, first.cols, strict=True)) != set(
        zip(other.rows, other.cols, strict=True)
    )


def test_every_pixel_of_a_small_class_across_windows(tmp_path: Path) -> None:
    """Asking for as many points as a class has pixels returns each pixel once, also
    when the raster is read in many windows (the ranks run across windows)."""
    array = np.full((64, 80), 1, dtype=np.uint8)
    cells = [(0, 0), (5, 79), (17, 3), (33, 40), (63, 0), (63, 79), (40, 41)]
    for r, c in cells:
        array[r, c] = 2
    path = write_classes(tmp_path / "small.tif", array)
    design = design_sample(path, total=30, min_per_class=7, seed=1, target_pixels=300)
    picked = {
        (int(r), int(c))
        for r, c, v in zip(design.rows, design.cols, design.map_classes, strict=True)
        if v == 2
    }
    assert picked == set(cells)
    assert [s.samples for s in design.strata] == [23, 7]


def test_uniform_within_a_class(tmp_path: Path) -> None:
    """Each pixel of a class is about equally likely: over 400 seeds, the 16 pixels'
    counts (expected 100 each for 4 of 16 per draw) stay within 5 standard deviations."""
    array = np.full((16, 16), 1, dtype=np.uint8)
    array[::4, ::4] = 2  # 16 pixels of class 2
    path = write_classes(tmp_path / "grid.tif", array)
    hits = np.zeros_like(array, dtype=int)
    for seed in range(400):
        design = design_sample(path, total=24, min_per_class=4, seed=seed, target_pixels=64)
        chosen = design.map_classes == 2
        hits[design.rows[chosen], design.cols[chosen]] += 1
    counts = hits[::4, ::4]
    assert counts.sum() == 1600
    # Binomial(400, 1/4): mean 100, sd 8.7.
    assert np.abs(counts - 100).max() < 5 * 8.7


def test_classes_smaller_than_their_allocation(tmp_path: Path) -> None:
    array = np.full((30, 30), 1, dtype=np.uint8)
    array[0, :3] = 2
    path = write_classes(tmp_path / "rare.tif", array)
    design = design_sample(path, total=60, min_per_class=10, seed=0)
    rare = next(s for s in design.strata if s.value == 2)
    assert rare.samples == 10 and rare.drawn == 3
    assert any("fewer pixels" in w for w in design.warnings)


def test_expected_accuracies_text() -> None:
    assert parse_expected_accuracies("").default == 0.85
    parsed = parse_expected_accuracies("0.9, 1:0.7 2:0.6")
    assert parsed.default == 0.9 and dict(parsed.per_class or {}) == {1: 0.7, 2: 0.6}
    assert parsed.for_classes([1, 2, 3]) == [0.7, 0.6, 0.9]
    with pytest.raises(InputError, match="class 3"):
        parse_expected_accuracies("1:0.7,2:0.6").for_classes([1, 2, 3])
    for text, message in (("85", r"\(0, 1\]"), ("0.8,0.9", "two values"), ("x:0.5", "pair")):
        with pytest.raises(InputError, match=message):
            parse_expected_accuracies(text)


def test_bad_input(tmp_path: Path) -> None:
    empty = write_classes(tmp_path / "empty.tif", np.zeros((8, 8), dtype=np.uint8))
    with pytest.raises(InputError, match="no class pixels"):
        design_sample(empty)
    path, _ = example_raster(tmp_path)
    with pytest.raises(InputError, match="target standard error"):
        design_sample(path, target_standard_error=0)
    with pytest.raises(InputError, match="negative"):
        design_sample(path, min_per_class=-1)
