# SPDX-License-Identifier: GPL-2.0-or-later
from __future__ import annotations

import math

import pytest
from osgeo import osr

from qgis_landcover.core.errors import InputError
from qgis_landcover.core.inference.model_grid import metres_per_unit, plan_model_grid
from qgis_landcover.core.progress import NullProgress
from qgis_landcover.core.raster.grid import Grid, Window


def wkt(epsg: int) -> str:
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(epsg)
    return srs.ExportToWkt()


UTM17 = wkt(26917)


def test_layer_at_the_model_resolution_keeps_its_grid() -> None:
    source = Grid(UTM17, (580000.5, 1.004, 0.0, 4100000.25, 0.0, -0.996), 1000, 800)
    layout = plan_model_grid(source, 1.0, None, context=256)
    assert not layout.resampled
    assert layout.read_grid == source and layout.output_grid == source
    part = plan_model_grid(source, 1.0, (580100.0, 4099500.0, 580200.7, 4099600.0), context=256)
    assert part.window == source.window_for_bounds((580100.0, 4099500.0, 580200.7, 4099600.0))


def test_finer_layer_is_resampled_on_target_aligned_pixels() -> None:
    # 0.6 m pixels, origin off the metre lattice.
    source = Grid(UTM17, (580000.3, 0.6, 0.0, 4100000.1, 0.0, -0.6), 1000, 500)
    progress = NullProgress()
    layout = plan_model_grid(source, 1.0, None, context=16, progress=progress)
    assert layout.resampled
    assert any("resampled" in m for m in progress.messages)
    out = layout.output_grid
    assert out.resolution == (1.0, 1.0)
    xmin, ymin, xmax, ymax = out.bounds
    assert (xmin, ymax) == (580000.0, 4100001.0)  # snapped outward to whole metres
    assert (xmax, ymin) == (580601.0, 4099700.0)
    # No context is available beyond the layer: the read grid is the output grid.
    assert layout.read_grid == out and layout.window == Window(0, 0, 601, 301)


def test_context_is_read_around_an_inner_extent() -> None:
    source = Grid(UTM17, (580000.0, 0.5, 0.0, 4100000.0, 0.0, -0.5), 2000, 2000)
    bounds = (580300.2, 4099300.0, 580400.0, 4099400.0)
    layout = plan_model_grid(source, 1.0, bounds, context=16)
    out = layout.output_grid
    assert out.bounds == (580300.0, 4099300.0, 580400.0, 4099400.0)
    assert layout.window == Window(16, 16, 100, 100)
    assert layout.read_grid.bounds == (580284.0, 4099284.0, 580416.0, 4099416.0)


def test_extent_outside_the_layer_is_a_clear_error() -> None:
    source = Grid(UTM17, (580000.0, 1.0, 0.0, 4100000.0, 0.0, -1.0), 100, 100)
    with pytest.raises(InputError, match="does not overlap the layer"):
        plan_model_grid(source, 1.0, (0.0, 0.0, 10.0, 10.0))


def test_ground_units_of_geographic_and_foot_crss() -> None:
    # Lengths of a degree on WGS 84 (e.g. NGA / Wikipedia "Length of a degree" tables).
    lon, lat = metres_per_unit(wkt(4326), (10.0, 0.0))  # type: ignore[misc]
    assert lon == pytest.approx(111319.5, abs=5) and lat == pytest.approx(110574.3, abs=5)
    lon, lat = metres_per_unit(wkt(4326), (10.0, 60.0))  # type: ignore[misc]
    assert lon == pytest.approx(55799.98, abs=5) and lat == pytest.approx(111412.2, abs=5)
    feet = metres_per_unit(wkt(2263), (1e6, 2e5))  # NAD83 / New York Long Island (ftUS)
    assert feet == pytest.approx((1200 / 3937, 1200 / 3937))
    assert metres_per_unit(UTM17, (5e5, 4e6)) == (1.0, 1.0)
    assert metres_per_unit("", (0.0, 0.0)) is None


def test_web_mercator_units_shrink_with_latitude() -> None:
    # y of latitude 60 deg in spherical Web Mercator: R * ln(tan(pi / 4 + phi / 2)).
    y = 6378137.0 * math.log(math.tan(math.pi / 4 + math.radians(60) / 2))
    scale = metres_per_unit(wkt(3857), (1e6, y))
    assert scale == pytest.approx((0.5, 0.5), rel=1e-9)


def test_geographic_layer_gets_pixels_of_the_model_size_on_the_ground() -> None:
    source = Grid(wkt(4326), (-80.0, 1e-5, 0.0, 38.0, 0.0, -1e-5), 2000, 2000)
    layout = plan_model_grid(source, 2.0, None)
    rx, ry = layout.output_grid.resolution
    lon_m, lat_m = metres_per_unit(wkt(4326), (-79.99, 37.99))  # type: ignore[misc]
    assert rx * lon_m == pytest.approx(2.0, rel=1e-3) and ry * lat_m == pytest.approx(2.0, rel=1e-3)


def test_unknown_crs_keeps_the_layer_resolution_with_a_warning() -> None:
    source = Grid("", (0.0, 0.5, 0.0, 100.0, 0.0, -0.5), 50, 50)
    progress = NullProgress()
    layout = plan_model_grid(source, 1.0, None, progress=progress)
    assert not layout.resampled and progress.warnings
