# SPDX-License-Identifier: GPL-2.0-or-later
"""Pixel and class areas against independent values: exact products for projected
CRSs, numerical integration of the ellipsoid's area element (not the authalic formula
the code uses) and a published figure for geographic ones."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest
from osgeo import osr

from qgis_landcover.core.errors import InputError
from qgis_landcover.core.raster.grid import Grid
from qgis_landcover.core.tiles.areas import (
    add_areas,
    area_lines,
    class_areas,
    row_pixel_areas_m2,
    write_areas_csv,
)

WGS84_A = 6378137.0
WGS84_F = 1 / 298.257223563


def wkt(code: str) -> str:
    srs = osr.SpatialReference()
    srs.SetFromUserInput(code)
    return srs.ExportToWkt()


def ellipsoid_cell_m2(lat1: float, lat2: float, dlon: float, a: float, f: float) -> float:
    """Area of a lat/lon cell by Simpson's rule over the area element
    M(phi) N(phi) cos(phi) dphi dlambda (meridian and prime-vertical radii)."""
    e2 = f * (2 - f)
    n = 2000
    phis = np.linspace(math.radians(lat1), math.radians(lat2), n + 1)
    w = 1 - e2 * np.sin(phis) ** 2
    integrand = a * (1 - e2) / w**1.5 * a / np.sqrt(w) * np.cos(phis)
    h = (phis[-1] - phis[0]) / n
    simpson = h / 3 * (integrand[0] + integrand[-1] + 4 * integrand[1:-1:2].sum())
    simpson += h / 3 * 2 * integrand[2:-1:2].sum()
    return float(simpson * math.radians(dlon))


def test_projected_pixels_have_the_map_area() -> None:
    grid = Grid(wkt("EPSG:26917"), (580000.0, 2.0, 0.0, 4100000.0, 0.0, -0.5), 4, 3)
    np.testing.assert_allclose(row_pixel_areas_m2(grid), [1.0, 1.0, 1.0])
    # US survey feet: 1 ftUS = 1200 / 3937 m.
    feet = Grid(wkt("EPSG:2263"), (1e6, 3.0, 0.0, 2e5, 0.0, -3.0), 2, 2)
    np.testing.assert_allclose(row_pixel_areas_m2(feet), [9 * (1200 / 3937) ** 2] * 2, rtol=1e-12)


def test_geographic_rows_have_the_ellipsoid_area() -> None:
    # One-degree rows at the equator and at 60-61 N on WGS 84.
    for top in (1.0, 61.0):
        grid = Grid(wkt("EPSG:4326"), (10.0, 1.0, 0.0, top, 0.0, -1.0), 3, 1)
        expected = ellipsoid_cell_m2(top - 1, top, 1.0, WGS84_A, WGS84_F)
        np.testing.assert_allclose(row_pixel_areas_m2(grid), [expected], rtol=1e-9)
    # Published: a 1 x 1 degree cell at the equator is about 12,308 km² on WGS 84.
    equator = Grid(wkt("EPSG:4326"), (0.0, 1.0, 0.0, 1.0, 0.0, -1.0), 1, 1)
    assert row_pixel_areas_m2(equator)[0] / 1e6 == pytest.approx(12308.5, abs=1.0)
    # Southern rows mirror northern ones; pixel rows of 0.25 degrees sum to the whole.
    south = Grid(wkt("EPSG:4326"), (0.0, 0.25, 0.0, -60.0, 0.0, -0.25), 1, 4)
    north = Grid(wkt("EPSG:4326"), (0.0, 1.0, 0.0, 61.0, 0.0, -1.0), 1, 1)
    assert row_pixel_areas_m2(south).sum() * 4 == pytest.approx(
        row_pixel_areas_m2(north)[0], rel=1e-12
    )


def test_a_sphere_gives_the_spherical_zone() -> None:
    # On a sphere of radius R: R² dλ (sin φ2 − sin φ1).
    sphere = wkt("+proj=longlat +R=6371000 +no_defs")
    grid = Grid(sphere, (0.0, 0.5, 0.0, 45.0, 0.0, -0.5), 2, 2)
    edges = np.radians([45.0, 44.5, 44.0])
    expected = 6371000.0**2 * math.radians(0.5) * (np.sin(edges[:-1]) - np.sin(edges[1:]))
    np.testing.assert_allclose(row_pixel_areas_m2(grid), expected, rtol=1e-12)


def test_class_areas_counts_each_class_per_row(tmp_path: Path) -> None:
    grid = Grid(wkt("EPSG:4326"), (0.0, 1.0, 0.0, 2.0, 0.0, -1.0), 3, 2)
    classes = np.array([[1, 1, 0], [2, 1, 2]], dtype=np.uint8)
    rows = [
        ellipsoid_cell_m2(1, 2, 1, WGS84_A, WGS84_F),
        ellipsoid_cell_m2(0, 1, 1, WGS84_A, WGS84_F),
    ]
    areas = class_areas(classes, grid)
    assert set(areas) == {1, 2}  # nodata 0 is not a class
    assert areas[1][0] == 3 and areas[1][1] == pytest.approx(2 * rows[0] + rows[1], rel=1e-9)
    assert areas[2][0] == 2 and areas[2][1] == pytest.approx(2 * rows[1], rel=1e-9)
    total = add_areas({}, {1: (3, 30.0)})
    add_areas(total, {1: (1, 10.0), 2: (1, 60.0)})
    lines = area_lines("total", total, {1: "tree", 2: "water"})
    assert [(line.name, line.pixels, line.percent) for line in lines] == [
        ("tree", 4, 40.0),
        ("water", 1, 60.0),
    ]
    path = write_areas_csv(tmp_path / "areas.csv", lines)
    with path.open(encoding="utf-8") as stream:
        rows_read = list(csv.DictReader(stream))
    assert rows_read[1] == {
        "scope": "total",
        "value": "2",
        "class": "water",
        "pixels": "1",
        "area_km2": "0.000060",
        "percent": "60.0000",
    }


def test_a_grid_without_crs_has_no_area() -> None:
    with pytest.raises(InputError, match="no CRS"):
        row_pixel_areas_m2(Grid("", (0.0, 1.0, 0.0, 0.0, 0.0, -1.0), 1, 1))
