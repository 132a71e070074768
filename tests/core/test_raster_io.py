# SPDX-License-Identifier: GPL-2.0-or-later
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal

from qgis_landcover.core import raster_io
from qgis_landcover.core.errors import InputError
from qgis_landcover.core.grid import Window

from ..conftest import DATA

LABELS = DATA / "chesapeake_1m_patches" / "m_3708020_sw_17_1_2014_mosaic_labels.tif"
NAIP = DATA / "chesapeake_1m_patches" / "m_3708020_sw_17_1_2014_mosaic_naip.tif"


def test_open_raster_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"not found"):
        raster_io.open_raster(tmp_path / "missing.tif")
    text = tmp_path / "notes.tif"
    text.write_text("not a raster")
    with pytest.raises(InputError, match=r"notes\.tif"):
        raster_io.open_raster(text)


def test_read_window_matches_gdal() -> None:
    dataset = raster_io.open_raster(NAIP)
    window = Window(100, 50, 30, 20)
    block = raster_io.read_window(dataset, window, [4, 1])
    assert block.shape == (2, 20, 30)
    reference = gdal.Open(str(NAIP))  # kept alive: a band must not outlive its dataset
    expected = reference.GetRasterBand(4).ReadAsArray()[50:70, 100:130]
    np.testing.assert_array_equal(block[0], expected)
    assert raster_io.read_window(dataset, window, 2).shape == (20, 30)
    with pytest.raises(InputError, match=r"Band 5 does not exist"):
        raster_io.read_window(dataset, window, [5])


def test_warp_to_same_grid_is_identity_and_to_other_grid_is_lazy() -> None:
    dataset = raster_io.open_raster(LABELS)
    grid = raster_io.raster_grid(dataset)
    assert raster_io.same_grid(grid, raster_io.raster_grid(raster_io.open_raster(NAIP)))
    warped = raster_io.warp_to_grid(dataset, grid)
    np.testing.assert_array_equal(warped.ReadAsArray(), dataset.ReadAsArray())
    # A 2 m grid on the same origin: nearest neighbour picks every other pixel's block.
    coarse = type(grid)(
        grid.crs_wkt, (*grid.geotransform[:1], 2.0, 0.0, grid.geotransform[3], 0.0, -2.0), 512, 256
    )
    assert not raster_io.same_grid(grid, coarse)
    warped = raster_io.warp_to_grid(dataset, coarse)
    assert warped.GetDriver().ShortName == "VRT"
    assert (warped.RasterXSize, warped.RasterYSize) == (512, 256)
    values = set(np.unique(warped.ReadAsArray()))
    assert values <= set(np.unique(dataset.ReadAsArray()))


def test_atomic_output_renames_on_success_and_cleans_on_failure(tmp_path: Path) -> None:
    destination = tmp_path / "out.tif"
    grid = raster_io.raster_grid(raster_io.open_raster(LABELS))
    with raster_io.atomic_output(destination) as temporary:
        assert temporary.parent == tmp_path and temporary.suffix == ".tif"
        dataset = raster_io.create_geotiff(temporary, grid, 1, gdal.GDT_Byte, nodata=0)
        band = dataset.GetRasterBand(1)
        band.WriteArray(np.ones((grid.height, grid.width), np.uint8))
        raster_io.set_category_table(band, {1: (0, 128, 0)}, {1: "tree"})
        dataset = None
        assert not destination.exists()
    written = gdal.Open(str(destination))
    assert written.GetRasterBand(1).GetNoDataValue() == 0
    assert written.GetRasterBand(1).GetCategoryNames()[1] == "tree"
    assert written.GetRasterBand(1).GetColorTable().GetColorEntry(1)[:3] == (0, 128, 0)
    # GTiff keeps category names in a PAM side-car, which moves with the file.
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names in (["out.tif"], ["out.tif", "out.tif.aux.xml"])

    with (
        pytest.raises(RuntimeError, match="boom"),
        raster_io.atomic_output(tmp_path / "failed.tif") as temporary,
    ):
        temporary.write_bytes(b"partial")
        raise RuntimeError("boom")
    assert sorted(p.name for p in tmp_path.iterdir()) == names


def test_atomic_output_refuses_missing_folder(tmp_path: Path) -> None:
    with (
        pytest.raises(InputError, match="does not exist"),
        raster_io.atomic_output(tmp_path / "nowhere" / "out.tif"),
    ):
        pass


def test_qml_style_lists_every_class(tmp_path: Path) -> None:
    path = raster_io.write_qml_paletted(
        tmp_path / "style.qml", {1: (31, 120, 180), 2: (51, 160, 44)}, {1: "water", 2: "tree"}
    )
    text = path.read_text()
    assert 'value="1" color="#1f78b4"' in text and 'label="tree"' in text


def test_gdal_connection_strings_are_opened_by_gdal(tmp_path: Path) -> None:
    geopackage = tmp_path / "labels.gpkg"
    gdal.Translate(str(geopackage), str(LABELS), format="GPKG", creationOptions=["RASTER_TABLE=lc"])
    dataset = raster_io.open_raster(f"GPKG:{geopackage}:lc")
    assert (dataset.RasterXSize, dataset.RasterYSize) == (1024, 512)
    with pytest.raises(InputError, match=r"Cannot open raster GPKG:"):
        raster_io.open_raster(f"GPKG:{tmp_path / 'missing.gpkg'}:lc")
