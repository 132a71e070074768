# SPDX-License-Identifier: GPL-2.0-or-later
"""The packed (NBITS 1/2/4) GeoTIFF reader decodes exactly what GDAL decodes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal

from qgis_landcover.core.raster.grid import Window
from qgis_landcover.core.raster.packed_tiff import PackedTiffBand

from ...conftest import DATA

LULC = DATA / "chesapeake_lulc_1m"


def gdal_window(dataset: gdal.Dataset, band: int, window: Window) -> np.ndarray:
    return dataset.GetRasterBand(band).ReadAsArray(
        window.col_off, window.row_off, window.width, window.height
    )


def random_windows(
    width: int, height: int, count: int, seed: int, largest: int = 2000
) -> list[Window]:
    """The whole raster (when small) and ``count`` random windows of at most
    ``largest`` pixels a side."""
    rng = np.random.default_rng(seed)
    windows = [Window(0, 0, width, height)] if width * height <= largest**2 else []
    for _ in range(count):
        col, row = int(rng.integers(0, width)), int(rng.integers(0, height))
        cols = int(rng.integers(1, min(largest, width - col) + 1))
        rows = int(rng.integers(1, min(largest, height - row) + 1))
        windows.append(Window(col, row, cols, rows))
    return windows


@pytest.mark.parametrize(
    "name",
    [
        "Baywide_13Class_20132014_E1300000_N1770000.tif",
        "Baywide_7class_20132014_E1300000_N1770000.tif",
    ],
)
def test_real_chesapeake_tiles(name: str) -> None:
    path = str(LULC / name)
    dataset = gdal.Open(path)
    reader = PackedTiffBand.open(path, dataset, 1)
    assert reader is not None and reader.bits == 4
    for window in random_windows(10_000, 10_000, 8, seed=1):
        np.testing.assert_array_equal(reader.read(window), gdal_window(dataset, 1, window))


def write(path: Path, array: np.ndarray, options: list[str], nodata: int | None = None) -> str:
    bands = 1 if array.ndim == 2 else array.shape[0]
    planes = array.reshape(bands, *array.shape[-2:])
    dataset = gdal.GetDriverByName("GTiff").Create(
        str(path), planes.shape[2], planes.shape[1], bands, gdal.GDT_Byte, options
    )
    dataset.SetGeoTransform((0, 1, 0, 0, 0, -1))
    for index, plane in enumerate(planes, start=1):
        band = dataset.GetRasterBand(index)
        if nodata is not None:
            band.SetNoDataValue(nodata)
        band.WriteArray(plane)
    dataset = None
    return str(path)


@pytest.mark.parametrize("bits", [1, 2, 4])
@pytest.mark.parametrize("compress", ["DEFLATE", "NONE"])
@pytest.mark.parametrize(
    "layout", [["TILED=YES", "BLOCKXSIZE=32", "BLOCKYSIZE=48"], ["ROWSPERSTRIP=7"]]
)
def test_synthetic_layouts(tmp_path: Path, bits: int, compress: str, layout: list[str]) -> None:
    rng = np.random.default_rng(bits)
    # Odd sizes: partial last tiles / strips and rows that do not fill whole bytes.
    array = rng.integers(0, 1 << bits, size=(101, 77)).astype(np.uint8)
    array[:60, :40] = 0  # uniform blocks that recur
    path = write(tmp_path / "packed.tif", array, [f"NBITS={bits}", f"COMPRESS={compress}", *layout])
    dataset = gdal.Open(path)
    reader = PackedTiffBand.open(path, dataset, 1)
    assert reader is not None
    for window in random_windows(77, 101, 25, seed=bits):
        np.testing.assert_array_equal(reader.read(window), gdal_window(dataset, 1, window))


def test_separate_planes_and_sparse_blocks(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    stack = rng.integers(0, 16, size=(2, 64, 64)).astype(np.uint8)
    path = write(
        tmp_path / "planes.tif",
        stack,
        [
            "NBITS=4",
            "COMPRESS=DEFLATE",
            "INTERLEAVE=BAND",
            "TILED=YES",
            "BLOCKXSIZE=16",
            "BLOCKYSIZE=16",
        ],
    )
    dataset = gdal.Open(path)
    for band in (1, 2):
        reader = PackedTiffBand.open(path, dataset, band)
        assert reader is not None
        np.testing.assert_array_equal(
            reader.read(Window(3, 5, 50, 40)), stack[band - 1, 5:45, 3:53]
        )

    sparse_path = str(tmp_path / "sparse.tif")
    options = ["NBITS=4", "COMPRESS=DEFLATE", "TILED=YES", "BLOCKXSIZE=16", "BLOCKYSIZE=16"]
    sparse = gdal.GetDriverByName("GTiff").Create(
        sparse_path, 64, 64, 1, gdal.GDT_Byte, [*options, "SPARSE_OK=TRUE"]
    )
    sparse.GetRasterBand(1).SetNoDataValue(9)
    sparse.GetRasterBand(1).WriteArray(np.full((16, 16), 3, np.uint8), 16, 16)  # one block only
    sparse = None
    dataset = gdal.Open(sparse_path)
    reader = PackedTiffBand.open(sparse_path, dataset, 1)
    assert reader is not None
    expected = gdal_window(dataset, 1, Window(0, 0, 64, 64))
    assert expected[0, 0] == 9 and expected[20, 20] == 3
    np.testing.assert_array_equal(reader.read(Window(0, 0, 64, 64)), expected)


def test_recurring_and_uniform_blocks(tmp_path: Path) -> None:
    # Every 16 x 16 block holds the same pattern (compressed alike, decoded once);
    # the lower half is one value (returned without copying, read-only).
    pattern = np.arange(256, dtype=np.uint8).reshape(16, 16) % 4
    array = np.tile(pattern, (4, 4))
    array[32:] = 2
    options = ["NBITS=2", "COMPRESS=DEFLATE", "TILED=YES", "BLOCKXSIZE=16", "BLOCKYSIZE=16"]
    path = write(tmp_path / "recurring.tif", array, options)
    reader = PackedTiffBand.open(path, gdal.Open(path), 1)
    assert reader is not None
    first = reader.read(Window(0, 0, 40, 20))
    np.testing.assert_array_equal(first, array[:20, :40])
    first[:] = 3  # a private copy: the remembered blocks are unchanged
    np.testing.assert_array_equal(reader.read(Window(0, 0, 40, 20)), array[:20, :40])
    uniform = reader.read(Window(5, 32, 50, 30))
    assert uniform.shape == (30, 50) and not uniform.flags.writeable
    assert uniform.strides == (0, 0) and (uniform == 2).all()
    np.testing.assert_array_equal(reader.read(Window(0, 24, 64, 16)), array[24:40])


def test_other_layouts_are_left_to_gdal(tmp_path: Path) -> None:
    array = np.random.default_rng(1).integers(0, 16, size=(40, 40)).astype(np.uint8)
    cases = {
        "lzw.tif": (array, ["NBITS=4", "COMPRESS=LZW"]),
        "bytes.tif": (array, ["COMPRESS=DEFLATE"]),
        "pixel.tif": (np.stack([array, array]), ["NBITS=4", "INTERLEAVE=PIXEL"]),
    }
    for name, (data, options) in cases.items():
        path = write(tmp_path / name, data, options)
        assert PackedTiffBand.open(path, gdal.Open(path), 1) is None, name
    vrt = str(tmp_path / "packed.vrt")
    packed = write(tmp_path / "packed.tif", array, ["NBITS=4"])
    gdal.Translate(vrt, packed, format="VRT")
    assert PackedTiffBand.open(vrt, gdal.Open(vrt), 1) is None
