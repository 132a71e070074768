# SPDX-License-Identifier: GPL-2.0-or-later
"""The parameters of the algorithms that run a model (``landcover:classify``,
``classify_tiles``, ``suggest_points``, ``adapt_model``), declared and read one way: the
imagery ``INPUT`` and its ``EXTENT``, ``MODEL``, ``DEVICE`` and ``PRECISION``. Each
algorithm passes the help text that says what the parameter means for it; names, labels,
defaults and the way a model value is resolved (:func:`model_settings`) are the same
everywhere."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from qgis.core import (
    QgsProcessingAlgorithm,
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProcessingParameterFile,
)

from ..core.inference.image_source import Extent
from ..core.inference.session import CPU, DEVICES, available_providers, provider_candidates
from ..core.models.resolve import PRECISION_CHOICES
from .feedback import core_errors
from .model_resolution import resolve_model_in_qgis
from .parameters import NamedEnumParameter, Parameters, enum_string, extent_bounds, with_help
from .raster_inputs import RasterFileParameter, RasterInput

INPUT = "INPUT"
EXTENT = "EXTENT"
MODEL = "MODEL"
DEVICE = "DEVICE"
PRECISION = "PRECISION"


def add_imagery_input(algorithm: QgsProcessingAlgorithm, help_text: str, name: str = INPUT) -> None:
    """Declare the imagery the model reads ("Input imagery"; read with
    :func:`~qgis_landcover.qgis_glue.raster_inputs.raster_input`)."""
    algorithm.addParameter(with_help(RasterFileParameter(name, "Input imagery"), help_text))


def add_model_parameter(
    algorithm: QgsProcessingAlgorithm, help_text: str, name: str = MODEL
) -> None:
    """Declare the optional ``MODEL`` (a file, a catalogue name or a URL; empty: the
    shipped model), read with :func:`model_settings`."""
    model = QgsProcessingParameterFile(name, "Model", optional=True)
    # No file filter (not even the default "All files (*.*)"): with one, QGIS refuses
    # values without an extension, i.e. the catalogue names this parameter accepts.
    model.setFileFilter("")
    algorithm.addParameter(with_help(model, help_text))


def device_parameter(help_text: str, name: str = DEVICE) -> NamedEnumParameter:
    """The ``DEVICE`` parameter (auto, cpu, cuda, tensorrt; default auto), for the
    algorithm to declare (plain or advanced)."""
    return with_help(
        NamedEnumParameter(name, "Device", options=list(DEVICES), defaultValue="auto"), help_text
    )


def precision_parameter(help_text: str, name: str = PRECISION) -> NamedEnumParameter:
    """The ``PRECISION`` parameter (auto, fp32, fp16, int8; default auto): which variant
    of a catalogue model runs."""
    return with_help(
        NamedEnumParameter(name, "Precision", options=list(PRECISION_CHOICES), defaultValue="auto"),
        help_text,
    )


def imagery_extent(
    algorithm: QgsProcessingAlgorithm,
    parameters: Parameters,
    context: QgsProcessingContext,
    imagery: RasterInput,
) -> Extent | None:
    """``EXTENT`` as the core's extent in the imagery layer's CRS (QGIS reprojects the
    extent to it), ``None`` when not set: the whole layer."""
    bounds = extent_bounds(algorithm, parameters, EXTENT, context, imagery.crs)
    return Extent(bounds) if bounds is not None else None


@dataclass(frozen=True)
class ModelSettings:
    """The model an algorithm runs and where.

    Attributes:
        model: the verified local model file (a catalogue variant already chosen).
        device: the ``DEVICE`` option name; ``auto`` for algorithms without one.
    """

    model: Path
    device: str

    def inputs(self, imagery: RasterInput) -> list[tuple[str, str]]:
        """What the model run reads, as ``check_no_overwrite`` takes it: the imagery
        (``INPUT``) and the model file (``MODEL``)."""
        return [(INPUT, imagery.source), (MODEL, str(self.model))]


def model_settings(
    algorithm: QgsProcessingAlgorithm,
    parameters: Parameters,
    context: QgsProcessingContext,
    feedback: QgsProcessingFeedback,
    *,
    choose_variant: bool = True,
) -> ModelSettings:
    """Read ``MODEL``, ``DEVICE`` and ``PRECISION`` (those the algorithm declares) and
    resolve the model with QGIS's settings
    (:func:`~qgis_landcover.qgis_glue.model_resolution.resolve_model_in_qgis`).

    Args:
        choose_variant: choose among a catalogue model's variants for the device that
            will run it (``PRECISION``, ``auto`` without that parameter: fp16 on a GPU,
            int8 on a CPU with int8 dot products); ``False`` resolves the model as named
            (the fp32 file, e.g. to adapt it).

    Raises ``QgsProcessingException`` (the core's errors, with their messages).
    """
    device = "auto"
    if algorithm.parameterDefinition(DEVICE) is not None:
        device = enum_string(algorithm, parameters, DEVICE, context) or "auto"
    precision = None
    if choose_variant and algorithm.parameterDefinition(PRECISION) is not None:
        precision = enum_string(algorithm, parameters, PRECISION, context) or "auto"
    elif choose_variant:
        precision = "auto"
    with core_errors():
        on_gpu = choose_variant and provider_candidates(device, available_providers())[0][0] != CPU
        model = resolve_model_in_qgis(
            algorithm.parameterAsString(parameters, MODEL, context),
            feedback,
            precision=precision,
            on_gpu=on_gpu,
        )
    return ModelSettings(model, device)
