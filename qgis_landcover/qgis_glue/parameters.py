# SPDX-License-Identifier: GPL-2.0-or-later
"""Parameter values read into what the core takes: extents as bounds, optional outputs
and bands as ``None`` when skipped (however QGIS says "skipped": :func:`is_unset`), the
results of outputs actually written, enum options by name or index, band lists, number
bounds in messages, and the check that no output overwrites an input."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, TypeVar

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsExpressionContext,
    QgsProcessingAlgorithm,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeatureSource,
    QgsProcessingOutputFile,
    QgsProcessingOutputLayerDefinition,
    QgsProcessingParameterBand,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum,
    QgsProcessingParameterExtent,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterNumber,
    QgsProperty,
)
from qgis.PyQt.QtCore import QUrl, QVariant

from ..core.files.inputs import Input, Output, check_outputs
from ..core.raster.grid import Bounds, format_bounds
from .feedback import core_errors

EXTENT_POLICY_HELP = (
    "An extent without area (zero width or height) is refused, never taken for no extent."
)
"""The extent policy of :func:`extent_bounds`, for the extent parameters' help."""

DefinitionT = TypeVar("DefinitionT", bound=QgsProcessingParameterDefinition)

Parameters = dict[str, Any]
"""The parameter values QGIS passes to ``processAlgorithm`` (name -> value)."""
Results = dict[str, Any]
"""What ``processAlgorithm`` returns: output name -> value (a path, a number)."""


def parameter_label(algorithm: QgsProcessingAlgorithm, name: str) -> str:
    """How messages name parameter ``name``: its name and its description."""
    definition = algorithm.parameterDefinition(name)
    return f'{name} "{definition.description()}"' if definition is not None else name


def is_unset(value: Any, context: QgsProcessingContext | None = None) -> bool:
    """True for a parameter value that was not given: ``None``, a NULL ``QVariant``,
    blank text, a ``QgsProperty`` whose value is one of these, or an output definition
    (``QgsProcessingOutputLayerDefinition``) whose sink is one of these.

    The one test of "not set" for every parameter, outputs included. QGIS passes a
    skipped optional output in several forms: the algorithm dialog leaves it out, the
    batch dialog passes ``QgsProcessingOutputLayerDefinition('')`` for raster and vector
    destinations (``''`` for files), models may pass a ``QgsProperty``. Reading such a
    definition with ``parameterAsOutputLayer`` would register the empty path as a layer
    to load ("The following layers were not correctly generated"), so test it first.

    Args:
        context: evaluates expression and field properties; without it they count as
            set (they may give a value when the algorithm runs).
    """
    if isinstance(value, QgsProcessingOutputLayerDefinition):
        value = value.sink
    if isinstance(value, QgsProperty):
        if value.propertyType() == QgsProperty.Type.InvalidProperty:
            return True
        if value.propertyType() == QgsProperty.Type.StaticProperty:
            value = value.staticValue()
        elif context is None:
            return False
        else:
            value = value.value(context.expressionContext() or QgsExpressionContext())[0]
    if isinstance(value, QVariant):
        return value.isNull()
    return value is None or (isinstance(value, str) and not value.strip())


def extent_bounds(
    algorithm: QgsProcessingAlgorithm,
    parameters: dict[str, Any],
    name: str,
    context: QgsProcessingContext,
    crs: QgsCoordinateReferenceSystem,
) -> Bounds | None:
    """Extent parameter ``name`` as (xmin, ymin, xmax, ymax) in ``crs`` (the extent may
    be given in any CRS; QGIS reprojects its bounding box), or ``None`` when it is not
    set (no value, empty text, or QGIS's null rectangle): the algorithm's default area.

    The policy (:data:`EXTENT_POLICY_HELP`): an extent without area, zero width or
    height in the CRS it is given in, is refused with a message. Taking it for "not
    set" would silently process the whole default area; passing it on would fail
    later with a message about overlap that does not name the cause.
    """
    if is_unset(parameters.get(name), context):
        return None
    given = algorithm.parameterAsExtent(parameters, name, context)
    if given.isNull():
        return None
    if not (given.width() > 0 and given.height() > 0):
        given_crs = algorithm.parameterAsExtentCrs(parameters, name, context)
        in_crs = f" in {given_crs.authid() or 'its CRS'}" if given_crs.isValid() else ""
        bounds = (given.xMinimum(), given.yMinimum(), given.xMaximum(), given.yMaximum())
        raise QgsProcessingException(
            f"{parameter_label(algorithm, name)} has no area: {format_bounds(bounds)} "
            f"(xmin,xmax,ymin,ymax{in_crs}) is {given.width():g} wide and "
            f"{given.height():g} high. Give an extent with a width and a height, or leave it "
            "empty."
        )
    rectangle = algorithm.parameterAsExtent(parameters, name, context, crs)
    return (
        rectangle.xMinimum(),
        rectangle.yMinimum(),
        rectangle.xMaximum(),
        rectangle.yMaximum(),
    )


def optional_file_output(
    algorithm: QgsProcessingAlgorithm,
    parameters: dict[str, Any],
    name: str,
    context: QgsProcessingContext,
) -> str | None:
    """The path of an optional file destination, ``None`` when it is skipped
    (:func:`is_unset`)."""
    if is_unset(parameters.get(name), context):
        return None
    return algorithm.parameterAsFileOutput(parameters, name, context) or None


def optional_layer_output(
    algorithm: QgsProcessingAlgorithm,
    parameters: dict[str, Any],
    name: str,
    context: QgsProcessingContext,
) -> str | None:
    """The path of an optional layer (raster, vector) destination, ``None`` when it is
    skipped (:func:`is_unset`); a skipped one is not registered as a layer to load."""
    if is_unset(parameters.get(name), context):
        return None
    return algorithm.parameterAsOutputLayer(parameters, name, context) or None


def add_html_report(algorithm: QgsProcessingAlgorithm, name: str, help_text: str) -> None:
    """Declare the HTML report destination ``name`` ("Report (HTML)", an ``.html`` file)
    with a plain file output (``QgsProcessingOutputFile``).

    QGIS would declare an ``.html`` destination's output as ``QgsProcessingOutputHtml``,
    and the batch dialog of QGIS 3.22 (the oldest QGIS the plugin supports) then fails after every
    run with "ProcessingResults.addResult() missing 1 required positional argument:
    'timestamp'" (its ``loadHTMLResults`` omits the argument). A file output keeps batch
    runs working; the report is then not listed in the Results Viewer, so algorithms
    write its ``file://`` address (:func:`report_link`) to the log instead.
    """
    html = QgsProcessingParameterFileDestination(name, "Report (HTML)", "HTML files (*.html)")
    html.setHelp(help_text)
    algorithm.addParameter(html, createOutput=False)
    algorithm.addOutput(QgsProcessingOutputFile(name, "Report (HTML)"))


def report_link(path: str) -> str:
    """``path`` as a ``file://`` URL for the log: a browser opens it as it is."""
    return QUrl.fromLocalFile(path).toString()


def written_outputs(paths: dict[str, str | None]) -> dict[str, str]:
    """The results entries of the outputs written: output name -> path, skipped ones
    (``None`` or empty) left out, as QGIS's own algorithms leave them out, so that no
    result names a file that does not exist (the batch dialog's summary, models)."""
    return {name: path for name, path in paths.items() if path}


def optional_band(
    algorithm: QgsProcessingAlgorithm,
    parameters: dict[str, Any],
    name: str,
    context: QgsProcessingContext,
) -> int | None:
    """The band number of an optional band parameter, ``None`` when not set."""
    if is_unset(parameters.get(name), context):
        return None
    return algorithm.parameterAsInt(parameters, name, context) or None


def band_numbers(
    algorithm: QgsProcessingAlgorithm,
    parameters: dict[str, Any],
    name: str,
    context: QgsProcessingContext,
) -> list[int] | None:
    """A multiple band parameter as band numbers (1-based), or ``None`` when not set.

    Text may list them separated by commas, semicolons or spaces (``1,2,3,4``): QGIS
    itself splits text on semicolons only and reads ``1,2,3,4`` as band 0.
    """
    value = parameters.get(name)
    values = value if isinstance(value, list | tuple) else [value]
    if not all(isinstance(v, str | int) and not isinstance(v, bool) for v in values):
        return algorithm.parameterAsInts(parameters, name, context) or None
    bands = []
    for item in values:
        for token in re.split(r"[,;\s]+", str(item).strip()):
            if not token:
                continue
            if not token.isdigit() or int(token) < 1:
                raise QgsProcessingException(
                    f"{name}: {token!r} is not a band number; give the layer's band "
                    "numbers in the model's order, e.g. 1,2,3,4."
                )
            bands.append(int(token))
    return bands or None


def with_settings_of(original: QgsProcessingParameterDefinition, copy: DefinitionT) -> DefinitionT:
    """``copy`` with the default value, flags, help and metadata of ``original``: what
    ``clone()`` of a Python parameter class must carry over (QGIS clones definitions
    when it copies an algorithm)."""
    copy.setDefaultValue(original.defaultValue())
    copy.setFlags(original.flags())
    copy.setHelp(original.help())
    copy.setMetadata(original.metadata())
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
        if (
            isinstance(value, QgsProperty)
            and value.propertyType() == QgsProperty.Type.StaticProperty
        ):
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
        return with_settings_of(
            self, NamedEnumParameter(self.name(), self.description(), self.options())
        )


def enum_string(
    algorithm: QgsProcessingAlgorithm,
    parameters: dict[str, Any],
    name: str,
    context: QgsProcessingContext,
) -> str:
    """The option name of enum parameter ``name``; a :class:`NamedEnumParameter` also
    takes an index (``DEVICE=2``), which ``parameterAsEnumString`` would turn into the
    default without a word."""
    definition = algorithm.parameterDefinition(name)
    if isinstance(definition, NamedEnumParameter):
        option = definition.option_name(parameters.get(name))
        if option is not None:
            return option
    return algorithm.parameterAsEnumString(parameters, name, context)


def number_problem(definition: QgsProcessingParameterNumber, value: Any) -> str:
    """What is wrong with ``value`` for number parameter ``definition``: out of its
    range (naming the range; QGIS says only "Incorrect parameter value") or text that is
    no number (QGIS lets it pass as "not set" for optional numbers). ``""`` when nothing
    is, or when it is not a plain number or text: QGIS checks those."""
    if isinstance(value, QgsProperty) and value.propertyType() == QgsProperty.Type.StaticProperty:
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


def check_no_overwrite(
    algorithm: QgsProcessingAlgorithm,
    inputs: Iterable[tuple[str, str | None]],
    outputs: Iterable[tuple[str, str | None, bool]],
) -> None:
    """Raise ``QgsProcessingException`` when an output would overwrite a file an input
    reads (:func:`~qgis_landcover.core.files.inputs.check_outputs`); messages name the
    parameters with :func:`parameter_label`.

    Args:
        inputs: (parameter name or description, data source) pairs.
        outputs: (parameter name, path or ``None`` when skipped, is a GeoTIFF with
            sidecars) triples.
    """
    with core_errors():
        check_outputs(
            [Input(parameter_label(algorithm, name), source) for name, source in inputs],
            [
                Output(parameter_label(algorithm, name), path, raster)
                for name, path, raster in outputs
            ],
        )


def with_help(definition: DefinitionT, help_text: str) -> DefinitionT:
    """``definition`` with its help text set (every parameter has one)."""
    definition.setHelp(help_text)
    return definition


def add_advanced(
    algorithm: QgsProcessingAlgorithm, definitions: Iterable[QgsProcessingParameterDefinition]
) -> None:
    """Declare ``definitions`` on ``algorithm`` under the dialog's "Advanced parameters"."""
    for definition in definitions:
        definition.setFlags(definition.flags() | QgsProcessingParameterDefinition.Flag.FlagAdvanced)
        algorithm.addParameter(definition)


def number_parameter(
    name: str,
    label: str,
    help_text: str,
    *,
    integer: bool,
    default: float | None = None,
    minimum: float | None = None,
    maximum: float | None = None,
    optional: bool = False,
) -> QgsProcessingParameterNumber:
    """A number parameter (an integer one when ``integer``) with its help; bounds not
    given stay QGIS's (none)."""
    bounds = {"minValue": minimum, "maxValue": maximum}
    definition = QgsProcessingParameterNumber(
        name,
        label,
        QgsProcessingParameterNumber.Type.Integer
        if integer
        else QgsProcessingParameterNumber.Type.Double,
        defaultValue=default,
        optional=optional,
        **{key: value for key, value in bounds.items() if value is not None},
    )
    return with_help(definition, help_text)


def band_parameter(
    name: str, label: str, layer: str, help_text: str, *, multiple: bool = False
) -> QgsProcessingParameterBand:
    """An optional band parameter of layer parameter ``layer`` (several bands, in order,
    when ``multiple``: read them with :func:`band_numbers`; one: :func:`optional_band`)."""
    definition = QgsProcessingParameterBand(
        name, label, parentLayerParameterName=layer, optional=True, allowMultiple=multiple
    )
    return with_help(definition, help_text)


def extent_parameter(
    help_text: str, name: str = "EXTENT", label: str = "Extent"
) -> QgsProcessingParameterExtent:
    """An optional extent parameter, read with :func:`extent_bounds`; its help ends with
    that function's policy (:data:`EXTENT_POLICY_HELP`)."""
    definition = QgsProcessingParameterExtent(name, label, optional=True)
    return with_help(definition, f"{help_text} {EXTENT_POLICY_HELP}")


def feature_source(
    algorithm: QgsProcessingAlgorithm,
    parameters: Parameters,
    name: str,
    context: QgsProcessingContext,
) -> QgsProcessingFeatureSource:
    """Feature source parameter ``name``; QGIS's message for it when it cannot be read
    (``parameterAsSource`` gives ``None`` then)."""
    source = algorithm.parameterAsSource(parameters, name, context)
    if source is None:
        raise QgsProcessingException(algorithm.invalidSourceError(parameters, name))
    return source
