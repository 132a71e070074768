# SPDX-License-Identifier: GPL-2.0-or-later
"""``landcover:agreement``: confusion matrix and accuracy statistics of a classified
raster against a reference raster (:mod:`qgis_landcover.core.accuracy.agreement`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qgis.core import (
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingOutputNumber,
    QgsProcessingParameterBand,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterRasterDestination,
)

from ..core.accuracy.agreement import assess_agreement
from ..core.accuracy.reports import agreement_html, write_html, write_json, write_matrix_csv
from ..qgis_glue.class_parameters import add_class_parameters, class_arguments, class_input_files
from ..qgis_glue.feedback import FeedbackProgress, core_errors
from ..qgis_glue.parameters import (
    add_html_report,
    check_no_overwrite,
    extent_bounds,
    extent_parameter,
    optional_band,
    optional_file_output,
    optional_layer_output,
    report_link,
    written_outputs,
)
from ..qgis_glue.raster_inputs import RasterFileParameter, gdal_raster_input
from ..qgis_glue.styling import style_on_load
from .base import LandcoverAlgorithm, Parameters, Results


class AgreementAlgorithm(LandcoverAlgorithm):
    """Confusion matrix, kappa, IoU, ... of a classified raster against a reference."""

    NAME = "agreement"
    DISPLAY_NAME = "Agreement with reference raster"
    GROUP = "Accuracy assessment"
    GROUP_ID = "accuracy"
    TAGS = (
        "accuracy",
        "accuracy assessment",
        "agreement",
        "confusion matrix",
        "error matrix",
        "contingency table",
        "kappa",
        "Cohen's kappa",
        "overall accuracy",
        "producer's accuracy",
        "user's accuracy",
        "IoU",
        "intersection over union",
        "F1",
        "quantity disagreement",
        "allocation disagreement",
        "validation",
        "reference",
        "compare",
        "land cover",
        "classification",
        "r.kappa",
    )

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
            "Remaps bring both sides to the same classes: e.g. to compare a 4-class map with "
            "the 7-class Chesapeake labels, type 5:4,6:4,15:0 in 'Remap reference values' "
            "(REFERENCE_REMAP): reference classes 5 and 6 become 4, 15 becomes 0, the others "
            "keep their value. Pixels that are nodata or an ignore value ('Ignore values', "
            "default 0) on either side are left out.\n\n"
            "Outputs: an HTML report (matrix heat map, per-class table), the statistics as "
            "JSON, the matrix as CSV, an optional agree / disagree raster, and the numbers "
            "OVERALL_ACCURACY, KAPPA and MEAN_IOU (0-1) for models and batch runs. The "
            "report's file:// address is in the log; a batch run lists it in its summary."
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
                band,
                f"{what.split()[0]} band",
                parentLayerParameterName=layer,
                optional=True,
            )
            band_parameter.setHelp(
                "The band holding the class values; may be left unset for single-band rasters."
            )
            self.addParameter(band_parameter)
        extent = extent_parameter(
            "Optional, in any CRS. Default: the area both rasters cover. The extent is "
            "snapped outward to the classified raster's pixels.",
            label="Compare within extent",
        )
        self.addParameter(extent)
        add_class_parameters(self)
        add_html_report(
            self,
            self.OUTPUT_HTML,
            "The report: overall figures, the matrix as a heat map, per-class table.",
        )
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
            (self.MEAN_IOU, "Mean IoU (0-1)"),
        ):
            self.addOutput(QgsProcessingOutputNumber(name, label))

    def processAlgorithm(
        self, parameters: Parameters, context: QgsProcessingContext, feedback: QgsProcessingFeedback
    ) -> Results:
        classified = gdal_raster_input(self, parameters, self.CLASSIFIED, context)
        reference = gdal_raster_input(self, parameters, self.REFERENCE, context)
        extent = extent_bounds(self, parameters, self.EXTENT, context, classified.crs)
        html = self.parameterAsFileOutput(parameters, self.OUTPUT_HTML, context)
        json_path = optional_file_output(self, parameters, self.OUTPUT_JSON, context)
        csv_path = optional_file_output(self, parameters, self.OUTPUT_CSV, context)
        disagreement = optional_layer_output(self, parameters, self.OUTPUT_DISAGREEMENT, context)
        if disagreement and not disagreement.lower().endswith((".tif", ".tiff")):
            raise QgsProcessingException(
                f"The agreement raster is written as GeoTIFF: give it a .tif name "
                f"(not {disagreement})."
            )

        check_no_overwrite(
            self,
            [
                (self.CLASSIFIED, classified.source),
                (self.REFERENCE, reference.source),
                *class_input_files(self, parameters, context),
            ],
            [
                (self.OUTPUT_HTML, html, False),
                (self.OUTPUT_JSON, json_path, False),
                (self.OUTPUT_CSV, csv_path, False),
                (self.OUTPUT_DISAGREEMENT, disagreement, True),
            ],
        )
        with core_errors():
            report = assess_agreement(
                classified.source,
                reference.source,
                classified_band=optional_band(self, parameters, self.CLASSIFIED_BAND, context),
                reference_band=optional_band(self, parameters, self.REFERENCE_BAND, context),
                extent=extent,
                disagreement_path=disagreement,
                progress=FeedbackProgress(feedback),
                **class_arguments(self, parameters, context),
            )
            write_html(html, agreement_html(report))
            if json_path:
                write_json(json_path, report.to_json())
            if csv_path:
                write_matrix_csv(csv_path, report.statistics)

        statistics = report.statistics
        feedback.pushInfo(
            f"Observations {statistics.observations:,}, overall accuracy "
            f"{_format(statistics.overall_accuracy)}, kappa {_format(statistics.kappa.value)}, "
            f"mean IoU {_format(statistics.mean_iou)}. Report: {report_link(html)}"
        )
        if disagreement:
            style_on_load(context, disagreement, Path(disagreement).with_suffix(".qml"))
        return {
            **written_outputs(
                {
                    self.OUTPUT_HTML: html,
                    self.OUTPUT_JSON: json_path,
                    self.OUTPUT_CSV: csv_path,
                    self.OUTPUT_DISAGREEMENT: disagreement,
                }
            ),
            self.OVERALL_ACCURACY: statistics.overall_accuracy,
            self.KAPPA: statistics.kappa.value,
            self.MEAN_IOU: statistics.mean_iou,
        }


def _format(value: float | None) -> str:
    return "undefined" if value is None else f"{value:.4f}"
