# SPDX-License-Identifier: GPL-2.0-or-later
"""``qgis_glue.image_source``: a QGIS layer's data provider as the core's image source,
classified through the one core road: it equals GDAL's, checks values, honours alpha,
stays on the calling thread; and the choice between the two sources."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal
from qgis.core import QgsCoordinateReferenceSystem, QgsRasterLayer

from qgis_landcover.core.errors import InputError
from qgis_landcover.core.inference.band_mapping import BandInfo
from qgis_landcover.core.inference.classified_output import OutputPaths
from qgis_landcover.core.inference.classify import classify
from qgis_landcover.core.inference.gdal_source import GdalImageSource
from qgis_landcover.core.inference.image_source import Extent
from qgis_landcover.core.inference.model_grid import plan_model_grid
from qgis_landcover.core.inference.pipeline import ClassifyOptions
from qgis_landcover.core.inference.session import clear_session_cache, load_session
from qgis_landcover.core.raster.grid import Grid, Window
from qgis_landcover.core.raster.reading import raster_grid
from qgis_landcover.qgis_glue.image_source import (
    ProviderImageSource,
    ProviderReader,
    image_source,
)
from qgis_landcover.qgis_glue.raster_inputs import RasterInput

from ..algorithms.test_classify import MOSAIC, WEIGHTS, expected_classes, read
from ..onnx_models import contract_for, pointwise_model
from ..rasters import write_with_alpha


@pytest.fixture(autouse=True)
def fresh_sessions() -> None:
    clear_session_cache()


@pytest.fixture
def naip(tmp_path: Path) -> Path:
    target = tmp_path / "naip.tif"
    gdal.Translate(str(target), str(MOSAIC), srcWin=[200, 100, 260, 200])
    return target


@pytest.fixture
def model(tmp_path: Path) -> Path:
    return pointwise_model(
        tmp_path / "model.onnx", WEIGHTS, contract=contract_for(4, input_scale=1 / 255)
    )


def layer(path: Path) -> QgsRasterLayer:
    loaded = QgsRasterLayer(str(path), path.stem)
    assert loaded.isValid()
    return loaded


def test_a_provider_source_offers_the_layers_bands_and_grid(naip: Path) -> None:
    source = ProviderImageSource(layer(naip))
    assert source.data_source == str(naip) and source.thread_safe is False
    assert source.bands() == [
        BandInfo(1, "", "red"),
        BandInfo(2, "", "green"),
        BandInfo(3, "", "blue"),
        BandInfo(4, "", "undefined"),
    ]
    # A provider with a size of its own: the layer's pixel grid, whatever is asked.
    own = raster_grid(gdal.Open(str(naip)))
    grid = source.grid(2.0, Extent((580210.0, 4099750.0, 580250.0, 4099800.0)))
    assert grid.geotransform == own.geotransform and (grid.width, grid.height) == (260, 200)
    layout = plan_model_grid(grid, 1.0)
    reader = source.reader(layout, [4, 1])
    assert isinstance(reader, ProviderReader) and reader.grid == layout.read_grid
    raw, valid = reader.read(Window(10, 20, 30, 40))
    np.testing.assert_array_equal(raw, read(naip)[[3, 0], 20:60, 10:40].astype(np.float32))
    assert valid.all()


def test_the_provider_road_equals_the_gdal_road(tmp_path: Path, naip: Path, model: Path) -> None:
    session = load_session(model, "cpu")
    classify(GdalImageSource(naip), session, OutputPaths(tmp_path / "gdal.tif"))
    source = ProviderImageSource(layer(naip))
    result = classify(source, session, OutputPaths(tmp_path / "provider.tif"))
    assert result.pixels_classified == 260 * 200
    np.testing.assert_array_equal(read(tmp_path / "provider.tif"), read(tmp_path / "gdal.tif"))
    assert raster_grid(gdal.Open(str(tmp_path / "provider.tif"))) == Grid(
        result.grid.crs_wkt, raster_grid(gdal.Open(str(naip))).geotransform, 260, 200
    )
    # An extent: the same pixels on both roads.
    x0, _, _, y0, _, _ = gdal.Open(str(naip)).GetGeoTransform()
    extent = Extent((x0 + 30.5, y0 - 150.0, x0 + 110.0, y0 - 60.2))
    for name, chosen in (("gdal_part.tif", GdalImageSource(naip)), ("provider_part.tif", source)):
        part = classify(chosen, session, OutputPaths(tmp_path / name), extent=extent)
        assert (part.grid.width, part.grid.height) == (80, 90)
    np.testing.assert_array_equal(
        read(tmp_path / "provider_part.tif"), read(tmp_path / "gdal.tif")[60:150, 30:110]
    )
    np.testing.assert_array_equal(
        read(tmp_path / "provider_part.tif"), read(tmp_path / "gdal_part.tif")
    )


def test_the_provider_road_checks_values_and_honours_alpha(
    tmp_path: Path, naip: Path, model: Path
) -> None:
    # The same checks on the provider (block API) road as on GDAL's.
    session = load_session(model, "cpu")
    reflectance = tmp_path / "reflectance.tif"
    gdal.Translate(
        str(reflectance), str(naip), outputType=gdal.GDT_Float32, scaleParams=[[0, 255, 0, 1]]
    )
    source = ProviderImageSource(layer(reflectance))
    with pytest.raises(InputError, match="far too small"):
        classify(source, session, OutputPaths(tmp_path / "refused.tif"))
    assert not (tmp_path / "refused.tif").exists()
    options = ClassifyOptions(input_range=(0.0, 1.0))
    classify(source, session, OutputPaths(tmp_path / "rescaled.tif"), options=options)
    expected, sure = expected_classes(read(naip))
    np.testing.assert_array_equal(read(tmp_path / "rescaled.tif")[sure], expected[sure])
    # Red, green, blue, nir, alpha: transparent pixels are nodata.
    image = read(naip)
    alpha = np.full(image.shape[1:], 255, dtype=np.uint8)
    alpha[50:120, 100:] = 0
    rgbna = write_with_alpha(tmp_path / "rgbna.tif", image, alpha, like=naip)
    result = classify(
        ProviderImageSource(layer(rgbna)), session, OutputPaths(tmp_path / "alpha.tif")
    )
    got = read(tmp_path / "alpha.tif")
    np.testing.assert_array_equal(got == 0, alpha == 0)
    assert result.pixels_classified == int((alpha > 0).sum())
    check = sure & (alpha > 0)
    np.testing.assert_array_equal(got[check], expected[check])


def test_provider_reads_stay_on_the_calling_thread(tmp_path: Path, naip: Path, model: Path) -> None:
    source = ProviderImageSource(layer(naip))
    threads: set[str] = set()
    make_reader = source.reader

    def recording_reader(*args: object) -> ProviderReader:
        reader = make_reader(*args)  # type: ignore[arg-type]
        read_block = reader.read

        def read_window(window: Window) -> tuple[np.ndarray, np.ndarray]:
            threads.add(threading.current_thread().name)
            return read_block(window)

        reader.read = read_window  # type: ignore[method-assign]
        return reader

    source.reader = recording_reader  # type: ignore[method-assign]
    classify(source, model, OutputPaths(tmp_path / "out.tif"))
    assert threads == {threading.current_thread().name}


def test_gdal_files_and_layers_get_gdals_source_others_their_provider(naip: Path) -> None:
    crs = QgsCoordinateReferenceSystem("EPSG:26917")
    as_file = image_source(RasterInput(str(naip), crs), None)
    assert isinstance(as_file, GdalImageSource) and as_file.data_source == str(naip)
    gdal_layer = image_source(RasterInput(str(naip), crs, layer(naip)), None)
    assert isinstance(gdal_layer, GdalImageSource)
    xyz = QgsRasterLayer("type=xyz&url=file:///nowhere/{z}/{x}/{y}.png&zmax=2", "xyz", "wms")
    online = image_source(RasterInput(xyz.source(), crs, xyz), None)
    assert isinstance(online, ProviderImageSource)
    # Online imagery has no grid of its own: without an extent it cannot be classified.
    with pytest.raises(InputError, match="online layer without a size of its own"):
        online.grid(1.0, None)
