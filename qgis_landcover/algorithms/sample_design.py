# SPDX-License-Identifier: GPL-2.0-or-later
"""``landcover:sample_design``: a stratified random sample of a classified raster for
its accuracy assessment (Olofsson et al. 2014;
:mod:`qgis_landcover.core.sampling.design`), as a point layer whose reference field the
user fills and ``landcover:sample_accuracy`` reads."""

from __future__ import annotations

from typing import Any

from qgis.core import (
    QgsProcessing,
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProcessingOutputNumber,
    QgsProcessingParameterFeatureSink,
    QgsProcessingParameterString,
)
from qgis.PyQt.QtCore import QMetaType

from ..core.accuracy.remap import parse_class_names, parse_values
from ..core.sampling.design import (
    DEFAULT_MIN_PER_CLASS,
    DEFAULT_TARGET_STANDARD_ERROR,
    DEFAULT_USERS_ACCURACY,
    design_sample,
    parse_expected_accuracies,
)
from ..qgis_glue.class_parameters import add_strata_raster
from ..qgis_glue.feedback import FeedbackProgress, core_errors
from ..qgis_glue.parameters import (
    add_advanced,
    check_no_overwrite,
    number_parameter,
    optional_band,
    with_help,
)
from ..qgis_glue.point_output import PointField, sink_destination, write_points
from ..qgis_glue.raster_inputs import gdal_raster_input
from .base import LandcoverAlgorithm, Parameters, Results

REFERENCE_FIELD = "reference"
"""The field the user fills with the reference class (``landcover:sample_accuracy``'s
REFERENCE_FIELD)."""


class SampleDesignAlgorithm(LandcoverAlgorithm):
    """Stratified random validation points for a classified raster."""

    NAME = "sample_design"
    DISPLAY_NAME = "Sample design for accuracy assessment"
    GROUP = "Accuracy assessment"
    GROUP_ID = "accuracy"

    INPUT = "INPUT"
    INPUT_BAND = "INPUT_BAND"
    EXPECTED_USER_ACCURACY = "EXPECTED_USER_ACCURACY"
    TARGET_STANDARD_ERROR = "TARGET_STANDARD_ERROR"
    MIN_PER_CLASS = "MIN_PER_CLASS"
    SAMPLE_SIZE = "SAMPLE_SIZE"
    SEED = "SEED"
    IGNORE_VALUES = "IGNORE_VALUES"
    CLASS_NAMES = "CLASS_NAMES"
    OUTPUT = "OUTPUT"
    POINTS = "POINTS"
    SEED_USED = "SEED_USED"
    EXPECTED_STANDARD_ERROR = "EXPECTED_STANDARD_ERROR"

    TAGS = (
        "accuracy",
        "validation",
        "sample",
        "sampling",
        "stratified",
        "random",
        "points",
        "Olofsson",
        "Cochran",
        "sample size",
        "reference",
        "land cover",
    )

    def shortHelpString(self) -> str:
        return (
            "Draws a stratified random sample of validation points from a classified raster, "
            "following Olofsson et al. (2014), 'Good practices for estimating area and "
            "assessing accuracy of land change' (section 5.1). The map classes are the "
            "strata.\n\n"
            "Sample size: n = (Σ W_i S_i / S(O))², where W_i is the share of the map in "
            "class i, S_i = √(U_i (1 − U_i)) with U_i the user's accuracy you expect for the "
            "class, and S(O) the standard error of the overall accuracy you aim at. "
            "Allocation: every class whose proportional share would be below the minimum "
            "per class gets the minimum (Olofsson et al. suggest 50-100 for rare classes); "
            "the others share the rest in proportion to their area.\n\n"
            "Each point is the centre of a pixel drawn at random, without replacement, "
            "within its class; nodata and ignored values are never drawn. The same raster, "
            "parameters and seed give the same points. The points come in random order, "
            "with their map class and an empty 'reference' field: fill it with the class "
            "you see on the ground or on better imagery (ideally without looking at the map "
            "class), then run 'Area-adjusted accuracy from validation points' "
            "(landcover:sample_accuracy) with REFERENCE_FIELD=reference for area-weighted "
            "accuracies and class areas with confidence intervals.\n\n"
            "The log lists the sample size, the allocation and the standard error of the "
            "overall accuracy the allocation gives if the expected accuracies hold."
        )

    def initAlgorithm(self, configuration: dict[str, Any] | None = None) -> None:
        add_strata_raster(self, self.INPUT, self.INPUT_BAND, "Classified raster: band")
        expected = with_help(
            QgsProcessingParameterString(
                self.EXPECTED_USER_ACCURACY,
                "Expected user's accuracy",
                defaultValue=f"{DEFAULT_USERS_ACCURACY:g}",
            ),
            "The user's accuracy you expect for each class (0-1], which sets the sample "
            "size: one value for every class (e.g. 0.85), 'class:accuracy' pairs (e.g. "
            "'1:0.9,2:0.7,3:0.6'; then list every mapped class) or both (e.g. '0.9,3:0.6': "
            "0.6 for class 3, 0.9 for the others). Lower guesses for classes often confused.",
        )
        self.addParameter(expected)
        self.addParameter(
            number_parameter(
                self.TARGET_STANDARD_ERROR,
                "Target standard error",
                "S(O), as a proportion: 0.01 gives a 95 % confidence interval of about ±2 "
                "percentage points. Halving it quadruples the sample.",
                integer=False,
                default=DEFAULT_TARGET_STANDARD_ERROR,
                minimum=0.0001,
                maximum=0.4999,
            )
        )
        self.addParameter(
            number_parameter(
                self.MIN_PER_CLASS,
                "Minimum points per class",
                "Classes whose share of the sample would be smaller get this many points (a "
                "class with fewer pixels gets all of them); 0: allocation in proportion to "
                "area.",
                integer=True,
                default=DEFAULT_MIN_PER_CLASS,
                minimum=0,
            )
        )
        self.addParameter(
            number_parameter(
                self.SEED,
                "Random seed",
                "The same seed gives the same points. Empty: a new seed, written to the log "
                "and returned as SEED_USED so the design can be repeated.",
                integer=True,
                optional=True,
                minimum=0,
            )
        )
        size = number_parameter(
            self.SAMPLE_SIZE,
            "Sample size (0: formula)",
            "0: the size from the expected accuracies and the target standard error. A "
            "number: that many points (e.g. what the budget allows), allocated the same way.",
            integer=True,
            default=0,
            minimum=0,
        )
        ignore = with_help(
            QgsProcessingParameterString(
                self.IGNORE_VALUES, "Ignore values", defaultValue="0", optional=True
            ),
            "Class values never sampled, e.g. '0, 15' (as landcover:sample_accuracy ignores "
            "them). The raster's nodata value is never sampled in any case.",
        )
        names = with_help(
            QgsProcessingParameterString(self.CLASS_NAMES, "Class names", optional=True),
            "Optional 'value:name' pairs (e.g. '1:Water,2:Tree canopy') or a .csv / .json "
            "file, for the 'map_name' field. Default: the raster's category names.",
        )
        add_advanced(self, (size, ignore, names))
        output = QgsProcessingParameterFeatureSink(
            self.OUTPUT, "Validation points", QgsProcessing.SourceType.TypeVectorPoint
        )
        output.setHelp(
            "Points at pixel centres in the raster's CRS, with fields 'id', 'map_class', "
            "'map_name', 'stratum_weight' (the class's share of the map) and 'reference' "
            "(empty, for you to fill)."
        )
        self.addParameter(output)
        self.addOutput(QgsProcessingOutputNumber(self.POINTS, "Points drawn"))
        self.addOutput(QgsProcessingOutputNumber(self.SEED_USED, "Random seed used"))
        self.addOutput(
            QgsProcessingOutputNumber(
                self.EXPECTED_STANDARD_ERROR,
                "Expected standard error",
            )
        )

    def processAlgorithm(
        self, parameters: Parameters, context: QgsProcessingContext, feedback: QgsProcessingFeedback
    ) -> Results:
        classified = gdal_raster_input(self, parameters, self.INPUT, context)
        seed_value = parameters.get(self.SEED)
        seed = (
            None
            if seed_value in (None, "")
            else self.parameterAsInt(parameters, self.SEED, context)
        )
        size = self.parameterAsInt(parameters, self.SAMPLE_SIZE, context)
        check_no_overwrite(
            self,
            [(self.INPUT, classified.source)],
            [(self.OUTPUT, sink_destination(self, parameters, self.OUTPUT, context), False)],
        )
        with core_errors():
            names = parse_class_names(self.parameterAsString(parameters, self.CLASS_NAMES, context))
            design = design_sample(
                classified.source,
                classified_band=optional_band(self, parameters, self.INPUT_BAND, context),
                expected_accuracies=parse_expected_accuracies(
                    self.parameterAsString(parameters, self.EXPECTED_USER_ACCURACY, context)
                ),
                target_standard_error=self.parameterAsDouble(
                    parameters, self.TARGET_STANDARD_ERROR, context
                ),
                min_per_class=self.parameterAsInt(parameters, self.MIN_PER_CLASS, context),
                total=size or None,
                seed=seed,
                ignore_values=parse_values(
                    self.parameterAsString(parameters, self.IGNORE_VALUES, context)
                ),
                class_names=names,
                progress=FeedbackProgress(feedback),
            )
        strata = {s.value: s for s in design.strata}
        destination = write_points(
            self,
            parameters,
            self.OUTPUT,
            context,
            classified.crs,
            design.xs,
            design.ys,
            [
                PointField("id", QMetaType.Type.Int, range(1, design.total + 1)),
                PointField("map_class", QMetaType.Type.Int, design.map_classes),
                PointField(
                    "map_name", QMetaType.Type.QString, [strata[c].name for c in design.map_classes]
                ),
                PointField(
                    "stratum_weight",
                    QMetaType.Type.Double,
                    [strata[c].weight for c in design.map_classes],
                ),
                PointField(REFERENCE_FIELD, QMetaType.Type.Int),
            ],
        )
        for stratum in design.strata:
            feedback.pushInfo(
                f"{stratum.value} {stratum.name}: {stratum.mapped_pixels} pixels "
                f"(W = {stratum.weight:.4f}), expected user's accuracy "
                f"{stratum.expected_users_accuracy:g}, proportional share "
                f"{stratum.proportional:.1f}, {stratum.drawn} points."
            )
        expected = design.expected_standard_error
        feedback.pushInfo(
            f"{design.total} points (seed {design.seed}); expected standard error of the "
            f"overall accuracy {'n/a' if expected is None else f'{expected:.4f}'} "
            f"(target {design.target_standard_error:g})."
        )
        return {
            self.OUTPUT: destination,
            self.POINTS: design.total,
            self.SEED_USED: design.seed,
            self.EXPECTED_STANDARD_ERROR: expected,
        }
