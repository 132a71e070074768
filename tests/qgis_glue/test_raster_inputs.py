# SPDX-License-Identifier: GPL-2.0-or-later
"""``qgis_glue.raster_inputs``: files GDAL reads stay files (read with GDAL, never
loaded as QGIS layers); anything else is a QGIS layer."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from qgis.core import (
    QgsProcessingAlgorithm,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingParameterDefinition,
    QgsProject,
    QgsProperty,
    QgsRasterLayer,
)

from qgis_landcover.qgis_glue.raster_inputs import (
    RasterFileParameter,
    gdal_file_value,
    gdal_raster_input,
    raster_input,
)

from ..conftest import DATA

LABELS = DATA / "chesapeake_lowres_tile" / "m_3907833_nw_17_1_lc.tif"  # EPSG:26917


class RasterAlgorithm(QgsProcessingAlgorithm):
    def name(self) -> str:
        return "raster"

    def displayName(self) -> str:
        return "Raster"

    def createInstance(self) -> QgsProcessingAlgorithm:
        return RasterAlgorithm()

    def initAlgorithm(self, configuration: dict[str, Any] | None = None) -> None:
        self.addParameter(RasterFileParameter("INPUT", "Input raster"))

    def processAlgorithm(self, parameters: Any, context: Any, feedback: Any) -> dict[str, Any]:
        return {}


@pytest.fixture
def algorithm() -> RasterAlgorithm:
    algorithm = RasterAlgorithm()
    algorithm.initAlgorithm()
    return algorithm


@pytest.fixture
def raster(tmp_path: Path) -> Path:
    return Path(shutil.copy(LABELS, tmp_path / "labels.tif"))


def test_a_gdal_file_is_read_as_a_file(
    algorithm: RasterAlgorithm, raster: Path, tmp_path: Path
) -> None:
    context = QgsProcessingContext()
    for value in (str(raster), QgsProperty.fromValue(str(raster))):
        assert gdal_file_value(value, context) == str(raster)
    result = raster_input(algorithm, {"INPUT": str(raster)}, "INPUT", context)
    assert (result.source, result.layer, result.provider) == (str(raster), None, "gdal")
    assert result.crs.authid() == "EPSG:26917"
    assert gdal_raster_input(algorithm, {"INPUT": str(raster)}, "INPUT", context) == result


def test_values_that_are_no_gdal_file(raster: Path, tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("not a raster")
    context = QgsProcessingContext()
    for value in (str(text), str(tmp_path / "missing.tif"), "", "  ", None, 3):
        assert gdal_file_value(value, context) is None


def test_a_file_loaded_in_the_project_is_that_layer(
    algorithm: RasterAlgorithm, raster: Path
) -> None:
    """A project layer keeps what the user set on it (e.g. its CRS): it is used as is."""
    project = QgsProject()
    layer = QgsRasterLayer(str(raster), "labels")
    assert layer.isValid()
    project.addMapLayer(layer)
    context = QgsProcessingContext()
    context.setProject(project)
    assert gdal_file_value(str(raster), context) is None
    result = raster_input(algorithm, {"INPUT": "labels"}, "INPUT", context)
    assert result.layer is not None and result.layer.id() == layer.id()
    assert (result.source, result.provider) == (str(raster), "gdal")


def test_a_layer_of_another_provider(algorithm: RasterAlgorithm, tmp_path: Path) -> None:
    uri = f"type=xyz&url=file://{tmp_path}/{{z}}/{{x}}/{{y}}.png&zmin=0&zmax=10"
    layer = QgsRasterLayer(uri, "tiles", "wms")
    assert layer.isValid()
    context = QgsProcessingContext()
    result = raster_input(algorithm, {"INPUT": layer}, "INPUT", context)
    assert result.layer is layer and result.provider == "wms"
    with pytest.raises(
        QgsProcessingException,
        match=r"^tiles is not a file-based raster \(provider wms\); save it as a GeoTIFF first\.$",
    ):
        gdal_raster_input(algorithm, {"INPUT": layer}, "INPUT", context)


def test_a_value_that_is_no_raster_is_refused(algorithm: RasterAlgorithm, tmp_path: Path) -> None:
    with pytest.raises(QgsProcessingException, match="INPUT"):
        raster_input(
            algorithm, {"INPUT": str(tmp_path / "missing.tif")}, "INPUT", QgsProcessingContext()
        )


def test_the_parameter_accepts_gdal_files_and_clones_whole(
    algorithm: RasterAlgorithm, raster: Path, tmp_path: Path
) -> None:
    context = QgsProcessingContext()
    parameter = algorithm.parameterDefinition("INPUT")
    parameter.setHelp("The raster.")
    parameter.setFlags(parameter.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
    copy = parameter.clone()
    assert isinstance(copy, RasterFileParameter)
    assert (copy.name(), copy.description(), copy.help()) == (
        "INPUT",
        "Input raster",
        "The raster.",
    )
    assert copy.flags() & QgsProcessingParameterDefinition.FlagAdvanced
    text = tmp_path / "notes.txt"
    text.write_text("not a raster")
    for definition in (parameter, copy):
        assert definition.checkValueIsAcceptable(str(raster), context)
        assert not definition.checkValueIsAcceptable(str(text), context)
