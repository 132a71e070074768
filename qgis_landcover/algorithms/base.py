# SPDX-License-Identifier: GPL-2.0-or-later
"""What every ``landcover`` algorithm shares: grouping, instance creation, the bridge
from QGIS feedback to the core's :class:`~qgis_landcover.core.progress.Progress`, raster
inputs read without QGIS loading them, and the check that no output overwrites an input.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsProcessingAlgorithm,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingParameterRasterLayer,
    QgsProcessingUtils,
    QgsProperty,
    QgsRasterLayer,
)

from ..core.errors import InputError, LandcoverError
from ..core.input_files import Input, Output, check_outputs, local_file
from ..core.raster_io import open_raster


@contextmanager
def core_errors() -> Iterator[None]:
    """Re-raise the core's :class:`LandcoverError` as ``QgsProcessingException``.

    The message is kept as it is: core messages are written for the user.
    """
    try:
        yield
    except LandcoverError as error:
        raise QgsProcessingException(str(error)) from error


class FeedbackProgress:
    """Adapts ``QgsProcessingFeedback`` to the core's ``Progress`` protocol."""

    def __init__(self, feedback: QgsProcessingFeedback | None) -> None:
        self.feedback = feedback if feedback is not None else QgsProcessingFeedback()

    def set_progress(self, percent: float) -> None:
        self.feedback.setProgress(percent)

    def is_cancelled(self) -> bool:
        return self.feedback.isCanceled()

    def info(self, message: str) -> None:
        self.feedback.pushInfo(message)

    def warning(self, message: str) -> None:
        self.feedback.pushWarning(message)


@dataclass(frozen=True)
class RasterInput:
    """A raster layer parameter's value.

    Attributes:
        source: the data source GDAL reads (a path or GDAL connection string) or, for
            layers of other providers, the layer's source URI.
        crs: the raster's CRS.
        layer: the QGIS layer when the value named one already loaded (a project layer,
            a layer object) or one GDAL cannot read; ``None`` for GDAL-readable files,
            which the algorithms read with GDAL without loading them as QGIS layers.
    """

    source: str
    crs: QgsCoordinateReferenceSystem
    layer: QgsRasterLayer | None = None

    @property
    def provider(self) -> str:
        """The QGIS data provider: ``gdal`` for files GDAL reads."""
        return self.layer.providerType() if self.layer is not None else "gdal"


def gdal_file_value(value: Any, context: QgsProcessingContext) -> str | None:
    """``value`` when it names a local file GDAL reads as a raster and that is not a
    layer already loaded in the project or ``context``; else ``None``.

    Why: loading a file as a QGIS layer computes statistics for its default style, and
    GDAL saves them beside the input (``.aux.xml``) or rewrites the input itself (a
    VRT). The algorithms read such files with GDAL, read-only, and never load them.
    """
    if isinstance(value, QgsProperty) and value.propertyType() == QgsProperty.StaticProperty:
        value = value.staticValue()
    if not isinstance(value, str) or not value.strip():
        return None
    loaded = QgsProcessingUtils.mapLayerFromString(
        value, context, False, QgsProcessingUtils.LayerHint.Raster
    )
    path = local_file(value)
    if loaded is not None or path is None or not path.is_file():
        return None
    try:
        open_raster(value)
    except InputError:
        return None  # QGIS reports what is wrong with it
    return value


class RasterFileParameter(QgsProcessingParameterRasterLayer):
    """A raster layer parameter that checks GDAL-readable files with GDAL, read-only,
    instead of loading them as QGIS layers (see :func:`gdal_file_value`): QGIS checks
    values (``qgis_process`` before the algorithm runs) by loading them."""

    def checkValueIsAcceptable(
        self, value: Any, context: QgsProcessingContext | None = None
    ) -> bool:
        if context is not None and gdal_file_value(value, context) is not None:
            return True
        return super().checkValueIsAcceptable(value, context)

    def clone(self) -> RasterFileParameter:
        copy = RasterFileParameter(self.name(), self.description(), self.defaultValue())
        copy.setFlags(self.flags())
        copy.setHelp(self.help())
        copy.setMetadata(self.metadata())
        return copy


class LandcoverAlgorithm(QgsProcessingAlgorithm):
    """Base class: subclasses set ``NAME``, ``DISPLAY_NAME``, ``GROUP``, ``GROUP_ID``
    and implement ``initAlgorithm``, ``processAlgorithm`` and ``shortHelpString``."""

    NAME = ""
    DISPLAY_NAME = ""
    GROUP = ""
    GROUP_ID = ""

    def name(self) -> str:
        return self.NAME

    def displayName(self) -> str:
        return self.DISPLAY_NAME

    def group(self) -> str:
        return self.GROUP

    def groupId(self) -> str:
        return self.GROUP_ID

    def createInstance(self) -> QgsProcessingAlgorithm:
        return type(self)()

    def validateInputCrs(self, parameters: dict[str, Any], context: QgsProcessingContext) -> bool:
        """Always true: every algorithm here reprojects inputs in other CRSs (and
        QGIS's check would load raster files as layers, see :func:`gdal_file_value`)."""
        return True

    def raster_input(
        self, parameters: dict[str, Any], name: str, context: QgsProcessingContext
    ) -> RasterInput:
        """The raster of parameter ``name``: a GDAL-readable file is opened read-only
        with GDAL, anything else is loaded as a QGIS layer."""
        value = gdal_file_value(parameters.get(name), context)
        if value is not None:
            with core_errors():
                crs_wkt = open_raster(value).GetProjection()
            crs = QgsCoordinateReferenceSystem.fromWkt(crs_wkt) if crs_wkt else None
            return RasterInput(value, crs or QgsCoordinateReferenceSystem())
        layer = self.parameterAsRasterLayer(parameters, name, context)
        if layer is None:
            raise QgsProcessingException(self.invalidRasterError(parameters, name))
        return RasterInput(layer.source(), layer.crs(), layer)

    def label(self, name: str) -> str:
        """How messages name parameter ``name``: its description and its name."""
        definition = self.parameterDefinition(name)
        return f'{name} "{definition.description()}"' if definition is not None else name

    def check_outputs(
        self,
        inputs: Iterable[tuple[str, str | None]],
        outputs: Iterable[tuple[str, str | None, bool]],
    ) -> None:
        """Raise ``QgsProcessingException`` when an output would overwrite a file an
        input reads (:func:`~qgis_landcover.core.input_files.check_outputs`).

        Args:
            inputs: (parameter name, data source) pairs.
            outputs: (parameter name, path, is a GeoTIFF with sidecars) triples.
        """
        with core_errors():
            check_outputs(
                [Input(self.label(name), source) for name, source in inputs],
                [Output(self.label(name), path, raster) for name, path, raster in outputs],
            )
