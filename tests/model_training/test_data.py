# SPDX-License-Identifier: GPL-2.0-or-later
"""Training pairs: listing (CSV, folder, .npz, mappings) and windowed reads, checked
against whole-array reads of the same real rasters."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal

from model_training.data import (
    NpzPatch,
    PairSpec,
    RasterPair,
    open_sources,
    read_patch,
    read_with_context,
    resolve_pairs,
)
from model_training.labels import IGNORE_INDEX, LabelMapper
from qgis_landcover.core.errors import InputError
from qgis_landcover.core.raster.grid import Window

from .tiny import MOSAIC_IMAGE, MOSAIC_LABELS, patch

gdal.UseExceptions()

MAPPER = LabelMapper({5: 4, 6: 4}, [1, 2, 3, 4], ignore_values=[0, 15])


def whole(path: Path) -> np.ndarray:
    return gdal.Open(str(path)).ReadAsArray()


def expected_targets(labels: np.ndarray) -> np.ndarray:
    """Chesapeake 7 -> channels of classes 1-4 (5, 6 -> 4; 0, 15 ignored), by hand."""
    channel = {1: 0, 2: 1, 3: 2, 4: 3, 5: 3, 6: 3}
    out = np.full(labels.shape, IGNORE_INDEX, dtype=np.uint8)
    for value, index in channel.items():
        out[labels == value] = index
    return out


def test_csv_folder_npz_and_mapping_entries(tmp_path: Path) -> None:
    folder = tmp_path / "pairs"
    folder.mkdir()
    shutil.copy(MOSAIC_IMAGE, folder / "a_naip.tif")
    shutil.copy(MOSAIC_LABELS, folder / "a_labels.tif")
    shutil.copy(patch(2), folder / "p2.npz")
    csv_path = folder / "list.csv"
    csv_path.write_text("image,label,window\na_naip.tif,a_labels.tif,0 0 256 128\np2.npz,,\n")
    pairs = resolve_pairs(
        [
            str(csv_path),
            str(folder),
            str(folder / "*.npz"),
            {"image": str(MOSAIC_IMAGE), "label": str(MOSAIC_LABELS), "window": [1, 2, 3, 4]},
        ]
    )
    assert pairs == [
        PairSpec(str(folder / "a_naip.tif"), str(folder / "a_labels.tif"), Window(0, 0, 256, 128)),
        PairSpec(str(folder / "p2.npz")),
        PairSpec(str(folder / "p2.npz")),  # the folder lists .npz first
        PairSpec(str(folder / "a_naip.tif"), str(folder / "a_labels.tif")),
        PairSpec(str(folder / "p2.npz")),
        PairSpec(str(MOSAIC_IMAGE), str(MOSAIC_LABELS), Window(1, 2, 3, 4)),
    ]


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("missing.csv", "Training data not found"),
        ({"image": "x.tif"}, "a label raster is required"),
        ({"image": "x.npz", "window": "1 2"}, "window must be 'col row width height'"),
        ("nothing*.tif", "No file matches"),
    ],
)
def test_bad_entries_say_what_is_wrong(entry: object, message: str) -> None:
    with pytest.raises(InputError, match=message):
        resolve_pairs([entry])


def test_folder_image_without_label_is_named(tmp_path: Path) -> None:
    shutil.copy(MOSAIC_IMAGE, tmp_path / "b_naip.tif")
    with pytest.raises(InputError, match=r"b_naip\.tif has no label raster b_labels\.tif"):
        resolve_pairs([str(tmp_path)])


@pytest.mark.parametrize("cache", [False, True])
def test_raster_windows_equal_whole_reads(cache: bool) -> None:
    spec = PairSpec(str(MOSAIC_IMAGE), str(MOSAIC_LABELS), Window(256, 100, 512, 400))
    pair = RasterPair(spec, MAPPER, [1, 2, 3, 4], cache=cache)
    assert (pair.width, pair.height) == (512, 400)
    image, labels = whole(MOSAIC_IMAGE), whole(MOSAIC_LABELS)
    window = Window(10, 20, 64, 48)
    rows, cols = slice(120, 168), slice(266, 330)
    np.testing.assert_array_equal(pair.read_image(window), image[:, rows, cols])
    np.testing.assert_array_equal(pair.read_target(window), expected_targets(labels[rows, cols]))


def test_band_subset_and_order() -> None:
    pair = RasterPair(PairSpec(str(MOSAIC_IMAGE), str(MOSAIC_LABELS)), MAPPER, [4, 1])
    window = Window(0, 0, 16, 16)
    np.testing.assert_array_equal(pair.read_image(window), whole(MOSAIC_IMAGE)[[3, 0], :16, :16])


def write_label_raster(path: Path, array: np.ndarray, geotransform: tuple, nodata=None) -> None:
    source = gdal.Open(str(MOSAIC_LABELS))
    out = gdal.GetDriverByName("GTiff").Create(str(path), array.shape[1], array.shape[0], 1)
    out.SetGeoTransform(geotransform)
    out.SetProjection(source.GetProjection())
    if nodata is not None:
        out.GetRasterBand(1).SetNoDataValue(nodata)
    out.GetRasterBand(1).WriteArray(array)
    out = None


def test_labels_on_another_grid_are_warped_nearest(tmp_path: Path) -> None:
    # A 2 m label raster covering the left half of the 1 m image: each 1 m pixel takes
    # the 2 m pixel its centre falls in; outside its extent everything is ignored.
    labels = whole(MOSAIC_LABELS)
    coarse = labels[::2, :512:2]
    x0, _, _, y0, _, _ = gdal.Open(str(MOSAIC_IMAGE)).GetGeoTransform()
    path = tmp_path / "coarse.tif"
    write_label_raster(path, coarse, (x0, 2.0, 0.0, y0, 0.0, -2.0))
    pair = RasterPair(PairSpec(str(MOSAIC_IMAGE), str(path)), MAPPER, [1, 2, 3, 4])
    target = pair.read_target(Window(0, 0, 1024, 512))
    upsampled = np.repeat(np.repeat(coarse, 2, axis=0), 2, axis=1)
    np.testing.assert_array_equal(target[:, :512], expected_targets(upsampled))
    assert (target[:, 512:] == IGNORE_INDEX).all()


def test_npz_patch_reads_image_channels_and_label_channel() -> None:
    array = np.load(patch(0))["arr_0"][0]
    source = NpzPatch(
        PairSpec(str(patch(0)), None, Window(8, 16, 100, 50)), MAPPER, [0, 1, 2, 3], 8
    )
    window = Window(5, 6, 20, 10)
    np.testing.assert_array_equal(source.read_image(window), array[0:4, 22:32, 13:33])
    np.testing.assert_array_equal(
        source.read_target(window), expected_targets(array[8, 22:32, 13:33].astype(int))
    )


def test_read_patch_pads_outside_and_ignores_image_nodata(tmp_path: Path) -> None:
    image = gdal.Translate(str(tmp_path / "img.tif"), str(MOSAIC_IMAGE), noData=0)
    block = np.zeros((4, 8, 8), dtype=np.uint8)
    image.WriteRaster(0, 0, 8, 8, block.tobytes())  # an all-bands-zero corner: no data
    image = None
    [source] = open_sources(
        [PairSpec(str(tmp_path / "img.tif"), str(MOSAIC_LABELS))], MAPPER, [1, 2, 3, 4]
    )
    pixels, target = read_patch(source, Window(0, 0, 32, 32), 32)
    assert (target[:8, :8] == IGNORE_INDEX).all()
    assert (target[8:, 8:] != IGNORE_INDEX).all()
    # A window hanging over the right edge: the part outside is padded and ignored.
    pixels, target = read_patch(source, Window(1000, 0, 32, 32), 32)
    assert pixels.shape == (4, 32, 32)
    assert (target[:, 24:] == IGNORE_INDEX).all() and (pixels[:, :, 24:] == 0).all()
    np.testing.assert_array_equal(pixels[:, :, :24], whole(MOSAIC_IMAGE)[:, :32, 1000:])


def test_read_with_context_reflects_the_image_and_ignores_labels_outside() -> None:
    # The held-out column of the mosaic as a source; a tile grown 64 px past its top-left.
    spec = PairSpec(str(MOSAIC_IMAGE), str(MOSAIC_LABELS), Window(768, 0, 256, 512))
    [source] = open_sources([spec], MAPPER, [1, 2, 3, 4])
    pixels, target = read_with_context(source, Window(-64, -64, 256, 256))
    inside = whole(MOSAIC_IMAGE)[:, :192, 768:960].astype(np.float32)
    # Oracle: numpy's reflection (edge pixel not repeated), as the plugin's classifier pads.
    expected = np.pad(inside, ((0, 0), (64, 0), (64, 0)), mode="reflect")
    np.testing.assert_array_equal(pixels, expected)
    labels = whole(MOSAIC_LABELS)[:192, 768:960]
    assert (target[:64, :] == IGNORE_INDEX).all() and (target[:, :64] == IGNORE_INDEX).all()
    np.testing.assert_array_equal(target[64:, 64:], expected_targets(labels.astype(int)))
    # Past the far edges too: rows 448-703 and columns 128-383 of a 256 x 512 source.
    pixels, target = read_with_context(source, Window(128, 448, 256, 256))
    inside = whole(MOSAIC_IMAGE)[:, 448:, 896:].astype(np.float32)
    expected = np.pad(inside, ((0, 0), (0, 192), (0, 128)), mode="reflect")
    np.testing.assert_array_equal(pixels, expected)
    assert (target[64:] == IGNORE_INDEX).all() and (target[:, 128:] == IGNORE_INDEX).all()
    with pytest.raises(ValueError, match="does not overlap"):
        read_with_context(source, Window(300, 0, 16, 16))
