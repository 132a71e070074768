# SPDX-License-Identifier: GPL-2.0-or-later
"""``landcover:sample_accuracy``: area-adjusted accuracy and class areas from validation
points (Olofsson et al. 2014; :mod:`qgis_landcover.core.accuracy.sample_accuracy`)."""

from __future__ import annotations

from typing import Any

import numpy as np
from qgis.core import (
    QgsCoordinateTransform,
    QgsFeatureRequest,
    QgsFeatureSource,
    QgsProcessing,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingOutputNumber,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterField,
    QgsProcessingParameterFileDestination,
    QgsWkbTypes,
)

from ..core.accuracy.reports import area_html, write_html, write_json
from ..core.accuracy.sample_accuracy import assess_sample_accuracy
from ..qgis_glue.class_parameters import (
    add_class_parameters,
    add_strata_raster,
    class_arguments,
    class_input_files,
)
from ..qgis_glue.feedback import FeedbackProgress, core_errors
from ..qgis_glue.parameters import (
    add_html_report,
    check_no_overwrite,
    feature_source,
    optional_band,
    optional_file_output,
    report_link,
    written_outputs,
)
from ..qgis_glue.raster_inputs import gdal_raster_input
from .base import LandcoverAlgorithm, Parameters, Results


def class_code(value: Any) -> int | None:
    """An attribute value as an integer class code; ``None`` for NULL; raises
    ``ValueError`` for anything that is not a whole number."""
    if value is None or (hasattr(value, "isNull") and value.isNull()):
        return None
    if isinstance(value, bool):
        raise ValueError(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("+-").isdigit():
        return int(value.strip())
    raise ValueError(value)


def point_samples(
    source: QgsFeatureSource,
    field_name: str,
    transform: QgsCoordinateTransform,
    feedback: QgsProcessingFeedback,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """x, y (in the transform's destination CRS) and the reference class of every point
    (each part of a multipoint is a sample); also the number of features skipped for a
    NULL value or an empty geometry."""
    index = source.fields().lookupField(field_name)
    if index < 0:
        raise QgsProcessingException(
            f"The points layer has no field '{field_name}'. Fields: "
            f"{', '.join(source.fields().names())}."
        )
    request = QgsFeatureRequest().setSubsetOfAttributes([index])
    xs: list[float] = []
    ys: list[float] = []
    codes: list[int] = []
    skipped = 0
    for number, feature in enumerate(source.getFeatures(request)):
        if number % 1000 == 0 and feedback.isCanceled():
            break
        try:
            code = class_code(feature.attribute(index))
        except ValueError:
            raise QgsProcessingException(
                f"Feature {feature.id()}: '{feature.attribute(index)}' in field '{field_name}' "
                "is not an integer class code."
            ) from None
        geometry = feature.geometry()
        if code is None or geometry.isNull() or geometry.isEmpty():
            skipped += 1
            continue
        geometry.transform(transform)
        points = geometry.asMultiPoint() if geometry.isMultipart() else [geometry.asPoint()]
        for point in points:
            xs.append(point.x())
            ys.append(point.y())
            codes.append(code)
    return (
        np.asarray(xs, dtype=np.float64),
        np.asarray(ys, dtype=np.float64),
        np.asarray(codes, dtype=np.int64),
        skipped,
    )


class SampleAccuracyAlgorithm(LandcoverAlgorithm):
    """Olofsson et al. (2014) area-adjusted accuracy and areas from validation points."""

    NAME = "sample_accuracy"
    DISPLAY_NAME = "Area-adjusted accuracy from validation points"
    GROUP = "Accuracy assessment"
    GROUP_ID = "accuracy"
    TAGS = (
        "accuracy",
        "accuracy assessment",
        "area-adjusted accuracy",
        "area estimation",
        "Olofsson",
        "good practices",
        "stratified sampling",
        "stratified estimator",
        "sample",
        "validation points",
        "reference points",
        "confusion matrix",
        "error matrix",
        "overall accuracy",
        "producer's accuracy",
        "user's accuracy",
        "confidence interval",
        "standard error",
        "land cover",
        "classification",
    )

    CLASSIFIED = "CLASSIFIED"
    CLASSIFIED_BAND = "CLASSIFIED_BAND"
    POINTS = "POINTS"
    REFERENCE_FIELD = "REFERENCE_FIELD"
    OUTPUT_HTML = "OUTPUT_HTML"
    OUTPUT_JSON = "OUTPUT_JSON"
    OVERALL_ACCURACY = "OVERALL_ACCURACY"

    def shortHelpString(self) -> str:
        return (
            "Estimates the accuracy of a classified raster and the area of each class from "
            "validation points whose reference class was checked (e.g. by photo "
            "interpretation), with the stratified estimators of Olofsson et al. (2014), "
            "'Good practices for estimating area and assessing accuracy of land change'.\n\n"
            "The map classes are the strata: the classified raster is counted class by class "
            "(mapped area, in map units² and hectares), each point takes the map class under "
            "it, and the sample counts are weighted by the mapped area. The report gives the "
            "area-weighted overall, user's and producer's accuracy and the estimated area of "
            "each class, each with a 95 % confidence interval.\n\n"
            "Matrix orientation: rows = classification (map), columns = reference.\n\n"
            "The points may be in any CRS. Points outside the raster, on its nodata, on an "
            "ignored class, or with a NULL reference value are skipped (and counted in the "
            "report). The sample should be a stratified random sample with at least a few "
            "points in every map class."
        )

    def initAlgorithm(self, configuration: dict[str, Any] | None = None) -> None:
        add_strata_raster(self, self.CLASSIFIED, self.CLASSIFIED_BAND, "Classified band")
        points = QgsProcessingParameterFeatureSource(
            self.POINTS, "Validation points", [QgsProcessing.SourceType.TypeVectorPoint]
        )
        points.setHelp("Point layer in any CRS, one reference class per point.")
        self.addParameter(points)
        field = QgsProcessingParameterField(
            self.REFERENCE_FIELD,
            "Reference class field",
            parentLayerParameterName=self.POINTS,
        )
        field.setHelp(
            "Field with the reference class code of each point (integers; text or decimal "
            "fields must hold whole numbers)."
        )
        self.addParameter(field)
        add_class_parameters(self)
        add_html_report(
            self,
            self.OUTPUT_HTML,
            "Area estimates with confidence intervals, accuracies, sample counts.",
        )
        output_json = QgsProcessingParameterFileDestination(
            self.OUTPUT_JSON,
            "Estimates (JSON)",
            "JSON files (*.json)",
            optional=True,
            createByDefault=False,
        )
        output_json.setHelp("Optional. Every estimate, machine-readable; undefined values null.")
        self.addParameter(output_json)
        self.addOutput(QgsProcessingOutputNumber(self.OVERALL_ACCURACY, "Area-weighted accuracy"))

    def processAlgorithm(
        self, parameters: Parameters, context: QgsProcessingContext, feedback: QgsProcessingFeedback
    ) -> Results:
        classified = gdal_raster_input(self, parameters, self.CLASSIFIED, context)
        source = feature_source(self, parameters, self.POINTS, context)
        if QgsWkbTypes.geometryType(source.wkbType()) != QgsWkbTypes.GeometryType.PointGeometry:
            raise QgsProcessingException("The validation layer must hold points.")
        field_name = self.parameterAsString(parameters, self.REFERENCE_FIELD, context)
        transform = QgsCoordinateTransform(
            source.sourceCrs(), classified.crs, context.transformContext()
        )
        xs, ys, codes, skipped = point_samples(source, field_name, transform, feedback)
        if not len(xs) and not feedback.isCanceled():
            raise QgsProcessingException(
                f"The validation layer '{source.sourceName()}' holds no points."
                if not skipped
                else f"None of the {skipped} features of '{source.sourceName()}' can be used: "
                f"each has a NULL '{field_name}' or no geometry."
            )
        if skipped:
            feedback.pushWarning(f"{skipped} features skipped: NULL '{field_name}' or no geometry.")
        html = self.parameterAsFileOutput(parameters, self.OUTPUT_HTML, context)
        json_path = optional_file_output(self, parameters, self.OUTPUT_JSON, context)
        points = self.parameterAsVectorLayer(parameters, self.POINTS, context)
        check_no_overwrite(
            self,
            [
                (self.CLASSIFIED, classified.source),
                (self.POINTS, points.source() if points is not None else None),
                *class_input_files(self, parameters, context),
            ],
            [(self.OUTPUT_HTML, html, False), (self.OUTPUT_JSON, json_path, False)],
        )

        with core_errors():
            report = assess_sample_accuracy(
                classified.source,
                xs,
                ys,
                codes,
                classified_band=optional_band(self, parameters, self.CLASSIFIED_BAND, context),
                points_description=f"{source.sourceName()}, field '{field_name}'",
                skipped_features=skipped,
                progress=FeedbackProgress(feedback),
                **class_arguments(self, parameters, context),
            )
            write_html(html, area_html(report))
            if json_path:
                write_json(json_path, report.to_json())

        overall = report.overall_accuracy
        feedback.pushInfo(
            f"{report.points.used} points used; area-weighted overall accuracy "
            f"{'undefined' if overall is None else f'{overall:.4f}'}. Report: "
            f"{report_link(html)}"
        )
        return {
            **written_outputs({self.OUTPUT_HTML: html, self.OUTPUT_JSON: json_path}),
            self.OVERALL_ACCURACY: overall,
        }
