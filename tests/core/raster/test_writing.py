# SPDX-License-Identifier: GPL-2.0-or-later
""":mod:`qgis_landcover.core.raster.writing`: GeoTIFFs with their palette written before
any pixel (GDAL 3.10's rule), and QGIS styles."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal

from qgis_landcover.core.raster.reading import open_raster, raster_grid
from qgis_landcover.core.raster.writing import (
    create_geotiff,
    set_category_table,
    write_qml_paletted,
)

from ...conftest import DATA

LABELS = DATA / "chesapeake_1m_patches" / "m_3708020_sw_17_1_2014_mosaic_labels.tif"


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
    grid = raster_grid(open_raster(LABELS))
    dataset = create_geotiff(tmp_path / "late.tif", grid, 1, gdal.GDT_Byte)
    band = dataset.GetRasterBand(1)
    band.WriteArray(np.ones((grid.height, grid.width), np.uint8))
    with pytest.raises(RuntimeError, match=PHOTOMETRIC_ERROR):
        set_category_table(band, {1: (0, 128, 0)}, {1: "tree"})


def test_disagreement_raster_gets_its_palette_before_its_pixels(
    tmp_path: Path, palette_only_before_pixels: None
) -> None:
    from qgis_landcover.core.accuracy.agreement import AGREE, DISAGREE, IGNORED, assess_agreement

    labels = open_raster(LABELS).ReadAsArray()
    shifted = tmp_path / "shifted.tif"
    dataset = create_geotiff(shifted, raster_grid(open_raster(LABELS)), 1, gdal.GDT_Byte)
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
    from qgis_landcover.core.inference.classified_output import (
        OutputPaths,
        OutputWriter,
        class_palette,
    )

    from ...onnx_models import contract_for

    grid = raster_grid(open_raster(LABELS))
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


def test_qml_style_lists_every_class(tmp_path: Path) -> None:
    path = write_qml_paletted(
        tmp_path / "style.qml", {1: (31, 120, 180), 2: (51, 160, 44)}, {1: "water", 2: "tree"}
    )
    text = path.read_text()
    assert 'value="1" color="#1f78b4"' in text and 'label="tree"' in text
