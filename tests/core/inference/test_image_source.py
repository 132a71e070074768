# SPDX-License-Identifier: GPL-2.0-or-later
"""What every image source shares: extents in any CRS, pixel validity, reads past the
grid's edge."""

from __future__ import annotations

import numpy as np
import pytest
from osgeo import osr

from qgis_landcover.core.inference.image_source import Extent, read_padded, validity
from qgis_landcover.core.raster.grid import Grid, Window


def wkt(epsg: int) -> str:
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(epsg)
    return srs.ExportToWkt()


UTM_17N = wkt(26917)  # NAD83 / UTM zone 17N, the CRS of the NAIP sample
WGS84 = wkt(4326)


def sampled_box(bounds: tuple[float, ...], source: str, target: str, points: int) -> tuple:
    """The oracle: the box around ``points`` points per edge of ``bounds``, each
    reprojected on its own."""
    a, b = osr.SpatialReference(), osr.SpatialReference()
    a.ImportFromWkt(source)
    b.ImportFromWkt(target)
    for srs in (a, b):
        srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    transform = osr.CoordinateTransformation(a, b)
    xmin, ymin, xmax, ymax = bounds
    t = np.linspace(0.0, 1.0, points)
    edges = [
        *zip(xmin + t * (xmax - xmin), np.full(points, ymin), strict=True),
        *zip(xmin + t * (xmax - xmin), np.full(points, ymax), strict=True),
        *zip(np.full(points, xmin), ymin + t * (ymax - ymin), strict=True),
        *zip(np.full(points, xmax), ymin + t * (ymax - ymin), strict=True),
    ]
    xs, ys = zip(*(transform.TransformPoint(x, y)[:2] for x, y in edges), strict=True)
    return (min(xs), min(ys), max(xs), max(ys))


def test_an_extent_in_the_sources_crs_or_without_one_is_taken_as_it_is() -> None:
    bounds = (580050.0, 4099500.0, 580130.0, 4099580.0)
    assert Extent(bounds).bounds_in(UTM_17N) == bounds
    assert Extent(bounds, UTM_17N).bounds_in(UTM_17N) == bounds
    assert Extent(bounds, UTM_17N).bounds_in("") == bounds  # a raster without a CRS


def test_an_extent_in_another_crs_becomes_the_box_around_it() -> None:
    # About 2 x 1 km of Virginia in degrees, in the NAIP sample's UTM zone.
    degrees = (-80.10, 37.03, -80.08, 37.04)
    got = Extent(degrees, WGS84).bounds_in(UTM_17N)
    expected = sampled_box(degrees, WGS84, UTM_17N, 1001)
    np.testing.assert_allclose(got, expected, atol=0.01)  # centimetres
    assert 1700 < got[2] - got[0] < 1900 and 1000 < got[3] - got[1] < 1200
    # Back again: the box holds the whole extent (curved edges included).
    back = Extent(got, UTM_17N).bounds_in(WGS84)
    assert back[0] <= degrees[0] and back[1] <= degrees[1]
    assert back[2] >= degrees[2] and back[3] >= degrees[3]


def test_validity_marks_zero_nodata_and_non_finite_pixels() -> None:
    raw = np.array(
        [
            [[0, 5, 7, np.nan], [1, 0, 2, 3]],
            [[0, 0, 4, 1], [9, 0, 4, np.inf]],
        ],
        dtype=np.float32,
    )
    # (0, 0): 0 in both bands; (1, 1): 0 in both; (0, 3) and (1, 3): not finite;
    # (0, 2) and (1, 2): band 2 holds its nodata value 4.
    expected = np.array([[False, True, False, False], [True, False, False, False]])
    np.testing.assert_array_equal(validity(raw, [None, 4.0]), expected)
    without_nodata = np.array([[False, True, True, False], [True, False, True, False]])
    np.testing.assert_array_equal(validity(raw, [None, None]), without_nodata)


class ArrayReader:
    """An in-memory :class:`ImageReader` over (bands, rows, cols) values."""

    def __init__(self, values: np.ndarray) -> None:
        self.values = values
        self.windows: list[Window] = []

    @property
    def grid(self) -> Grid:
        return Grid("", (0.0, 1.0, 0.0, 0.0, 0.0, -1.0), self.values.shape[2], self.values.shape[1])

    def read(self, window: Window) -> tuple[np.ndarray, np.ndarray]:
        self.windows.append(window)
        rows = slice(window.row_off, window.row_off + window.height)
        cols = slice(window.col_off, window.col_off + window.width)
        part = self.values[:, rows, cols]
        return part, part[0] > 0


def test_reads_past_the_grid_are_reflected_and_only_the_inside_is_read() -> None:
    values = np.arange(1, 2 * 5 * 6 + 1, dtype=np.float32).reshape(2, 5, 6)
    reader = ArrayReader(values)
    raw, valid = read_padded(reader, Window(-2, 3, 7, 4))
    assert reader.windows == [Window(0, 3, 5, 2)]
    # Rows 3-4 and columns 0-4 are inside; 2 rows below and 2 columns left mirror them.
    expected = np.pad(values[:, 3:5, 0:5], ((0, 0), (0, 2), (2, 0)), mode="reflect")
    np.testing.assert_array_equal(raw, expected)
    assert valid.shape == (4, 7) and valid.all()
    with pytest.raises(ValueError, match="outside the readable grid"):
        read_padded(reader, Window(6, 0, 2, 2))
