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
    QgsProcessingParameterEnum,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
    QgsProcessingUtils,
    QgsProperty,
    QgsRasterLayer,
)

from ..core.errors import InputError, LandcoverError
from ..core.files.inputs import Input, Output, check_outputs, local_file
from ..core.raster.reading import open_raster


@contextmanager
def core_errors() -> Iterator[None]:
    """Re-raise the core's :class:`LandcoverError` as ``QgsProcessingException``.

    The message is kept as it is: core messages are written for the user. A
    ``MemoryError`` the core's bounds did not foresee (they estimate, they cannot know)
    becomes a message too, never a traceback.
    """
    try:
        yield
    except LandcoverError as error:
        raise QgsProcessingException(str(error)) from error
    except MemoryError as error:
        raise QgsProcessingException(
            f"Not enough memory ({error or 'allocation failed'}): free memory, or process a "
            "smaller extent (classify: a smaller BATCH_SIZE or TILE_SIZE)."
        ) from error


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


class NamedEnumParameter(QgsProcessingParameterEnum):
    """An enum parameter whose values are its option names (static strings, stable in
    models and scripts) that also accepts an option's index, as ``qgis_process help``
    lists them (``2: cuda``), and names in any letter case. QGIS's own enum takes either
    names or indices, never both."""

    def __init__(
        self,
        name: str,
        description: str,
        options: list[str],
        defaultValue: Any = None,  # noqa: N803 (QGIS's keyword)
        optional: bool = False,
    ) -> None:
        super().__init__(name, description, options, False, defaultValue, optional)
        self.setUsesStaticStrings(True)

    def option_name(self, value: Any) -> str | None:
        """The option ``value`` names (by name, index or index as text), or ``None``."""
        if isinstance(value, QgsProperty) and value.propertyType() == QgsProperty.StaticProperty:
            value = value.staticValue()
        options = self.options()
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value.strip())
        if isinstance(value, int) and not isinstance(value, bool):
            return options[value] if 0 <= value < len(options) else None
        if isinstance(value, str):
            folded = {option.casefold(): option for option in options}
            return folded.get(value.strip().casefold())
        return None

    def checkValueIsAcceptable(
        self, value: Any, context: QgsProcessingContext | None = None
    ) -> bool:
        name = self.option_name(value)
        return super().checkValueIsAcceptable(value if name is None else name, context)

    def clone(self) -> NamedEnumParameter:
        copy = NamedEnumParameter(
            self.name(), self.description(), self.options(), self.defaultValue()
        )
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

    def checkParameterValues(
        self, parameters: dict[str, Any], context: QgsProcessingContext
    ) -> tuple[bool, str]:
        """QGIS's checks, with a message naming the allowed range for a number out of
        range (QGIS says only "Incorrect parameter value for OVERLAP"), and text that is
        no number refused (QGIS lets it pass as "not set" for optional numbers)."""
        for definition in self.parameterDefinitions():
            if isinstance(definition, QgsProcessingParameterNumber):
                problem = self._number_problem(definition, parameters.get(definition.name()))
                if problem:
                    return False, f"{self.label(definition.name())} {problem}"
        return super().checkParameterValues(parameters, context)

    @staticmethod
    def _number_problem(definition: QgsProcessingParameterNumber, value: Any) -> str:
        """What is wrong with ``value`` for ``definition`` ("" when nothing is, or when
        it is not a plain number or text: QGIS checks those)."""
        if isinstance(value, QgsProperty) and value.propertyType() == QgsProperty.StaticProperty:
            value = value.staticValue()
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            return ""
        if isinstance(value, str) and not value.strip():
            return ""
        try:
            number = float(value)
        except ValueError:
            return f"must be a number; got {value!r}."
        low, high = definition.minimum(), definition.maximum()
        if low <= number <= high:
            return ""
        # QGIS's unset bounds are the extremes of a double.
        bounds = [f"at least {low:g}" if low > -1e300 else ""]
        bounds.append(f"at most {high:g}" if high < 1e300 else "")
        return f"must be {' and '.join(b for b in bounds if b)}; got {number:g}."

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

    def enum_string(
        self, parameters: dict[str, Any], name: str, context: QgsProcessingContext
    ) -> str:
        """The option name of enum parameter ``name``; a :class:`NamedEnumParameter`
        also takes an index (``DEVICE=2``), which ``parameterAsEnumString`` would turn
        into the default without a word."""
        definition = self.parameterDefinition(name)
        if isinstance(definition, NamedEnumParameter):
            option = definition.option_name(parameters.get(name))
            if option is not None:
                return option
        return self.parameterAsEnumString(parameters, name, context)

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
        input reads (:func:`~qgis_landcover.core.files.inputs.check_outputs`).

        Args:
            inputs: (parameter name, data source) pairs.
            outputs: (parameter name, path, is a GeoTIFF with sidecars) triples.
        """
        with core_errors():
            check_outputs(
                [Input(self.label(name), source) for name, source in inputs],
                [Output(self.label(name), path, raster) for name, path, raster in outputs],
            )
