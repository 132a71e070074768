# SPDX-License-Identifier: GPL-2.0-or-later
"""``qgis_glue.model_parameters`` and the declaration helpers of ``qgis_glue.parameters``:
what ``model_settings`` asks the model resolution for (the device and variant read from
the parameters an algorithm declares), and what the helpers declare."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsProcessingAlgorithm,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterNumber,
)

from qgis_landcover.qgis_glue import model_parameters
from qgis_landcover.qgis_glue.model_parameters import (
    ModelSettings,
    add_model_parameter,
    device_parameter,
    imagery_extent,
    model_settings,
    precision_parameter,
)
from qgis_landcover.qgis_glue.parameters import (
    EXTENT_POLICY_HELP,
    add_advanced,
    extent_parameter,
    feature_source,
    number_parameter,
)
from qgis_landcover.qgis_glue.raster_inputs import RasterInput


class ModelAlgorithm(QgsProcessingAlgorithm):
    """MODEL, and DEVICE / PRECISION when asked for, declared with the helpers."""

    def __init__(self, device: bool = True, precision: bool = True) -> None:
        super().__init__()
        self.device, self.precision = device, precision

    def name(self) -> str:
        return "model_parameters"

    def displayName(self) -> str:
        return "Model parameters"

    def createInstance(self) -> QgsProcessingAlgorithm:
        return ModelAlgorithm(self.device, self.precision)

    def initAlgorithm(self, configuration: dict[str, Any] | None = None) -> None:
        add_model_parameter(self, "The model.")
        if self.device:
            self.addParameter(device_parameter("The device."))
        if self.precision:
            add_advanced(self, [precision_parameter("The variant.")])
        self.addParameter(QgsProcessingParameterFeatureSource("POINTS", "Points", optional=True))
        self.addParameter(extent_parameter("Optional."))

    def processAlgorithm(self, parameters: Any, context: Any, feedback: Any) -> dict[str, Any]:
        return {}


@pytest.fixture
def resolved(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The calls ``model_settings`` makes to the model resolution (nothing is resolved)."""
    calls: list[dict[str, Any]] = []

    def resolve(spec: str, feedback: Any, **options: Any) -> Path:
        calls.append({"spec": spec, **options})
        return Path("/models") / (spec or "default.onnx")

    monkeypatch.setattr(model_parameters, "resolve_model_in_qgis", resolve)
    return calls


def settings_of(algorithm: ModelAlgorithm, parameters: dict[str, Any], **kwargs: Any) -> Any:
    algorithm.initAlgorithm()
    return model_settings(
        algorithm, parameters, QgsProcessingContext(), QgsProcessingFeedback(), **kwargs
    )


def test_device_and_precision_are_read_by_name_or_index(resolved: list[dict[str, Any]]) -> None:
    settings = settings_of(
        ModelAlgorithm(), {"MODEL": "azure-2018-unet", "DEVICE": 1, "PRECISION": "INT8"}
    )
    assert settings.device == "cpu"  # option 1 of auto, cpu, cuda, tensorrt
    assert settings.model == Path("/models/azure-2018-unet")
    assert resolved == [{"spec": "azure-2018-unet", "precision": "int8", "on_gpu": False}]


def test_defaults_choose_the_variant_automatically(resolved: list[dict[str, Any]]) -> None:
    settings = settings_of(ModelAlgorithm(), {})
    assert settings.device == "auto"
    assert resolved[0]["spec"] == "" and resolved[0]["precision"] == "auto"


def test_without_precision_parameter_the_variant_is_automatic(
    resolved: list[dict[str, Any]],
) -> None:
    settings_of(ModelAlgorithm(precision=False), {"DEVICE": "cpu"})
    assert resolved == [{"spec": "", "precision": "auto", "on_gpu": False}]


def test_model_as_named_without_device(resolved: list[dict[str, Any]]) -> None:
    """``adapt_model``: no DEVICE, no variant chosen (int8 variants cannot be adapted)."""
    settings = settings_of(
        ModelAlgorithm(device=False, precision=False), {"MODEL": "a.onnx"}, choose_variant=False
    )
    assert settings.device == "auto"
    assert resolved == [{"spec": "a.onnx", "precision": None, "on_gpu": False}]


def test_declarations() -> None:
    algorithm = ModelAlgorithm()
    algorithm.initAlgorithm()
    model = algorithm.parameterDefinition("MODEL")
    # No file filter: catalogue names (no extension) must be accepted.
    assert (
        model.fileFilter() == ""
        and model.flags() & QgsProcessingParameterDefinition.Flag.FlagOptional
    )
    assert algorithm.parameterDefinition("DEVICE").options() == ["auto", "cpu", "cuda", "tensorrt"]
    precision = algorithm.parameterDefinition("PRECISION")
    assert precision.defaultValue() == "auto"
    assert precision.flags() & QgsProcessingParameterDefinition.Flag.FlagAdvanced

    extent = extent_parameter("Optional.", label="Area")
    assert (extent.description(), extent.help()) == ("Area", f"Optional. {EXTENT_POLICY_HELP}")

    count = number_parameter("COUNT", "Count", "How many.", integer=True, default=5, minimum=1)
    assert count.dataType() == QgsProcessingParameterNumber.Type.Integer
    assert (count.defaultValue(), count.minimum(), count.help()) == (5, 1, "How many.")
    # Bounds not given stay QGIS's own: none.
    assert count.maximum() == QgsProcessingParameterNumber("X", "X").maximum()
    distance = number_parameter("D", "D", "Metres.", integer=False, optional=True)
    assert distance.dataType() == QgsProcessingParameterNumber.Type.Double
    assert distance.flags() & QgsProcessingParameterDefinition.Flag.FlagOptional


def test_feature_source_that_cannot_be_read_is_refused() -> None:
    algorithm = ModelAlgorithm()
    algorithm.initAlgorithm()
    with pytest.raises(QgsProcessingException, match="POINTS"):
        feature_source(
            algorithm, {"POINTS": "/no/such/file.gpkg"}, "POINTS", QgsProcessingContext()
        )


def test_imagery_extent_is_in_the_layer_crs_and_inputs_name_imagery_and_model() -> None:
    algorithm = ModelAlgorithm()
    algorithm.initAlgorithm()
    imagery = RasterInput("/data/image.tif", QgsCoordinateReferenceSystem("EPSG:3857"))
    context = QgsProcessingContext()
    assert imagery_extent(algorithm, {}, context, imagery) is None  # the whole layer
    # 1 degree east of Greenwich at the equator: 111319.49 m in web Mercator.
    extent = imagery_extent(algorithm, {"EXTENT": "0,1,0,1 [EPSG:4326]"}, context, imagery)
    assert extent is not None and extent.crs_wkt == ""  # the source's own CRS
    assert extent.bounds[0] == pytest.approx(0.0, abs=1e-6)
    assert extent.bounds[2] == pytest.approx(111319.49, abs=0.01)
    settings = ModelSettings(Path("/models/unet.onnx"), "cpu")
    assert settings.inputs(imagery) == [
        ("INPUT", "/data/image.tif"),
        ("MODEL", "/models/unet.onnx"),
    ]
