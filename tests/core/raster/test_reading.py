# SPDX-License-Identifier: GPL-2.0-or-later
""":mod:`qgis_landcover.core.raster.reading`: opening rasters, windows, warping."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal

from qgis_landcover.core.errors import InputError
from qgis_landcover.core.raster.grid import Window
from qgis_landcover.core.raster.reading import (
    open_raster,
    raster_grid,
    read_window,
    same_grid,
    warp_to_grid,
)

from ...conftest import DATA

LABELS = DATA / "chesapeake_1m_patches" / "m_3708020_sw_17_1_2014_mosaic_labels.tif"
NAIP = DATA / "chesapeake_1m_patches" / "m_3708020_sw_17_1_2014_mosaic_naip.tif"


def test_open_raster_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"not found"):
        open_raster(tmp_path / "missing.tif")
    text = tmp_path / "notes.tif"
    text.write_text("not a raster")
    with pytest.raises(InputError, match=r"notes\.tif"):
        open_raster(text)


def test_read_window_matches_gdal() -> None:
    dataset = open_raster(NAIP)
    window = Window(100, 50, 30, 20)
    block = read_window(dataset, window, [4, 1])
    assert block.shape == (2, 20, 30)
    reference = gdal.Open(str(NAIP))  # kept alive: a band must not outlive its dataset
    expected = reference.GetRasterBand(4).ReadAsArray()[50:70, 100:130]
    np.testing.assert_array_equal(block[0], expected)
    assert read_window(dataset, window, 2).shape == (20, 30)
    with pytest.raises(InputError, match=r"Band 5 does not exist"):
        read_window(dataset, window, [5])


def test_warp_to_same_grid_is_identity_and_to_other_grid_is_lazy() -> None:
    dataset = open_raster(LABELS)
    grid = raster_grid(dataset)
    assert same_grid(grid, raster_grid(open_raster(NAIP)))
    warped = warp_to_grid(dataset, grid)
    np.testing.assert_array_equal(warped.ReadAsArray(), dataset.ReadAsArray())
    # A 2 m grid on the same origin: nearest neighbour picks every other pixel's block.
    coarse = type(grid)(
        grid.crs_wkt, (*grid.geotransform[:1], 2.0, 0.0, grid.geotransform[3], 0.0, -2.0), 512, 256
    )
    assert not same_grid(grid, coarse)
    warped = warp_to_grid(dataset, coarse)
    assert warped.GetDriver().ShortName == "VRT"
    assert (warped.RasterXSize, warped.RasterYSize) == (512, 256)
    values = set(np.unique(warped.ReadAsArray()))
    assert values <= set(np.unique(dataset.ReadAsArray()))


def test_gdal_connection_strings_are_opened_by_gdal(tmp_path: Path) -> None:
    geopackage = tmp_path / "labels.gpkg"
    gdal.Translate(str(geopackage), str(LABELS), format="GPKG", creationOptions=["RASTER_TABLE=lc"])
    dataset = open_raster(f"GPKG:{geopackage}:lc")
    assert (dataset.RasterXSize, dataset.RasterYSize) == (1024, 512)
    with pytest.raises(InputError, match=r"Cannot open raster GPKG:"):
        open_raster(f"GPKG:{tmp_path / 'missing.gpkg'}:lc")
