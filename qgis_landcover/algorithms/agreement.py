# SPDX-License-Identifier: GPL-2.0-or-later
"""``landcover:agreement``: confusion matrix and accuracy statistics of a classified
raster against a reference raster (:mod:`qgis_landcover.core.accuracy.agreement`)."""

from __future__ import annotations

from typing import Any

from qgis.core import (
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingOutputNumber,
    QgsProcessingParameterBand,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterExtent,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterString,
)

from ..core.accuracy.agreement import assess_agreement
from ..core.accuracy.remap import FILE_SUFFIXES, parse_class_names, parse_remap, parse_values
from ..core.accuracy.reports import agreement_html, write_html, write_json, write_matrix_csv
from .base import (
    FeedbackProgress,
    LandcoverAlgorithm,
    RasterFileParameter,
    RasterInput,
    core_errors,
)

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


def raster_path(
    algorithm: LandcoverAlgorithm,
    parameters: dict[str, Any],
    name: str,
    context: QgsProcessingContext,
) -> RasterInput:
    """The raster of parameter ``name``, which must be one GDAL reads."""
    raster = algorithm.raster_input(parameters, name, context)
    if raster.layer is not None and raster.provider != "gdal":
        raise QgsProcessingException(
            f"{raster.layer.name()} is not a file-based raster (provider {raster.provider}); "
            "save it as a GeoTIFF first."
        )
    return raster


def optional_band(
    algorithm: LandcoverAlgorithm,
    parameters: dict[str, Any],
    name: str,
    context: QgsProcessingContext,
) -> int | None:
    """The band number of an optional band parameter, ``None`` when not set."""
    if parameters.get(name) in (None, ""):
        return None
    return algorithm.parameterAsInt(parameters, name, context) or None


def optional_output(
    algorithm: LandcoverAlgorithm,
    parameters: dict[str, Any],
    name: str,
    context: QgsProcessingContext,
) -> str | None:
    """The path of an optional file destination, ``None`` when it is skipped."""
    if parameters.get(name) in (None, ""):
        return None
    path = algorithm.parameterAsFileOutput(parameters, name, context)
    return path or None


def add_class_parameters(algorithm: LandcoverAlgorithm) -> None:
    """The remap, ignore and class-name parameters both accuracy algorithms share."""
    for name, label, target in (
        ("CLASSIFIED_REMAP", "Remap classified values", "classification"),
        ("REFERENCE_REMAP", "Remap reference values", "reference"),
    ):
        remap = QgsProcessingParameterString(name, label, optional=True)
        remap.setHelp(f"Values of the {target} to replace before comparing. {REMAP_HELP}")
        algorithm.addParameter(remap)
    ignore = QgsProcessingParameterString(
        "IGNORE_VALUES", "Ignore values", defaultValue="0", optional=True
    )
    ignore.setHelp(IGNORE_HELP)
    algorithm.addParameter(ignore)
    names = QgsProcessingParameterString("CLASS_NAMES", "Class names", optional=True)
    names.setHelp(NAMES_HELP)
    names.setFlags(names.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
    algorithm.addParameter(names)


def input_files(
    algorithm: LandcoverAlgorithm, parameters: dict[str, Any], context: QgsProcessingContext
) -> list[tuple[str, str]]:
    """(parameter, file) of the shared class parameters given as .csv / .json files:
    inputs no output may overwrite."""
    texts = {
        name: algorithm.parameterAsString(parameters, name, context).strip()
        for name in ("CLASSIFIED_REMAP", "REFERENCE_REMAP", "CLASS_NAMES")
    }
    return [(name, text) for name, text in texts.items() if text.lower().endswith(FILE_SUFFIXES)]


def class_arguments(
    algorithm: LandcoverAlgorithm, parameters: dict[str, Any], context: QgsProcessingContext
) -> dict[str, Any]:
    """Core keyword arguments from the shared class parameters (raises the core's
    :class:`InputError` on a remap that does not parse; call inside ``core_errors``)."""
    text = {
        name: algorithm.parameterAsString(parameters, name, context)
        for name in ("CLASSIFIED_REMAP", "REFERENCE_REMAP", "IGNORE_VALUES", "CLASS_NAMES")
    }
    return {
        "classified_remap": parse_remap(text["CLASSIFIED_REMAP"], what="classified remap"),
        "reference_remap": parse_remap(text["REFERENCE_REMAP"], what="reference remap"),
        "ignore_values": parse_values(text["IGNORE_VALUES"]),
        "class_names": parse_class_names(text["CLASS_NAMES"]),
    }


class AgreementAlgorithm(LandcoverAlgorithm):
    """Confusion matrix, kappa, IoU, ... of a classified raster against a reference."""

    NAME = "agreement"
    DISPLAY_NAME = "Agreement with reference raster"
    GROUP = "Accuracy assessment"
    GROUP_ID = "accuracy"

    CLASSIFIED = "CLASSIFIED"
    CLASSIFIED_BAND = "CLASSIFIED_BAND"
    REFERENCE = "REFERENCE"
    REFERENCE_BAND = "REFERENCE_BAND"
    EXTENT = "EXTENT"
    OUTPUT_HTML = "OUTPUT_HTML"
    OUTPUT_JSON = "OUTPUT_JSON"
    OUTPUT_CSV = "OUTPUT_CSV"
    OUTPUT_DISAGREEMENT = "OUTPUT_DISAGREEMENT"
    OVERALL_ACCURACY = "OVERALL_ACCURACY"
    KAPPA = "KAPPA"
    MEAN_IOU = "MEAN_IOU"

    def shortHelpString(self) -> str:
        return (
            "Compares a classified raster (the map) with a reference raster of class labels "
            "and reports the confusion matrix and accuracy statistics: overall accuracy, "
            "Cohen's kappa with its large-sample variance (Fleiss, Cohen & Everitt 1969) "
            "and 95 % interval (GRASS r.kappa's variance is also reported, for "
            "comparison), producer's and user's accuracy, conditional kappa, F1 and IoU per "
            "class, mean IoU and mean F1 (over the classes present in the reference), and "
            "quantity / allocation disagreement (Pontius & Millones 2011).\n\n"
            "Matrix orientation: rows = classification (map), columns = reference.\n\n"
            "The comparison runs on the classified raster's grid over the area both "
            "rasters cover (or the given extent). A reference in another CRS, pixel size or "
            "alignment is resampled on the fly with nearest neighbour. Rasters of any size "
            "are read block by block at constant memory.\n\n"
            "Remaps bring both sides to the same classes (e.g. Chesapeake 7 classes to "
            "4: '5:4,6:4,15:0'). Pixels that are nodata or an ignore value on either side "
            "are left out.\n\n"
            "Outputs: an HTML report (matrix heat map, per-class table), the statistics as "
            "JSON, the matrix as CSV, an optional agree / disagree raster, and the numbers "
            "OVERALL_ACCURACY, KAPPA and MEAN_IOU (0-1) for models and batch runs."
        )

    def initAlgorithm(self, configuration: dict[str, Any] | None = None) -> None:
        for layer, band, what in (
            (self.CLASSIFIED, self.CLASSIFIED_BAND, "Classified raster"),
            (self.REFERENCE, self.REFERENCE_BAND, "Reference raster"),
        ):
            layer_parameter = RasterFileParameter(layer, what)
            layer_parameter.setHelp(
                f"{what} with integer class values (GeoTIFF or any GDAL raster)."
                + (
                    " Its grid (CRS, pixels) is the comparison grid."
                    if layer == self.CLASSIFIED
                    else " Any CRS and pixel size: resampled to the classified grid."
                )
            )
            self.addParameter(layer_parameter)
            band_parameter = QgsProcessingParameterBand(
                band, f"{what}: band", parentLayerParameterName=layer, optional=True
            )
            band_parameter.setHelp(
                "The band holding the class values; may be left unset for single-band rasters."
            )
            self.addParameter(band_parameter)
        extent = QgsProcessingParameterExtent(self.EXTENT, "Compare within extent", optional=True)
        extent.setHelp(
            "Optional, in any CRS. Default: the area both rasters cover. The extent is "
            "snapped outward to the classified raster's pixels."
        )
        self.addParameter(extent)
        add_class_parameters(self)
        html = QgsProcessingParameterFileDestination(
            self.OUTPUT_HTML, "Report (HTML)", "HTML files (*.html)"
        )
        html.setHelp("The report: overall figures, the matrix as a heat map, per-class table.")
        self.addParameter(html)
        for name, label, file_filter, help_text in (
            (
                self.OUTPUT_JSON,
                "Statistics (JSON)",
                "JSON files (*.json)",
                "Every statistic, machine-readable; undefined values are null.",
            ),
            (
                self.OUTPUT_CSV,
                "Confusion matrix (CSV)",
                "CSV files (*.csv)",
                "The matrix with row and column totals (rows = classification).",
            ),
        ):
            output = QgsProcessingParameterFileDestination(
                name, label, file_filter, optional=True, createByDefault=False
            )
            output.setHelp(f"Optional. {help_text}")
            self.addParameter(output)
        disagreement = QgsProcessingParameterRasterDestination(
            self.OUTPUT_DISAGREEMENT,
            "Agreement raster",
            optional=True,
            createByDefault=False,
        )
        disagreement.setHelp(
            "Optional GeoTIFF on the classified grid: 1 agree, 2 disagree, 0 ignored "
            "(nodata), with a colour table and a QGIS style."
        )
        self.addParameter(disagreement)
        for name, label in (
            (self.OVERALL_ACCURACY, "Overall accuracy (0-1)"),
            (self.KAPPA, "Cohen's kappa"),
            (self.MEAN_IOU, "Mean IoU over the reference classes (0-1)"),
        ):
            self.addOutput(QgsProcessingOutputNumber(name, label))

    def processAlgorithm(
        self,
        parameters: dict[str, Any],
        context: QgsProcessingContext,
        feedback: QgsProcessingFeedback,
    ) -> dict[str, Any]:
        classified = raster_path(self, parameters, self.CLASSIFIED, context)
        reference = raster_path(self, parameters, self.REFERENCE, context)
        extent = None
        if parameters.get(self.EXTENT) not in (None, ""):
            rectangle = self.parameterAsExtent(parameters, self.EXTENT, context, classified.crs)
            if not rectangle.isNull():
                extent = (
                    rectangle.xMinimum(),
                    rectangle.yMinimum(),
                    rectangle.xMaximum(),
                    rectangle.yMaximum(),
                )
        html = self.parameterAsFileOutput(parameters, self.OUTPUT_HTML, context)
        json_path = optional_output(self, parameters, self.OUTPUT_JSON, context)
        csv_path = optional_output(self, parameters, self.OUTPUT_CSV, context)
        disagreement = None
        if parameters.get(self.OUTPUT_DISAGREEMENT) not in (None, ""):
            disagreement = self.parameterAsOutputLayer(
                parameters, self.OUTPUT_DISAGREEMENT, context
            )
            if not disagreement.lower().endswith((".tif", ".tiff")):
                raise QgsProcessingException(
                    f"The agreement raster is written as GeoTIFF: give it a .tif name "
                    f"(not {disagreement})."
                )

        self.check_outputs(
            [
                (self.CLASSIFIED, classified.source),
                (self.REFERENCE, reference.source),
                *input_files(self, parameters, context),
            ],
            [
                (self.OUTPUT_HTML, html, False),
                (self.OUTPUT_JSON, json_path, False),
                (self.OUTPUT_CSV, csv_path, False),
                (self.OUTPUT_DISAGREEMENT, disagreement, True),
            ],
        )
        with core_errors():
            result = assess_agreement(
                classified.source,
                reference.source,
                classified_band=optional_band(self, parameters, self.CLASSIFIED_BAND, context),
                reference_band=optional_band(self, parameters, self.REFERENCE_BAND, context),
                extent=extent,
                disagreement_path=disagreement,
                progress=FeedbackProgress(feedback),
                **class_arguments(self, parameters, context),
            )
            report = result.report
            write_html(html, agreement_html(report))
            if json_path:
                write_json(json_path, report)
            if csv_path:
                write_matrix_csv(csv_path, report)

        feedback.pushInfo(
            f"Observations {report['observations']:,}, overall accuracy "
            f"{_format(report['overall_accuracy'])}, kappa {_format(report['kappa'])}, "
            f"mean IoU {_format(report['mean_iou'])}. Report: {html}"
        )
        return {
            self.OUTPUT_HTML: html,
            self.OUTPUT_JSON: json_path,
            self.OUTPUT_CSV: csv_path,
            self.OUTPUT_DISAGREEMENT: disagreement,
            self.OVERALL_ACCURACY: report["overall_accuracy"],
            self.KAPPA: report["kappa"],
            self.MEAN_IOU: report["mean_iou"],
        }


def _format(value: float | None) -> str:
    return "undefined" if value is None else f"{value:.4f}"
