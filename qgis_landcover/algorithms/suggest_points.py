# SPDX-License-Identifier: GPL-2.0-or-later
"""``landcover:suggest_points``: points where a model is least sure (lowest margin
between its two top classes), spread out in space and across predicted classes, for a
user to label before ``landcover:adapt_model``
(:func:`qgis_landcover.core.sampling.uncertainty.suggest_points`)."""

from __future__ import annotations

from typing import Any

from qgis.core import (
    QgsProcessing,
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProcessingOutputNumber,
    QgsProcessingParameterFeatureSink,
)
from qgis.PyQt.QtCore import QMetaType

from ..core.inference.pipeline import ClassifyOptions
from ..core.sampling.uncertainty import suggest_points
from ..qgis_glue.feedback import FeedbackProgress, core_errors
from ..qgis_glue.image_source import image_source
from ..qgis_glue.model_parameters import (
    add_imagery_input,
    add_model_parameter,
    device_parameter,
    imagery_extent,
    model_settings,
)
from ..qgis_glue.parameters import (
    add_advanced,
    band_numbers,
    band_parameter,
    check_no_overwrite,
    extent_parameter,
    number_parameter,
)
from ..qgis_glue.point_output import PointField, sink_destination, write_points
from ..qgis_glue.raster_inputs import raster_input
from .base import LandcoverAlgorithm, Parameters, Results

CLASS_FIELD = "class"
"""The empty field the user fills with the right class (``landcover:adapt_model``'s
CLASS_FIELD)."""


class SuggestPointsAlgorithm(LandcoverAlgorithm):
    """Points to label where the model is least sure."""

    NAME = "suggest_points"
    DISPLAY_NAME = "Suggest points to label (model uncertainty)"
    GROUP = "Classification"
    GROUP_ID = "classification"

    INPUT = "INPUT"
    MODEL = "MODEL"
    EXTENT = "EXTENT"
    BANDS = "BANDS"
    COUNT = "COUNT"
    MIN_DISTANCE = "MIN_DISTANCE"
    DEVICE = "DEVICE"
    OUTPUT = "OUTPUT"
    POINTS = "POINTS"

    NEEDS_ONNXRUNTIME = True
    TAGS = (
        "uncertainty",
        "margin",
        "active learning",
        "labels",
        "points",
        "adapt",
        "adaptation",
        "training",
        "U-Net",
        "land cover",
    )

    def shortHelpString(self) -> str:
        return (
            "Suggests where to label: runs the model over the extent and picks the points "
            "where it is least sure, i.e. where the probability of its top class is closest "
            "to that of the second (the margin; 0 = a tie, 1 = certain).\n\n"
            "The points are spread out: the extent is cut into square cells of the minimum "
            "distance and each cell offers its least sure pixel; points stay at least that "
            "far apart; and the predicted classes take turns, so the border between two "
            "classes does not take every point.\n\n"
            "The output has each point's predicted class, its name, its margin and an empty "
            "'class' field: fill it with the right class value (the model's class values, "
            "e.g. 1 water, 2 tree canopy, 3 low vegetation, 4 barren / impervious for the "
            "default model), then run 'Adapt the model to labelled points' "
            "(landcover:adapt_model) with CLASS_FIELD=class, and classify again with the "
            "adapted model: suggest, label, adapt, classify.\n\n"
            "Points suggested this way are not a random sample: use them to adapt the model, "
            "never to measure its accuracy (landcover:sample_design draws points for that)."
        )

    def initAlgorithm(self, configuration: dict[str, Any] | None = None) -> None:
        add_imagery_input(
            self,
            "The imagery the model classifies (as in landcover:classify): a GeoTIFF, VRT, "
            "COG or any GDAL raster, or an online layer (WMS / XYZ, with an extent).",
        )
        add_model_parameter(
            self,
            "An ONNX model file, a catalogue name or an https:// URL; empty: the model "
            "shipped with the plugin. Give the adapted model to suggest the next round.",
        )
        self.addParameter(
            extent_parameter(
                "The area to suggest points in, in any CRS. Default: the whole layer. "
                "Required for online layers."
            )
        )
        self.addParameter(
            number_parameter(
                self.COUNT,
                "Number of points",
                "How many points to suggest (fewer when they do not fit the minimum distance).",
                integer=True,
                default=50,
                minimum=1,
            )
        )
        self.addParameter(
            number_parameter(
                self.MIN_DISTANCE,
                "Minimum distance",
                "In the layer's CRS units (metres for projected imagery). 0: half the spacing "
                "of a square grid of the requested number of points over the extent.",
                integer=False,
                default=0.0,
                minimum=0.0,
            )
        )
        bands = band_parameter(
            self.BANDS,
            "Bands feeding the model",
            self.INPUT,
            "Optional: the layer's bands in the model's order (as in landcover:classify); "
            "default: matched by band name / colour interpretation.",
            multiple=True,
        )
        device = device_parameter(
            "auto: a GPU when onnxruntime-gpu can use one, else the CPU; cpu, cuda, "
            "tensorrt: that provider (as in landcover:classify)."
        )
        add_advanced(self, (bands, device))
        output = QgsProcessingParameterFeatureSink(
            self.OUTPUT, "Points to label", QgsProcessing.SourceType.TypeVectorPoint
        )
        output.setHelp(
            "Points at pixel centres in the layer's CRS, least sure first in each round of "
            "classes, with fields 'id', 'predicted' (class value), 'predicted_name', "
            "'margin' (0-1) and 'class' (empty, for you to fill)."
        )
        self.addParameter(output)
        self.addOutput(QgsProcessingOutputNumber(self.POINTS, "Points suggested"))

    def processAlgorithm(
        self, parameters: Parameters, context: QgsProcessingContext, feedback: QgsProcessingFeedback
    ) -> Results:
        raster = raster_input(self, parameters, self.INPUT, context)
        extent = imagery_extent(self, parameters, context, raster)
        bands = band_numbers(self, parameters, self.BANDS, context)
        count = self.parameterAsInt(parameters, self.COUNT, context)
        distance = self.parameterAsDouble(parameters, self.MIN_DISTANCE, context)
        settings = model_settings(self, parameters, context, feedback)
        with core_errors():
            check_no_overwrite(
                self,
                settings.inputs(raster),
                [(self.OUTPUT, sink_destination(self, parameters, self.OUTPUT, context), False)],
            )
            result = suggest_points(
                image_source(raster, feedback),
                settings.model,
                count,
                extent=extent,
                bands=bands,
                min_distance=distance or None,
                options=ClassifyOptions(device=settings.device, overviews=False),
                progress=FeedbackProgress(feedback),
            )
        names = result.class_names
        destination = write_points(
            self,
            parameters,
            self.OUTPUT,
            context,
            raster.crs,
            result.xs,
            result.ys,
            [
                PointField("id", QMetaType.Type.Int, range(1, len(result.xs) + 1)),
                PointField("predicted", QMetaType.Type.Int, result.classes),
                PointField(
                    "predicted_name",
                    QMetaType.Type.QString,
                    [names.get(int(c), f"class {c}") for c in result.classes],
                ),
                PointField("margin", QMetaType.Type.Double, result.margins.round(4)),
                PointField(CLASS_FIELD, QMetaType.Type.Int),
            ],
        )
        feedback.pushInfo(
            f"{len(result.xs)} points suggested from {result.candidates} cells of "
            f"{result.min_distance} px; margins {result.margins.min():.3f}-"
            f"{result.margins.max():.3f}. Fill the '{CLASS_FIELD}' field, then run "
            "landcover:adapt_model."
        )
        return {self.OUTPUT: destination, self.POINTS: len(result.xs)}
