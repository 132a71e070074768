# SPDX-License-Identifier: GPL-2.0-or-later
"""Class bands of real and hand-made rasters: band choice and refusals, nodata as a
class value, pixels as GDAL reads them (packed 4-bit tiles included), category names
(names list or attribute table) and colours, CRS names and area units."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal, osr

from qgis_landcover.core.errors import InputError
from qgis_landcover.core.raster.class_raster import area_units, crs_name, open_class_band
from qgis_landcover.core.raster.grid import Window

from ...conftest import DATA

LABELS = DATA / "chesapeake_1m_patches" / "m_3708020_sw_17_1_2014_mosaic_labels.tif"
LULC_7 = DATA / "chesapeake_lulc_1m" / "Baywide_7class_20132014_E1300000_N1770000.tif"


def gdal_read(path: Path, window: Window, band: int = 1) -> np.ndarray:
    dataset = gdal.Open(str(path))
    return dataset.GetRasterBand(band).ReadAsArray(
        window.col_off, window.row_off, window.width, window.height
    )


def wkt(epsg: int) -> str:
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(epsg)
    return srs.ExportToWkt()


def write(
    path: Path,
    bands: list[np.ndarray],
    data_type: int = gdal.GDT_Byte,
    shape: tuple[int, int] = (2, 2),
) -> gdal.Dataset:
    """A GeoTIFF (EPSG:32617) holding ``bands``; with none, one empty band of ``shape``."""
    height, width = bands[0].shape if bands else shape
    count = len(bands) or 1
    dataset = gdal.GetDriverByName("GTiff").Create(str(path), width, height, count, data_type)
    dataset.SetGeoTransform((500000.0, 1.0, 0.0, 4100000.0, 0.0, -1.0))
    dataset.SetProjection(wkt(32617))
    for index, array in enumerate(bands, start=1):
        dataset.GetRasterBand(index).WriteArray(array)
    return dataset


def test_single_band_labels() -> None:
    band = open_class_band(LABELS, None, "reference raster")
    assert (band.band, band.role) == (1, "reference raster")
    assert band.describe() == f"{LABELS} (band 1)"
    assert band.block_size == (256, 256)
    assert band.nodata_values() == {0}
    assert band.packed is None
    assert (band.grid.width, band.grid.height) == (1024, 512)
    window = Window(700, 300, 300, 200)
    np.testing.assert_array_equal(band.read(window), gdal_read(LABELS, window))
    assert crs_name(band.grid.crs_wkt) == "EPSG:26917"


def test_packed_4_bit_tile_reads_as_gdal_does() -> None:
    band = open_class_band(LULC_7, 1, "reference raster")
    assert band.packed is not None and band.packed.bits == 4
    assert band.nodata_values() == {15}
    window = Window(4_000, 7_000, 900, 600)
    np.testing.assert_array_equal(band.read(window), gdal_read(LULC_7, window))


def test_band_choice_and_refusals(tmp_path: Path) -> None:
    planes = [np.full((4, 5), value, np.uint8) for value in (1, 2, 3)]
    write(tmp_path / "stack.tif", planes).FlushCache()
    stack = tmp_path / "stack.tif"
    with pytest.raises(InputError, match=r"classified raster .*stack.tif has 3 bands: choose"):
        open_class_band(stack, None, "classified raster")
    with pytest.raises(InputError, match=r"has no band 4 \(it has 3 bands\)"):
        open_class_band(stack, 4, "classified raster")
    second = open_class_band(stack, 2, "classified raster")
    assert second.describe() == f"{stack} (band 2)"
    np.testing.assert_array_equal(second.read(Window(0, 0, 5, 4)), planes[1])

    floats = tmp_path / "floats.tif"
    write(floats, [np.zeros((4, 5), np.float32)], gdal.GDT_Float32).FlushCache()
    with pytest.raises(InputError, match=r"Band 1 of the reference raster .* holds Float32"):
        open_class_band(floats, None, "reference raster")
    with pytest.raises(InputError, match=r"not found"):
        open_class_band(tmp_path / "missing.tif", None, "reference raster")


def test_nodata_values(tmp_path: Path) -> None:
    dataset = write(tmp_path / "map.tif", [np.zeros((2, 2), np.int16)], gdal.GDT_Int16)
    dataset.GetRasterBand(1).SetNoDataValue(-9999)
    dataset = None
    assert open_class_band(tmp_path / "map.tif", 1, "map").nodata_values() == {-9999}
    # A nodata value that is no whole number can be no class value.
    dataset = gdal.Open(str(tmp_path / "map.tif"), gdal.GA_Update)
    dataset.GetRasterBand(1).SetNoDataValue(2.5)
    dataset = None
    assert open_class_band(tmp_path / "map.tif", 1, "map").nodata_values() == set()


def test_category_names_and_colours(tmp_path: Path) -> None:
    dataset = write(tmp_path / "named.tif", [])
    band = dataset.GetRasterBand(1)
    band.SetCategoryNames(["", "water", " tree canopy ", ""])
    table = gdal.ColorTable()
    table.SetColorEntry(1, (0, 0, 255, 255))
    table.SetColorEntry(2, (0, 128, 0, 255))
    # Before any pixel: GDAL 3.10 refuses a palette once blocks are written.
    band.SetRasterColorTable(table)
    band.WriteArray(np.array([[1, 2], [3, 3]], np.uint8))
    band = dataset = None  # closed: written to the file
    named = open_class_band(tmp_path / "named.tif", None, "map")
    assert named.category_names() == {1: "water", 2: "tree canopy"}
    colors = named.category_colors()
    assert (colors[0], colors[1], colors[2]) == ("#000000", "#0000ff", "#008000")
    assert open_class_band(LABELS, None, "map").category_colors() == {}


def test_category_names_from_the_attribute_table(tmp_path: Path) -> None:
    dataset = write(tmp_path / "rat.tif", [np.array([[11, 42]], np.uint8)])
    rat = gdal.RasterAttributeTable()
    rat.CreateColumn("value", gdal.GFT_Integer, gdal.GFU_MinMax)
    rat.CreateColumn("class", gdal.GFT_String, gdal.GFU_Name)
    for row, (value, name) in enumerate([(11, "open water"), (42, "forest"), (50, " ")]):
        rat.SetValueAsInt(row, 0, value)
        rat.SetValueAsString(row, 1, name)
    dataset.GetRasterBand(1).SetDefaultRAT(rat)
    dataset = None
    band = open_class_band(tmp_path / "rat.tif", None, "map")
    assert band.category_names() == {11: "open water", 42: "forest"}


def test_crs_names() -> None:
    assert crs_name(wkt(4326)) == "EPSG:4326"
    assert crs_name("") == "no CRS"
    local = osr.SpatialReference()
    local.SetProjCS("Site grid")
    local.SetWellKnownGeogCS("WGS84")
    local.SetTM(0, 0, 1, 0, 0)
    assert crs_name(local.ExportToWkt()) == "Site grid"


def test_area_units() -> None:
    assert area_units(wkt(26917)) == ("metre²", 1e-4)
    unit, hectares = area_units(wkt(2272))  # Pennsylvania South, US survey feet
    assert unit == "US survey foot²"
    assert hectares == pytest.approx((1200 / 3937) ** 2 / 10_000)
    assert area_units(wkt(4326)) == ("degrees²", None)
    assert area_units("") == ("map units²", None)
