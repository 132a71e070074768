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
        dataset = raster_io.create_geotiff(
            temporary, grid, 1, gdal.GDT_Byte, nodata=0, colors={1: (0, 128, 0)}, names={1: "tree"}
        )
        dataset.GetRasterBand(1).WriteArray(np.ones((grid.height, grid.width), np.uint8))
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


PHOTOMETRIC_ERROR = "Cannot modify tag PhotometricInterpretation while writing"


@pytest.fixture
def palette_only_before_pixels(monkeypatch: pytest.MonkeyPatch) -> None:
    """GDAL >= 3.10's GTiff rule, on any GDAL: once a pixel of a file is written, its
    bands' colour table and colour interpretation can no longer change (GDAL 3.10
    raises ``PHOTOMETRIC_ERROR``; GDAL 3.6 still allows it)."""
    written: set[str] = set()

    def file_of(band: gdal.Band) -> str:
        return band.GetDataset().GetDescription()

    def wrap_write(name: str) -> None:
        original = getattr(gdal.Band, name)

        def write(self: gdal.Band, *args: object, **kwargs: object) -> object:
            written.add(file_of(self))
            return original(self, *args, **kwargs)

        monkeypatch.setattr(gdal.Band, name, write)

    def wrap_palette(name: str) -> None:
        original = getattr(gdal.Band, name)

        def set_palette(self: gdal.Band, *args: object, **kwargs: object) -> object:
            if file_of(self) in written:
                raise RuntimeError(PHOTOMETRIC_ERROR)
            return original(self, *args, **kwargs)

        monkeypatch.setattr(gdal.Band, name, set_palette)

    for name in ("WriteArray", "WriteRaster"):
        wrap_write(name)
    for name in (
        "SetRasterColorTable",
        "SetColorTable",
        "SetRasterColorInterpretation",
        "SetColorInterpretation",
    ):
        wrap_palette(name)


def test_the_gdal_310_palette_rule_is_emulated(
    tmp_path: Path, palette_only_before_pixels: None
) -> None:
    grid = raster_io.raster_grid(raster_io.open_raster(LABELS))
    dataset = raster_io.create_geotiff(tmp_path / "late.tif", grid, 1, gdal.GDT_Byte)
    band = dataset.GetRasterBand(1)
    band.WriteArray(np.ones((grid.height, grid.width), np.uint8))
    with pytest.raises(RuntimeError, match=PHOTOMETRIC_ERROR):
        raster_io.set_category_table(band, {1: (0, 128, 0)}, {1: "tree"})


def test_disagreement_raster_gets_its_palette_before_its_pixels(
    tmp_path: Path, palette_only_before_pixels: None
) -> None:
    from qgis_landcover.core.agreement import AGREE, DISAGREE, IGNORED, assess_agreement

    labels = raster_io.open_raster(LABELS).ReadAsArray()
    shifted = tmp_path / "shifted.tif"
    dataset = raster_io.create_geotiff(
        shifted, raster_io.raster_grid(raster_io.open_raster(LABELS)), 1, gdal.GDT_Byte
    )
    dataset.GetRasterBand(1).WriteArray(np.roll(labels, 1, axis=1))
    dataset = None
    disagreement = tmp_path / "disagreement.tif"
    assess_agreement(shifted, LABELS, disagreement_path=disagreement)
    written = gdal.Open(str(disagreement))
    band = written.GetRasterBand(1)
    table = band.GetColorTable()
    # DISAGREEMENT_COLORS: ignored #bdbdbd, agree #1a9641, disagree #d7191c.
    assert table.GetColorEntry(IGNORED)[:3] == (0xBD, 0xBD, 0xBD)
    assert table.GetColorEntry(AGREE)[:3] == (0x1A, 0x96, 0x41)
    assert table.GetColorEntry(DISAGREE)[:3] == (0xD7, 0x19, 0x1C)
    assert band.GetCategoryNames()[AGREE] == "agree"
    # Oracle: a pixel agrees when it equals its left neighbour (the raster was rolled).
    values = band.ReadAsArray()
    expected = np.where(np.roll(labels, 1, axis=1) == labels, AGREE, DISAGREE)
    np.testing.assert_array_equal(values[:, 1:], expected[:, 1:])


def test_classified_output_gets_its_palette_before_its_pixels(
    tmp_path: Path, palette_only_before_pixels: None
) -> None:
    from qgis_landcover.core.classified_output import OutputPaths, OutputWriter, class_palette

    from ..onnx_models import contract_for

    grid = raster_io.raster_grid(raster_io.open_raster(LABELS))
    contract = contract_for(3)
    paths = OutputPaths(tmp_path / "classes.tif", None, None)
    writer = OutputWriter(paths, grid, contract, overviews=False)
    scores = np.zeros((3, grid.height, grid.width), np.float32)
    scores[1] = 1.0  # the second class wins everywhere
    writer.write(0, 0, scores, np.ones((grid.height, grid.width), bool))
    writer.finish()
    written = gdal.Open(str(paths.classes))  # kept alive: a band must not outlive it
    band = written.GetRasterBand(1)
    colors, names = class_palette(contract)
    value = contract.class_values[contract.class_channels[1]]
    assert band.GetColorTable().GetColorEntry(value)[:3] == colors[value]
    assert band.GetCategoryNames()[value] == names[value]
    assert set(np.unique(band.ReadAsArray()).tolist()) == {value}


def test_atomic_output_refuses_missing_folder(tmp_path: Path) -> None:
    with (
        pytest.raises(InputError, match="does not exist"),
        raster_io.atomic_output(tmp_path / "nowhere" / "out.tif"),
    ):
        pass


def test_output_paths_say_what_is_wrong_with_them(tmp_path: Path) -> None:
    """Each reason a file cannot be written has its own message (a file in the middle
    of the path was reported as a missing folder; /proc as a raw FileNotFoundError)."""
    a_file = tmp_path / "hostname"
    a_file.write_text("not a folder")
    for destination in (a_file / "x.tif", a_file / "a" / "b" / "x.tif"):
        with pytest.raises(InputError, match=rf"{a_file} is a file, not a folder"):
            raster_io.check_output_path(destination)
        with (
            pytest.raises(InputError, match="is a file, not a folder"),
            raster_io.atomic_output(destination),
        ):
            pass
    with pytest.raises(InputError, match="output folder does not exist"):
        raster_io.check_output_path(tmp_path / "nowhere" / "x.tif")
    with pytest.raises(InputError, match="is a folder: give a file name"):
        raster_io.check_output_path(tmp_path)
    assert raster_io.check_output_path(tmp_path / "x.tif") == tmp_path
    assert list(tmp_path.iterdir()) == [a_file]  # the probe file is gone


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
def test_a_folder_that_refuses_files_is_a_clear_error() -> None:
    # /proc accepts no new files, whatever the permissions (root included).
    with pytest.raises(InputError, match="Cannot create files in the output folder /proc"):
        raster_io.check_output_path("/proc/x.tif")
    with (
        pytest.raises(InputError, match="Cannot create files in the output folder /proc"),
        raster_io.atomic_output("/proc/x.tif"),
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
