# SPDX-License-Identifier: GPL-2.0-or-later
"""Raster layer parameters: GDAL-readable files are read with GDAL, read-only, never
loaded as QGIS layers; anything else (project layers, WMS / XYZ, ...) is a QGIS layer.

Why: loading a file as a QGIS layer computes statistics for its default style, and GDAL
saves them beside the input (``.aux.xml``) or rewrites the input itself (a VRT).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsProcessing,
    QgsProcessingAlgorithm,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterRasterLayer,
    QgsProcessingUtils,
    QgsProperty,
    QgsRasterLayer,
)

from ..core.errors import InputError
from ..core.files.inputs import local_file
from ..core.raster.reading import open_raster
from .feedback import core_errors
from .parameters import parameter_label, with_settings_of


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
    layer already loaded in the project or ``context``; else ``None`` (see the module's
    docstring for why such files are never loaded as QGIS layers)."""
    if isinstance(value, QgsProperty) and value.propertyType() == QgsProperty.Type.StaticProperty:
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
        return with_settings_of(self, RasterFileParameter(self.name(), self.description()))


def raster_input(
    algorithm: QgsProcessingAlgorithm,
    parameters: dict[str, Any],
    name: str,
    context: QgsProcessingContext,
) -> RasterInput:
    """The raster of ``algorithm``'s parameter ``name``: a GDAL-readable file is opened
    read-only with GDAL, anything else is loaded as a QGIS layer."""
    value = gdal_file_value(parameters.get(name), context)
    if value is not None:
        with core_errors():
            crs_wkt = open_raster(value).GetProjection()
        crs = QgsCoordinateReferenceSystem.fromWkt(crs_wkt) if crs_wkt else None
        return RasterInput(value, crs or QgsCoordinateReferenceSystem())
    layer = algorithm.parameterAsRasterLayer(parameters, name, context)
    if layer is None:
        raise QgsProcessingException(algorithm.invalidRasterError(parameters, name))
    return RasterInput(layer.source(), layer.crs(), layer)


def gdal_raster_input(
    algorithm: QgsProcessingAlgorithm,
    parameters: dict[str, Any],
    name: str,
    context: QgsProcessingContext,
) -> RasterInput:
    """:func:`raster_input` for algorithms that read the raster with GDAL only: a layer
    of another provider (WMS, ...) is refused."""
    raster = raster_input(algorithm, parameters, name, context)
    if raster.layer is not None and raster.provider != "gdal":
        raise QgsProcessingException(
            f"{raster.layer.name()} is not a file-based raster (provider {raster.provider}); "
            "save it as a GeoTIFF first."
        )
    return raster


class RasterFilesParameter(QgsProcessingParameterMultipleLayers):
    """A multiple raster layers parameter that checks GDAL-readable files with GDAL,
    read-only, instead of loading each as a QGIS layer (:class:`RasterFileParameter`'s
    reason, times the number of inputs)."""

    def __init__(self, name: str, description: str, optional: bool = False) -> None:
        super().__init__(name, description, QgsProcessing.SourceType.TypeRaster, None, optional)

    def checkValueIsAcceptable(
        self, value: Any, context: QgsProcessingContext | None = None
    ) -> bool:
        values = list(value) if isinstance(value, list | tuple) else [value]
        if (
            context is not None
            and values
            and all(gdal_file_value(item, context) is not None for item in values)
        ):
            return True
        return super().checkValueIsAcceptable(value, context)

    def clone(self) -> RasterFilesParameter:
        return with_settings_of(self, RasterFilesParameter(self.name(), self.description()))


def gdal_raster_sources(
    algorithm: QgsProcessingAlgorithm,
    parameters: dict[str, Any],
    name: str,
    context: QgsProcessingContext,
) -> list[str]:
    """The GDAL data sources of multiple raster layers parameter ``name`` (files as
    given, never loaded as QGIS layers; project layers by their source), ``[]`` when
    not set. A layer of another provider (WMS, ...) is refused: GDAL must read each."""
    value = parameters.get(name)
    if value is None or value == "":
        return []
    values = list(value) if isinstance(value, list | tuple) else [value]
    sources = []
    for item in values:
        path = gdal_file_value(item, context)
        if path is not None:
            sources.append(path)
            continue
        layer = item if isinstance(item, QgsRasterLayer) else None
        if layer is None and isinstance(item, str):
            found = QgsProcessingUtils.mapLayerFromString(
                item, context, True, QgsProcessingUtils.LayerHint.Raster
            )
            layer = found if isinstance(found, QgsRasterLayer) else None
        if layer is None or not layer.isValid():
            raise QgsProcessingException(
                f"{parameter_label(algorithm, name)}: {item!s} is not a raster GDAL can read."
            )
        if layer.providerType() != "gdal":
            raise QgsProcessingException(
                f"{layer.name()} is not a file-based raster (provider {layer.providerType()}); "
                "save it as a GeoTIFF first."
            )
        sources.append(layer.source())
    return sources
