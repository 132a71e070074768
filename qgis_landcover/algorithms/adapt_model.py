# SPDX-License-Identifier: GPL-2.0-or-later
"""``landcover:adapt_model``: re-fit a model's last layer to an area from a few labelled
points or polygons, without PyTorch (:func:`qgis_landcover.core.adaptation.adapt.adapt_model`)."""

from __future__ import annotations

from typing import Any

from qgis.core import (
    QgsProcessing,
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProcessingOutputNumber,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterField,
    QgsProcessingParameterFileDestination,
)

from ..core.accuracy.reports import write_html
from ..core.adaptation.adapt import AdaptOptions, adapt_model
from ..core.adaptation.fit import MIN_LABELS_PER_CLASS
from ..core.adaptation.report import adaptation_html
from ..core.models.contract import read_contract
from ..qgis_glue.feedback import FeedbackProgress, core_errors
from ..qgis_glue.image_source import image_source
from ..qgis_glue.labels import MAX_POINTS_PER_POLYGON, read_labels
from ..qgis_glue.model_parameters import (
    add_imagery_input,
    add_model_parameter,
    imagery_extent,
    model_settings,
)
from ..qgis_glue.parameters import (
    add_html_report,
    check_no_overwrite,
    extent_parameter,
    feature_source,
    report_link,
    written_outputs,
)
from ..qgis_glue.raster_inputs import raster_input
from .base import LandcoverAlgorithm, Parameters, Results


class AdaptModelAlgorithm(LandcoverAlgorithm):
    """Adapt a land-cover model to an area from labelled points (local adaptation)."""

    NAME = "adapt_model"
    DISPLAY_NAME = "Adapt model to an area (labelled points)"
    GROUP = "Classification"
    GROUP_ID = "classification"
    TAGS = (
        "adapt",
        "adaptation",
        "local adaptation",
        "fine-tune",
        "fine tuning",
        "retrain",
        "re-fit",
        "calibrate",
        "human in the loop",
        "active learning",
        "labels",
        "labelled points",
        "training points",
        "logistic regression",
        "land cover",
        "classification",
        "U-Net",
        "ONNX",
    )
    NEEDS_ONNXRUNTIME = True

    INPUT = "INPUT"
    MODEL = "MODEL"
    LABELS = "LABELS"
    CLASS_FIELD = "CLASS_FIELD"
    EXTENT = "EXTENT"
    OUTPUT_MODEL = "OUTPUT_MODEL"
    OUTPUT_REPORT = "OUTPUT_REPORT"
    LABELS_USED = "LABELS_USED"
    CV_ACCURACY = "CV_ACCURACY"

    def shortHelpString(self) -> str:
        return (
            "Adapts a land-cover model to your area from a few labelled points: the model "
            "runs once around each label, and its last layer is re-fitted on the network's "
            "own features there (a regularised multinomial logistic regression, numpy "
            "only, in seconds; no PyTorch, no training data set). The result is a new ONNX "
            "model (same network, classes and inputs; new last-layer weights and a model "
            "card saying from what, where and with how many labels it was adapted) that "
            "landcover:classify and landcover:classify_tiles run like any other.\n\n"
            "Labels: a point layer (or polygons: up to "
            f"{MAX_POINTS_PER_POLYGON} pixel centres inside each) in any CRS, with a field "
            "holding the model's class values (e.g. 3) or class names (e.g. low "
            f"vegetation). Label at least two classes, {MIN_LABELS_PER_CLASS} points or "
            "more per class labelled; classes without labels keep their behaviour. Label "
            "where the map is wrong: the loop is suggest points (landcover:suggest_points), "
            "label, adapt, classify.\n\n"
            "Labels are rarely a random sample: the fit weighs the classes equally, then "
            "shifts each class's bias toward its share of the area (measured on the "
            "unadapted model's map of the extent). How strongly the weights are pulled "
            "toward the original is chosen by cross-validation: labels that only confirm "
            "the model change almost nothing. The report gives the labels per class and the "
            "cross-validated confusion matrix (agreement with the labels, not the map's "
            "accuracy: assess that with landcover:sample_design and "
            "landcover:sample_accuracy).\n\n"
            "The model must expose its penultimate features (metadata 'features_output'): "
            "the shipped fp32 models do; int8 variants cannot be adapted."
        )

    def initAlgorithm(self, configuration: dict[str, Any] | None = None) -> None:
        add_imagery_input(
            self,
            "The imagery the labels lie on, as for landcover:classify (read at the model's "
            "resolution, same bands and value checks).",
        )
        add_model_parameter(
            self,
            "The model to adapt: an ONNX file, a catalogue name (e.g. azure-2018-unet) or an "
            "https:// URL. Empty: the model shipped with the plugin. It must expose its "
            "features (metadata 'features_output').",
        )
        labels = QgsProcessingParameterFeatureSource(
            self.LABELS,
            "Labels",
            [QgsProcessing.SourceType.TypeVectorPoint, QgsProcessing.SourceType.TypeVectorPolygon],
        )
        labels.setHelp(
            "Labelled points or polygons, any CRS. Features with an empty class are skipped."
        )
        self.addParameter(labels)
        field = QgsProcessingParameterField(
            self.CLASS_FIELD, "Class field", parentLayerParameterName=self.LABELS
        )
        field.setHelp(
            "The class of each label: the model's class value (e.g. 3) or class name (e.g. "
            "'low vegetation', any case)."
        )
        self.addParameter(field)
        self.addParameter(
            extent_parameter(
                "Optional, any CRS: the area the model is adapted for (its map's class shares "
                "are measured there; every label must lie in it). Default: the whole layer."
            )
        )
        output = QgsProcessingParameterFileDestination(
            self.OUTPUT_MODEL, "Adapted model", "ONNX models (*.onnx)"
        )
        output.setHelp("The adapted model (.onnx), written when complete.")
        self.addParameter(output)
        add_html_report(
            self,
            self.OUTPUT_REPORT,
            "Labels per class, the prior shift and the cross-validated confusion matrix.",
        )
        self.addOutput(QgsProcessingOutputNumber(self.LABELS_USED, "Labels used"))
        self.addOutput(QgsProcessingOutputNumber(self.CV_ACCURACY, "Cross-validated accuracy"))

    def processAlgorithm(
        self, parameters: Parameters, context: QgsProcessingContext, feedback: QgsProcessingFeedback
    ) -> Results:
        raster = raster_input(self, parameters, self.INPUT, context)
        source = feature_source(self, parameters, self.LABELS, context)
        field_name = self.parameterAsString(parameters, self.CLASS_FIELD, context)
        extent = imagery_extent(self, parameters, context, raster)
        output = self.parameterAsFileOutput(parameters, self.OUTPUT_MODEL, context)
        html = self.parameterAsFileOutput(parameters, self.OUTPUT_REPORT, context)
        labels_layer = self.parameterAsVectorLayer(parameters, self.LABELS, context)
        labels = read_labels(source, field_name, raster, context, feedback)
        if labels.skipped:
            feedback.pushWarning(
                f"{labels.skipped} of {labels.features} features skipped: empty "
                f"'{field_name}' or no geometry."
            )
        # Resolved as named, no variant chosen: int8 variants cannot be adapted.
        settings = model_settings(self, parameters, context, feedback, choose_variant=False)
        model = settings.model
        with core_errors():
            check_no_overwrite(
                self,
                [
                    *settings.inputs(raster),
                    (self.LABELS, labels_layer.source() if labels_layer is not None else None),
                ],
                [(self.OUTPUT_MODEL, output, False), (self.OUTPUT_REPORT, html, False)],
            )
            result = adapt_model(
                image_source(raster, feedback),
                model,
                labels.points,
                output,
                extent=extent,
                options=AdaptOptions(),
                progress=FeedbackProgress(feedback),
            )
            contract = read_contract(model)
            colors = {contract.class_values[c]: color
                      for c, color in contract.class_colors.items()}  # fmt: skip
            inputs = {
                "Model adapted": f"{model.name} ({contract.name or 'unnamed'})",
                "Imagery": raster.source,
                "Labels": f"{source.sourceName()}, field '{field_name}'"
                + (" (polygons: pixel centres)" if labels.polygons else ""),
            }
            write_html(html, adaptation_html(result, inputs, colors))
        feedback.pushInfo(
            f"{result.labels_used} labels used; cross-validated accuracy "
            f"{result.cv_accuracy:.4f} (the unadapted model on the same labels: "
            f"{result.cross_validation.original_accuracy:.4f}); adapted model written in "
            f"{result.seconds:.1f} s. Report: {report_link(html)}"
        )
        return {
            **written_outputs({self.OUTPUT_MODEL: output, self.OUTPUT_REPORT: html}),
            self.LABELS_USED: result.labels_used,
            self.CV_ACCURACY: result.cv_accuracy,
        }
