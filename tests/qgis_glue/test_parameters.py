# SPDX-License-Identifier: GPL-2.0-or-later
"""``qgis_glue.parameters``: the extent policy, optional outputs and bands, band lists,
enums by name or index, number bounds in messages, the no-overwrite check."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from osgeo import osr
from qgis.core import (
    NULL,
    QgsCoordinateReferenceSystem,
    QgsProcessingAlgorithm,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingOutputLayerDefinition,
    QgsProcessingParameterBand,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterExtent,
    QgsProcessingParameterFile,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
    QgsProject,
    QgsProperty,
    QgsRectangle,
)

from qgis_landcover.qgis_glue.parameters import (
    EXTENT_POLICY_HELP,
    NamedEnumParameter,
    band_numbers,
    check_no_overwrite,
    enum_string,
    extent_bounds,
    is_unset,
    number_problem,
    optional_band,
    optional_file_output,
    optional_layer_output,
    written_outputs,
)

from ..conftest import DATA

Run = Callable[..., dict[str, Any]]
TILE = DATA / "chesapeake_lowres_tile"
# The tile's CRS (UTM 17N) and bounds: x 671664 - 677798, y 4366936 - 4374596.
UTM17 = QgsCoordinateReferenceSystem("EPSG:26917")


class ParametersAlgorithm(QgsProcessingAlgorithm):
    """One parameter of each kind the helpers read (declared as the algorithms do)."""

    def name(self) -> str:
        return "parameters"

    def displayName(self) -> str:
        return "Parameters"

    def createInstance(self) -> QgsProcessingAlgorithm:
        return ParametersAlgorithm()

    def initAlgorithm(self, configuration: dict[str, Any] | None = None) -> None:
        self.addParameter(QgsProcessingParameterExtent("EXTENT", "Extent", optional=True))
        self.addParameter(QgsProcessingParameterRasterLayer("INPUT", "Input"))
        self.addParameter(
            QgsProcessingParameterBand(
                "BAND", "Band", parentLayerParameterName="INPUT", optional=True
            )
        )
        self.addParameter(
            QgsProcessingParameterBand(
                "BANDS",
                "Bands",
                parentLayerParameterName="INPUT",
                optional=True,
                allowMultiple=True,
            )
        )
        self.addParameter(QgsProcessingParameterFile("CATALOGUE", "Catalogue", optional=True))
        self.addParameter(
            QgsProcessingParameterFileDestination(
                "REPORT", "Report", "HTML files (*.html)", optional=True, createByDefault=False
            )
        )
        self.addParameter(
            QgsProcessingParameterRasterDestination(
                "RASTER", "Raster", optional=True, createByDefault=False
            )
        )
        self.addParameter(NamedEnumParameter("DEVICE", "Device", ["auto", "cpu", "cuda"], "auto"))

    def processAlgorithm(self, parameters: Any, context: Any, feedback: Any) -> dict[str, Any]:
        return {}


@pytest.fixture
def algorithm() -> ParametersAlgorithm:
    algorithm = ParametersAlgorithm()
    algorithm.initAlgorithm()
    return algorithm


def bounds(algorithm: QgsProcessingAlgorithm, value: Any) -> Any:
    return extent_bounds(algorithm, {"EXTENT": value}, "EXTENT", QgsProcessingContext(), UTM17)


def transformed_bounds(xmin: float, ymin: float, xmax: float, ymax: float) -> tuple[float, ...]:
    """Independent oracle: GDAL/PROJ's transform of lon/lat bounds to UTM 17N."""
    source = osr.SpatialReference()
    source.ImportFromEPSG(4326)
    source.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    target = osr.SpatialReference()
    target.ImportFromEPSG(26917)
    transform = osr.CoordinateTransformation(source, target)
    return tuple(transform.TransformBounds(xmin, ymin, xmax, ymax, 21))


# -- the extent policy -----------------------------------------------------------------


@pytest.mark.parametrize("value", [None, "", QgsRectangle()])
def test_an_unset_extent_is_none(algorithm: ParametersAlgorithm, value: Any) -> None:
    """None, empty text and QGIS's null rectangle: the algorithm's default area."""
    assert bounds(algorithm, value) is None
    assert extent_bounds(algorithm, {}, "EXTENT", QgsProcessingContext(), UTM17) is None


@pytest.mark.parametrize(
    "value", ["672000,673000,4368000,4369500", "672000,673000,4368000,4369500 [EPSG:26917]"]
)
def test_an_extent_in_the_layer_crs_is_taken_as_it_is(
    algorithm: ParametersAlgorithm, value: str
) -> None:
    # QGIS's text order is xmin,xmax,ymin,ymax; bounds are xmin,ymin,xmax,ymax.
    assert bounds(algorithm, value) == (672000.0, 4368000.0, 673000.0, 4369500.0)


def test_an_extent_in_another_crs_is_reprojected(algorithm: ParametersAlgorithm) -> None:
    result = bounds(algorithm, "-79.02,-79.0,39.44,39.45 [EPSG:4326]")
    expected = transformed_bounds(-79.02, 39.44, -79.0, 39.45)
    assert result == pytest.approx(expected, abs=0.01)  # metres
    assert 1600 < result[2] - result[0] < 1800  # 0.02 degrees of longitude at 39.4 N


def test_an_extent_without_area_is_refused(algorithm: ParametersAlgorithm) -> None:
    with pytest.raises(
        QgsProcessingException,
        match=(
            r'^EXTENT "Extent" has no area: 674000,674000,4368000,4370000 '
            r"\(xmin,xmax,ymin,ymax in EPSG:26917\) is 0 wide and 2000 high\. Give an extent "
            r"with a width and a height, or leave it empty\.$"
        ),
    ):
        bounds(algorithm, "674000,674000,4368000,4370000 [EPSG:26917]")
    with pytest.raises(QgsProcessingException, match=r"is 1000 wide and 0 high"):
        bounds(algorithm, "672000,673000,4368000,4368000")


def test_no_area_is_judged_in_the_crs_the_extent_is_given_in(
    algorithm: ParametersAlgorithm,
) -> None:
    """A parallel of latitude, reprojected to UTM, curves: its bounding box has an area
    of sorts. The extent as given has none, and is refused all the same."""
    xmin, ymin, xmax, ymax = transformed_bounds(-79.02, 39.44, -79.0, 39.44)
    assert xmax - xmin > 1000 and ymax - ymin > 0.1
    with pytest.raises(QgsProcessingException, match=r"in EPSG:4326\) is 0\.02 wide and 0 high"):
        bounds(algorithm, "-79.02,-79.0,39.44,39.44 [EPSG:4326]")


@pytest.mark.parametrize(
    ("name", "parameters", "label"),
    [
        (
            "classify",
            {"INPUT": str(TILE / "m_3907833_nw_17_1_naip-new.tif")},
            'EXTENT "Extent"',
        ),
        (
            "agreement",
            {
                "CLASSIFIED": str(TILE / "m_3907833_nw_17_1_lc.tif"),
                "REFERENCE": str(TILE / "m_3907833_nw_17_1_lc.tif"),
            },
            'EXTENT "Compare within extent"',
        ),
    ],
)
def test_every_algorithm_refuses_an_extent_without_area(
    run_algorithm: Run, tmp_path: Path, name: str, parameters: dict[str, Any], label: str
) -> None:
    """Classify took it for no extent and classified the whole layer; agreement said the
    extent did not overlap the rasters."""
    output = tmp_path / "out"
    outputs = (
        {"OUTPUT": f"{output}.tif"} if name == "classify" else {"OUTPUT_HTML": f"{output}.html"}
    )
    with pytest.raises(QgsProcessingException, match=f"^{label} has no area: 674000,674000,"):
        run_algorithm(
            name,
            {**parameters, **outputs, "EXTENT": "674000,674000,4368000,4370000 [EPSG:26917]"},
            feedback=QgsProcessingFeedback(),
        )
    assert not list(tmp_path.iterdir())


def test_every_extent_parameter_documents_the_policy(landcover_provider: Any) -> None:
    extents = [
        (algorithm.id(), definition)
        for algorithm in landcover_provider.algorithms()
        for definition in algorithm.parameterDefinitions()
        if isinstance(definition, QgsProcessingParameterExtent)
    ]
    assert {name for name, _ in extents} >= {"landcover:classify", "landcover:agreement"}
    for _, definition in extents:
        assert definition.help().endswith(EXTENT_POLICY_HELP)


# -- optional outputs and bands ----------------------------------------------------------


@pytest.mark.parametrize("value", [None, ""])
def test_skipped_optional_values_are_none(algorithm: ParametersAlgorithm, value: Any) -> None:
    context = QgsProcessingContext()
    for name in ("REPORT", "RASTER", "BAND"):
        parameters = {name: value}
        assert optional_file_output(algorithm, parameters, "REPORT", context) is None
        assert optional_layer_output(algorithm, parameters, "RASTER", context) is None
        assert optional_band(algorithm, parameters, "BAND", context) is None
    assert optional_file_output(algorithm, {}, "REPORT", context) is None


def test_given_optional_values(algorithm: ParametersAlgorithm, tmp_path: Path) -> None:
    context = QgsProcessingContext()
    parameters = {"REPORT": str(tmp_path / "r.html"), "RASTER": str(tmp_path / "r.tif"), "BAND": 3}
    assert optional_file_output(algorithm, parameters, "REPORT", context) == str(
        tmp_path / "r.html"
    )
    assert optional_layer_output(algorithm, parameters, "RASTER", context) == str(
        tmp_path / "r.tif"
    )
    assert optional_band(algorithm, parameters, "BAND", context) == 3
    assert optional_band(algorithm, {"BAND": 0}, "BAND", context) is None  # QGIS's "no band"


def empty_outputs() -> list[Any]:
    """A skipped optional output as the dialogs, batch rows and models pass it."""
    project = QgsProject.instance()
    return [
        None,
        "",
        "  ",
        NULL,
        QgsProperty(),
        QgsProperty.fromValue(""),
        QgsProperty.fromExpression("''"),
        QgsProcessingOutputLayerDefinition("", project),
        QgsProcessingOutputLayerDefinition(QgsProperty.fromValue(""), project),
        QgsProcessingOutputLayerDefinition(QgsProperty.fromExpression("NULL"), project),
    ]


@pytest.mark.parametrize("index", range(len(empty_outputs())))
def test_empty_output_definitions_are_skipped_and_not_loaded(
    algorithm: ParametersAlgorithm, index: int
) -> None:
    value = empty_outputs()[index]
    context = QgsProcessingContext()
    assert is_unset(value, context)
    assert optional_layer_output(algorithm, {"RASTER": value}, "RASTER", context) is None
    assert optional_file_output(algorithm, {"REPORT": value}, "REPORT", context) is None
    # Reading it with parameterAsOutputLayer would have queued '' as a layer to load.
    assert not context.layersToLoadOnCompletion()


def test_given_output_definitions_are_read(algorithm: ParametersAlgorithm, tmp_path: Path) -> None:
    context = QgsProcessingContext()
    path = str(tmp_path / "r.tif")
    for value in (
        QgsProcessingOutputLayerDefinition(path, QgsProject.instance()),
        QgsProcessingOutputLayerDefinition(QgsProperty.fromValue(path), QgsProject.instance()),
        QgsProperty.fromExpression(f"'{tmp_path}' || '/r.tif'"),
    ):
        assert not is_unset(value, context)
        assert optional_layer_output(algorithm, {"RASTER": value}, "RASTER", context) == path
    assert list(context.layersToLoadOnCompletion()) == [path]
    # Without a context an expression cannot be evaluated: it counts as given.
    assert not is_unset(QgsProperty.fromExpression("''"))


def test_written_outputs_leave_out_skipped_ones() -> None:
    assert written_outputs({"A": "a.tif", "B": None, "C": ""}) == {"A": "a.tif"}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("4,1,2,3", [4, 1, 2, 3]),
        ("4;1 2, 3", [4, 1, 2, 3]),
        (["4", "1"], [4, 1]),
        ([3, 2], [3, 2]),
        ("", None),
        (None, None),
        ([], None),
    ],
)
def test_band_numbers(algorithm: ParametersAlgorithm, value: Any, expected: Any) -> None:
    assert band_numbers(algorithm, {"BANDS": value}, "BANDS", QgsProcessingContext()) == expected


@pytest.mark.parametrize("value", ["1,0", "1,x", "-1"])
def test_band_numbers_refuse_what_is_no_band(algorithm: ParametersAlgorithm, value: str) -> None:
    with pytest.raises(QgsProcessingException, match=r"^BANDS: '.*' is not a band number"):
        band_numbers(algorithm, {"BANDS": value}, "BANDS", QgsProcessingContext())


# -- enums and numbers ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "name"), [("cuda", "cuda"), ("CPU", "cpu"), (2, "cuda"), ("1", "cpu"), (0.0, "auto")]
)
def test_enum_by_name_or_index(algorithm: ParametersAlgorithm, value: Any, name: str) -> None:
    context = QgsProcessingContext()
    definition = algorithm.parameterDefinition("DEVICE")
    assert definition.option_name(value) == name
    assert definition.checkValueIsAcceptable(value, context)
    assert definition.clone().checkValueIsAcceptable(value, context)
    assert enum_string(algorithm, {"DEVICE": value}, "DEVICE", context) == name


def test_enum_clone_keeps_default_help_and_flags(algorithm: ParametersAlgorithm) -> None:
    """QGIS clones definitions when it copies an algorithm (e.g. in the modeler)."""
    definition = algorithm.parameterDefinition("DEVICE")
    definition.setHelp("Where the model runs.")
    definition.setFlags(definition.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
    copy = definition.clone()
    assert isinstance(copy, NamedEnumParameter)
    assert (copy.name(), copy.description(), copy.options()) == (
        "DEVICE",
        "Device",
        ["auto", "cpu", "cuda"],
    )
    assert (copy.defaultValue(), copy.help(), copy.flags()) == (
        "auto",
        "Where the model runs.",
        definition.flags(),
    )
    assert copy.usesStaticStrings()


@pytest.mark.parametrize("value", ["3", -1, "gpu", True])
def test_enum_refuses_other_values(algorithm: ParametersAlgorithm, value: Any) -> None:
    definition = algorithm.parameterDefinition("DEVICE")
    assert definition.option_name(value) is None
    assert not definition.checkValueIsAcceptable(value, QgsProcessingContext())


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (10, ""),
        ("50", ""),
        ("", ""),
        (None, ""),
        (True, ""),
        (51, "must be at least 0 and at most 50; got 51."),
        ("-0.5", "must be at least 0 and at most 50; got -0.5."),
        ("abc", "must be a number; got 'abc'."),
    ],
)
def test_number_problems_name_the_range(value: Any, problem: str) -> None:
    bounded = QgsProcessingParameterNumber(
        "OVERLAP", "Overlap", QgsProcessingParameterNumber.Double, minValue=0, maxValue=50
    )
    assert number_problem(bounded, value) == problem


def test_number_problem_with_one_bound() -> None:
    at_least = QgsProcessingParameterNumber(
        "BATCH_SIZE", "Batch", QgsProcessingParameterNumber.Integer, minValue=0
    )
    assert number_problem(at_least, -1) == "must be at least 0; got -1."
    assert number_problem(at_least, 10**9) == ""


# -- the no-overwrite check ------------------------------------------------------------


def test_an_output_over_an_input_is_refused_naming_both(
    algorithm: ParametersAlgorithm, tmp_path: Path
) -> None:
    catalogue = tmp_path / "catalogue.json"
    catalogue.write_text("{}")
    with pytest.raises(QgsProcessingException) as raised:
        check_no_overwrite(
            algorithm, [("CATALOGUE", str(catalogue))], [("REPORT", str(catalogue), False)]
        )
    message = str(raised.value)
    assert 'REPORT "Report"' in message and 'CATALOGUE "Catalogue"' in message
    assert catalogue.read_text() == "{}"
    # Skipped outputs and other files pass.
    check_no_overwrite(
        algorithm,
        [("CATALOGUE", str(catalogue))],
        [("REPORT", None, False), ("RASTER", str(tmp_path / "r.tif"), True)],
    )
