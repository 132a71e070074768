# SPDX-License-Identifier: GPL-2.0-or-later
"""The GDAL image source: its bands, its grid for an extent in another CRS, reads with
validity (nodata, alpha in any band, GDAL masks), resampled reads, and reading ahead in
a thread only for sources that allow it."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal

from qgis_landcover.core.inference.band_mapping import BandInfo
from qgis_landcover.core.inference.classified_output import OutputPaths
from qgis_landcover.core.inference.classify import classify
from qgis_landcover.core.inference.gdal_source import GdalImageSource, GdalReader
from qgis_landcover.core.inference.image_source import Extent
from qgis_landcover.core.inference.model_grid import ModelGrid, plan_model_grid
from qgis_landcover.core.raster.grid import Grid, Window
from qgis_landcover.core.raster.reading import raster_grid

from ...rasters import write_with_alpha
from .conftest import MOSAIC, crop, read
from .test_image_source import WGS84, sampled_box


def test_bands_and_grid_are_the_rasters(tmp_path: Path) -> None:
    path = crop(tmp_path, "naip.tif", (0, 0, 64, 32))
    dataset = gdal.Open(str(path), gdal.GA_Update)
    dataset.GetRasterBand(4).SetDescription("near infrared")
    dataset = None
    source = GdalImageSource(path)
    assert source.data_source == str(path)
    assert source.bands() == [
        BandInfo(1, "", "red"),
        BandInfo(2, "", "green"),
        BandInfo(3, "", "blue"),
        BandInfo(4, "near infrared", "undefined"),
    ]
    grid = source.grid(1.0, None)
    assert grid.geotransform == (580000.0, 1.0, 0.0, 4100000.0, 0.0, -1.0)
    assert (grid.width, grid.height) == (64, 32)
    # Its own grid, whatever the model's resolution and the extent.
    assert source.grid(0.5, Extent((580000.0, 4099990.0, 580010.0, 4100000.0))) == grid
    assert GdalImageSource(gdal.Open(str(path))).grid(1.0, None) == grid


def test_an_extent_in_degrees_classifies_the_pixels_it_covers(tmp_path: Path, model: Path) -> None:
    """EXTENT in WGS 84 over the UTM raster: the pixels whose box holds the extent."""
    source = GdalImageSource(crop(tmp_path, "naip.tif", (0, 0, 300, 200)))
    grid = source.grid(1.0, None)
    # The box of pixels 100-180 x 50-130, in degrees: the box around its corners.
    box = (580100.0, 4099870.0, 580180.0, 4099950.0)
    degrees = sampled_box(box, grid.crs_wkt, WGS84, 2)
    extent = Extent(degrees, WGS84)
    # The oracle: the extent's edges reprojected point by point, 1001 per edge.
    expected = grid.window_for_bounds(sampled_box(degrees, WGS84, grid.crs_wkt, 1001))
    # The box in degrees holds the UTM box; back in UTM it grows by the grid's rotation
    # against the meridians (about 1 %), never shrinks.
    assert expected.col_off <= 100 and expected.row_off <= 50
    assert expected.col_off + expected.width >= 180 and expected.row_off + expected.height >= 130
    assert expected.width <= 83 and expected.height <= 83
    result = classify(source, model, OutputPaths(tmp_path / "out.tif"), extent=extent)
    assert result.grid == grid.window_grid(expected)
    full = tmp_path / "full.tif"
    classify(source, model, OutputPaths(full))
    rows = slice(expected.row_off, expected.row_off + expected.height)
    cols = slice(expected.col_off, expected.col_off + expected.width)
    np.testing.assert_array_equal(read(tmp_path / "out.tif"), read(full)[rows, cols])


def nodata_alpha_and_mask(tmp_path: Path) -> tuple[Path, np.ndarray, np.ndarray]:
    """Real pixels with a nodata value in band 3, a transparent block (alpha in band 5)
    and a GDAL mask (.msk) hiding another block; the image and the valid pixels."""
    image = read(crop(tmp_path, "source.tif", (0, 0, 40, 30)))
    image[2, 5, :] = 9  # nodata of band 3
    image[:, 20:25, 30:40] = 0  # zero in every band
    alpha = np.full((30, 40), 255, np.uint8)
    alpha[0:4, 0:6] = 0
    path = write_with_alpha(tmp_path / "five.tif", image, alpha, like=MOSAIC)
    dataset = gdal.Open(str(path), gdal.GA_Update)
    dataset.GetRasterBand(3).SetNoDataValue(9)
    dataset = None
    gdal.SetConfigOption("GDAL_TIFF_INTERNAL_MASK", "NO")
    try:
        dataset = gdal.Open(str(path), gdal.GA_Update)
        dataset.CreateMaskBand(gdal.GMF_PER_DATASET)
        mask = np.full((30, 40), 255, np.uint8)
        mask[10:14, 10:20] = 0
        dataset.GetRasterBand(1).GetMaskBand().WriteArray(mask)
        dataset = None
    finally:
        gdal.SetConfigOption("GDAL_TIFF_INTERNAL_MASK", None)
    valid = np.ones((30, 40), bool)
    valid[5, :] = False
    valid[20:25, 30:40] = False
    valid[0:4, 0:6] = False
    valid[10:14, 10:20] = False
    return path, image, valid


def test_reads_give_the_bands_in_the_model_order_and_their_validity(tmp_path: Path) -> None:
    path, image, valid = nodata_alpha_and_mask(tmp_path)
    assert (tmp_path / "five.tif.msk").exists()
    source = GdalImageSource(path)
    grid = source.grid(1.0, None)
    layout = ModelGrid(grid, grid.full_window, resampled=False)
    reader = source.reader(layout, [4, 1, 2, 3])
    assert isinstance(reader, GdalReader) and reader.grid == grid
    assert reader.data_type == "uint8"
    raw, got = reader.read(Window(0, 0, 40, 30))
    assert raw.dtype == np.float32 and raw.shape == (4, 30, 40)
    np.testing.assert_array_equal(raw, image[[3, 0, 1, 2]].astype(np.float32))
    np.testing.assert_array_equal(got, valid)
    part, part_valid = reader.read(Window(8, 9, 5, 6))
    np.testing.assert_array_equal(part, image[[3, 0, 1, 2], 9:15, 8:13])
    np.testing.assert_array_equal(part_valid, valid[9:15, 8:13])


def test_a_resampled_reader_reads_a_bilinear_warp_on_the_model_grid(tmp_path: Path) -> None:
    path = crop(tmp_path, "naip.tif", (0, 0, 60, 40))
    source = GdalImageSource(path)
    layout = plan_model_grid(source.grid(2.0, None), 2.0)
    assert layout.resampled and layout.read_grid.resolution == (2.0, 2.0)
    reader = source.reader(layout, [1, 2, 3, 4])
    assert reader.grid == layout.read_grid
    raw, _ = reader.read(layout.read_grid.full_window)
    expected = gdal.Warp(
        "",
        str(path),
        format="MEM",
        outputBounds=layout.read_grid.bounds,
        width=layout.read_grid.width,
        height=layout.read_grid.height,
        resampleAlg="bilinear",
    ).ReadAsArray()
    np.testing.assert_array_equal(raw, expected.astype(np.float32))


class ThreadRecordingSource:
    """A GDAL source whose ``thread_safe`` is set, recording the threads reads run on."""

    def __init__(self, path: Path, thread_safe: bool) -> None:
        self.inner = GdalImageSource(path)
        self.thread_safe = thread_safe
        self.data_source = self.inner.data_source
        self.threads: set[str] = set()

    def bands(self) -> list[BandInfo]:
        return self.inner.bands()

    def grid(self, resolution_m: float, extent: Extent | None) -> Grid:
        return self.inner.grid(resolution_m, extent)

    def reader(self, layout: ModelGrid, bands: Sequence[int]) -> GdalReader:
        reader = self.inner.reader(layout, bands)
        read = reader.read

        def recorded(window: Window) -> tuple[np.ndarray, np.ndarray]:
            self.threads.add(threading.current_thread().name)
            return read(window)

        reader.read = recorded  # type: ignore[method-assign]
        return reader


@pytest.mark.parametrize("thread_safe", [True, False])
def test_only_thread_safe_sources_are_read_ahead_in_a_thread(
    tmp_path: Path, model: Path, thread_safe: bool
) -> None:
    naip = crop(tmp_path, "naip.tif", (0, 0, 200, 120))
    source = ThreadRecordingSource(naip, thread_safe)
    out = tmp_path / "out.tif"
    classify(source, model, OutputPaths(out))
    reference = tmp_path / "reference.tif"
    classify(GdalImageSource(naip), model, OutputPaths(reference))
    np.testing.assert_array_equal(read(out), read(reference))
    caller = threading.current_thread().name
    # The input check samples on the calling thread; the strips follow the flag.
    expected = {caller, "landcover-read"} if thread_safe else {caller}
    assert source.threads == expected
    assert raster_grid(gdal.Open(str(out))) == raster_grid(gdal.Open(str(naip)))
