# SPDX-License-Identifier: GPL-2.0-or-later
"""The class parameters the accuracy algorithms (``landcover:agreement``,
``landcover:sample_accuracy``) share: remaps of either side, values to ignore and class
names, declared once and read into the core's keyword arguments; and the classified
raster whose classes are the strata (``landcover:sample_design``, ``sample_accuracy``)."""

from __future__ import annotations

from typing import Any

from qgis.core import (
    QgsProcessingAlgorithm,
    QgsProcessingContext,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterString,
)

from ..core.accuracy.remap import FILE_SUFFIXES, parse_class_names, parse_remap, parse_values
from .parameters import band_parameter, with_help
from .raster_inputs import RasterFileParameter

CLASSIFIED_REMAP = "CLASSIFIED_REMAP"
REFERENCE_REMAP = "REFERENCE_REMAP"
IGNORE_VALUES = "IGNORE_VALUES"
CLASS_NAMES = "CLASS_NAMES"

REMAP_HELP = (
    "Optional. Pairs 'value:new value' separated by commas, e.g. '5:4,6:4,15:0'; values "
    "not listed keep their value. Also accepts the path of a .csv file (two columns: "
    'value, new value) or a .json file ({"5": 4, ...}).'
)
IGNORE_HELP = (
    "Class values left out on both sides, compared after the remaps, e.g. '0, 15'. Each "
    "layer's own nodata value is always left out as well. 'none' (or empty) leaves out "
    "nothing else."
)
NAMES_HELP = (
    "Optional. Class names as 'value:name' pairs, e.g. '1:Water,2:Tree canopy', or a "
    ".csv / .json file. Default: the classified layer's category names (colour table), "
    "or the reference's when the classified side is remapped."
)


def add_strata_raster(
    algorithm: QgsProcessingAlgorithm, name: str, band: str, band_label: str
) -> None:
    """Declare the classified raster whose classes are the strata of a stratified sample
    (read with :func:`~qgis_landcover.qgis_glue.raster_inputs.gdal_raster_input`) and its
    optional band (:func:`~qgis_landcover.qgis_glue.parameters.optional_band`)."""
    algorithm.addParameter(
        with_help(
            RasterFileParameter(name, "Classified raster"),
            "The classification (integer class values); its classes are strata.",
        )
    )
    algorithm.addParameter(
        band_parameter(
            band,
            band_label,
            name,
            "The band holding the classes; may be unset for single-band rasters.",
        )
    )


def add_class_parameters(algorithm: QgsProcessingAlgorithm) -> None:
    """Declare the remap, ignore and class-name parameters on ``algorithm``."""
    for name, label, target in (
        (CLASSIFIED_REMAP, "Remap classified values", "classification"),
        (REFERENCE_REMAP, "Remap reference values", "reference"),
    ):
        remap = QgsProcessingParameterString(name, label, optional=True)
        remap.setHelp(f"Values of the {target} to replace before comparing. {REMAP_HELP}")
        algorithm.addParameter(remap)
    ignore = QgsProcessingParameterString(
        IGNORE_VALUES, "Ignore values", defaultValue="0", optional=True
    )
    ignore.setHelp(IGNORE_HELP)
    algorithm.addParameter(ignore)
    names = QgsProcessingParameterString(CLASS_NAMES, "Class names", optional=True)
    names.setHelp(NAMES_HELP)
    names.setFlags(names.flags() | QgsProcessingParameterDefinition.Flag.FlagAdvanced)
    algorithm.addParameter(names)


def class_input_files(
    algorithm: QgsProcessingAlgorithm, parameters: dict[str, Any], context: QgsProcessingContext
) -> list[tuple[str, str]]:
    """(parameter, file) of the class parameters given as .csv / .json files: inputs no
    output may overwrite."""
    texts = {
        name: algorithm.parameterAsString(parameters, name, context).strip()
        for name in (CLASSIFIED_REMAP, REFERENCE_REMAP, CLASS_NAMES)
    }
    return [(name, text) for name, text in texts.items() if text.lower().endswith(FILE_SUFFIXES)]


def class_arguments(
    algorithm: QgsProcessingAlgorithm, parameters: dict[str, Any], context: QgsProcessingContext
) -> dict[str, Any]:
    """The core's keyword arguments (``classified_remap``, ``reference_remap``,
    ``ignore_values``, ``class_names``) from the class parameters. Raises the core's
    :class:`InputError` on a value that does not parse; call inside ``core_errors``."""
    text = {
        name: algorithm.parameterAsString(parameters, name, context)
        for name in (CLASSIFIED_REMAP, REFERENCE_REMAP, IGNORE_VALUES, CLASS_NAMES)
    }
    return {
        "classified_remap": parse_remap(text[CLASSIFIED_REMAP], what="classified remap"),
        "reference_remap": parse_remap(text[REFERENCE_REMAP], what="reference remap"),
        "ignore_values": parse_values(text[IGNORE_VALUES]),
        "class_names": parse_class_names(text[CLASS_NAMES]),
    }
