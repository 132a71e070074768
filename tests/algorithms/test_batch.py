# SPDX-License-Identifier: GPL-2.0-or-later
"""Every algorithm with optional outputs run as QGIS 3.22's batch dialog runs a row:
optional outputs left empty arrive as ``QgsProcessingOutputLayerDefinition('')``
(raster destinations) or ``''`` (files); the row's layers are then loaded by
``handleAlgorithmResults`` and the dialog lists the HTML outputs and a summary
(``BatchAlgorithmDialog.loadHTMLResults`` / ``createSummaryTable``, QGIS's own code)."""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from osgeo import gdal, ogr
from qgis.core import (
    QgsApplication,
    QgsProcessingContext,
    QgsProcessingOutputLayerDefinition,
    QgsProcessingUtils,
    QgsProject,
    QgsProperty,
    QgsSettings,
)

from qgis_landcover.core.accuracy.agreement import AGREE, DISAGREE, DISAGREEMENT_NAMES
from qgis_landcover.qgis_glue.settings import CACHE_DIR_SETTING

from ..conftest import DATA
from ..core.models.test_download import ModelServer, serve, sha
from ..core.models.test_resolve import contract_model
from ..feedback import RecordingFeedback
from ..onnx_models import contract_for, pointwise_model
from .test_sample_accuracy import LABELS, sample, write_points

LOWRES = DATA / "chesapeake_lowres_tile"
NLCD = LOWRES / "m_3907833_nw_17_1_nlcd.tif"
LC = LOWRES / "m_3907833_nw_17_1_lc.tif"
MOSAIC = DATA / "chesapeake_1m_patches" / "m_3708020_sw_17_1_2014_mosaic_naip.tif"

server = pytest.fixture(serve, name="server")


def empty_raster_output() -> QgsProcessingOutputLayerDefinition:
    """What the batch dialog passes for a raster output left empty, with "Load layers on
    completion" checked (its default)."""
    return QgsProcessingOutputLayerDefinition("", QgsProject.instance())


def raster_output(path: Path) -> QgsProcessingOutputLayerDefinition:
    return QgsProcessingOutputLayerDefinition(str(path), QgsProject.instance())


@pytest.fixture
def project_layers() -> Iterator[dict[str, Any]]:
    """The layers a batch loads into the project, by source; removed afterwards."""
    project = QgsProject.instance()
    before = set(project.mapLayers())
    added: dict[str, Any] = {}
    yield added
    project.removeMapLayers(list(set(project.mapLayers()) - before))


def run_batch(algorithm_id: str, rows: list[dict[str, Any]], loaded: dict[str, Any]) -> list[Any]:
    """Run ``rows`` as ``BatchAlgorithmDialog.runAlgorithm`` and ``finish`` do in QGIS
    3.22 and fail on any error QGIS would report; ``loaded`` receives the layers loaded
    into the project, by source."""
    from processing.core.ProcessingResults import resultsList
    from processing.gui.BatchAlgorithmDialog import BatchAlgorithmDialog
    from processing.gui.Postprocessing import handleAlgorithmResults
    from processing.tools import dataobjects

    algorithm = QgsApplication.processingRegistry().createAlgorithmById(algorithm_id)
    project = QgsProject.instance()
    done = []
    for parameters in rows:
        feedback = RecordingFeedback()
        parameters = algorithm.preprocessParameters(parameters)
        context = dataobjects.createContext(feedback)
        before = set(project.mapLayers())
        results, ok = algorithm.run(parameters, context, feedback)
        assert ok, feedback.errors
        if "showResults" in inspect.signature(handleAlgorithmResults).parameters:  # 3.22
            assert handleAlgorithmResults(algorithm, context, feedback, False, parameters)
        else:  # 3.40 and later: (alg, context, feedback, parameters)
            assert handleAlgorithmResults(algorithm, context, feedback, parameters)
        assert not feedback.errors
        for layer_id in set(project.mapLayers()) - before:
            layer = project.mapLayer(layer_id)
            loaded[layer.source()] = layer
        done.append({"parameters": parameters, "results": results})
    dialog = SimpleNamespace(algorithm=lambda: algorithm, tr=lambda text: text)
    listed = len(resultsList.results)
    try:
        for number, row in enumerate(done):
            # QGIS 3.22 raised "addResult() missing ... 'timestamp'" here for HTML outputs.
            # (renamed loadHtmlResults in later versions)
            load_html = getattr(BatchAlgorithmDialog, "loadHTMLResults", None)
            load_html = load_html or BatchAlgorithmDialog.loadHtmlResults
            load_html(dialog, row["results"], number)
        BatchAlgorithmDialog.createSummaryTable(dialog, done, [])
    finally:
        del resultsList.results[listed:]
    return [row["results"] for row in done]


def test_classify_rows_without_the_optional_rasters(
    tmp_path: Path, project_layers: dict[str, Any], landcover_provider: Any
) -> None:
    naip = tmp_path / "naip.tif"
    gdal.Translate(str(naip), str(MOSAIC), srcWin=[200, 100, 64, 48])
    model = pointwise_model(
        tmp_path / "model.onnx", np.eye(4), contract=contract_for(4, input_scale=1 / 255)
    )
    rows = [
        {
            "INPUT": str(naip),
            "MODEL": str(model),
            "DEVICE": "cpu",
            "OUTPUT": raster_output(tmp_path / f"classes{row}.tif"),
            "OUTPUT_PROBABILITIES": empty_raster_output(),
            "OUTPUT_CONFIDENCE": QgsProcessingOutputLayerDefinition(
                QgsProperty.fromValue(""), QgsProject.instance()
            ),
        }
        for row in (1, 2)
    ]
    results = run_batch("landcover:classify", rows, project_layers)
    for row, result in enumerate(results, start=1):
        assert result["OUTPUT"] == str(tmp_path / f"classes{row}.tif")
        assert "OUTPUT_PROBABILITIES" not in result and "OUTPUT_CONFIDENCE" not in result
    assert sorted(project_layers) == [str(tmp_path / f"classes{row}.tif") for row in (1, 2)]
    for layer in project_layers.values():
        assert layer.renderer().type() == "paletted"
        assert len(layer.renderer().classes()) == 4
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".tif") == [
        "classes1.tif",
        "classes2.tif",
        "naip.tif",
    ]


def test_agreement_rows_with_and_without_the_agreement_raster(
    tmp_path: Path, project_layers: dict[str, Any], landcover_provider: Any
) -> None:
    common = {"CLASSIFIED": str(LC), "REFERENCE": str(NLCD), "REFERENCE_REMAP": ""}
    rows = [
        {
            **common,
            "OUTPUT_HTML": str(tmp_path / "skipped.html"),
            "OUTPUT_JSON": "",
            "OUTPUT_CSV": "",
            "OUTPUT_DISAGREEMENT": empty_raster_output(),
        },
        {
            **common,
            "OUTPUT_HTML": str(tmp_path / "given.html"),
            "OUTPUT_JSON": str(tmp_path / "given.json"),
            "OUTPUT_CSV": "",
            "OUTPUT_DISAGREEMENT": raster_output(tmp_path / "agreement.tif"),
        },
    ]
    skipped, given = run_batch("landcover:agreement", rows, project_layers)
    assert set(skipped) == {"OUTPUT_HTML", "OVERALL_ACCURACY", "KAPPA", "MEAN_IOU"}
    assert skipped["OUTPUT_HTML"] == str(tmp_path / "skipped.html")
    assert given["OUTPUT_DISAGREEMENT"] == str(tmp_path / "agreement.tif")
    assert given["OUTPUT_JSON"] == str(tmp_path / "given.json")
    assert "OUTPUT_CSV" not in given
    # The agreement raster opens with its two classes, not the colour table's 256.
    (layer,) = project_layers.values()
    assert layer.source() == str(tmp_path / "agreement.tif")
    renderer = layer.renderer()
    assert renderer.type() == "paletted"
    assert {c.value: c.label for c in renderer.classes()} == {
        AGREE: DISAGREEMENT_NAMES[AGREE],
        DISAGREE: DISAGREEMENT_NAMES[DISAGREE],
    }


def test_agreement_raster_without_the_style_lists_the_colour_table(tmp_path: Path) -> None:
    """Why the post-processor is needed: Processing loads outputs without their default
    (``.qml``) style, and the GeoTIFF's colour table then gives 256 entries (the issue's
    black legend)."""
    from qgis_landcover.core.accuracy.agreement import assess_agreement

    assess_agreement(str(LC), str(NLCD), disagreement_path=str(tmp_path / "a.tif"))
    context = QgsProcessingContext()  # owns the layer
    layer = QgsProcessingUtils.mapLayerFromString(str(tmp_path / "a.tif"), context)
    assert len(layer.renderer().classes()) == 256


def test_sample_accuracy_row_without_json(
    tmp_path: Path, project_layers: dict[str, Any], landcover_provider: Any
) -> None:
    rows, cols = sample(5, seed=3)
    dataset = gdal.Open(str(LABELS))
    mapped = dataset.GetRasterBand(1).ReadAsArray()[rows, cols].astype(int).tolist()
    points = write_points(tmp_path / "points.gpkg", rows, cols, mapped, ogr.OFTInteger)
    (result,) = run_batch(
        "landcover:sample_accuracy",
        [
            {
                "CLASSIFIED": str(LABELS),
                "POINTS": str(points),
                "REFERENCE_FIELD": "ref",
                "OUTPUT_HTML": str(tmp_path / "report.html"),
                "OUTPUT_JSON": "",
            }
        ],
        project_layers,
    )
    assert set(result) == {"OUTPUT_HTML", "OVERALL_ACCURACY"}
    assert result["OVERALL_ACCURACY"] == pytest.approx(1.0)  # every point agrees
    assert not project_layers


def test_download_row_without_a_copy(
    tmp_path: Path, server: ModelServer, project_layers: dict[str, Any], landcover_provider: Any
) -> None:
    model_bytes = contract_model(tmp_path / "src.onnx")
    url = server.add("/unet.onnx", model_bytes)
    settings = QgsSettings()
    settings.setValue(CACHE_DIR_SETTING, str(tmp_path / "cache"))
    try:
        (result,) = run_batch(
            "landcover:download_model",
            [{"MODEL": url, "SHA256": sha(model_bytes), "OUTPUT": ""}],
            project_layers,
        )
    finally:
        settings.remove(CACHE_DIR_SETTING)
    assert set(result) == {"MODEL_PATH", "MODEL_SHA256"}
    assert Path(result["MODEL_PATH"]).read_bytes() == model_bytes
