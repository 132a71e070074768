# SPDX-License-Identifier: GPL-2.0-or-later
"""``model_training.release.evaluate_models``: models scored through ``landcover:classify`` +
``landcover:agreement`` (``qgis_process``) on exactly the held-out window's pixels."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal

from model_training.release import evaluate_models
from qgis_landcover.core.raster.grid import Window
from qgis_landcover.core.raster.reading import open_raster, raster_grid

from ...conftest import ROOT

MODEL = ROOT / "qgis_landcover" / "models" / "azure_2018_unet.onnx"


def test_window_extent_is_the_window_in_map_units() -> None:
    grid = raster_grid(open_raster(evaluate_models.LABELS))
    x0, dx, _, y0, _, dy = grid.geotransform
    text = evaluate_models.window_extent(evaluate_models.LABELS, Window(768, 0, 256, 512))
    numbers, crs = text.split(" [")
    xmin, xmax, ymin, ymax = (float(v) for v in numbers.split(","))
    assert (xmin, xmax) == pytest.approx((x0 + 768 * dx, x0 + 1024 * dx))
    assert (ymin, ymax) == pytest.approx((y0 + 512 * dy, y0))
    assert crs == "EPSG:26917]"


@pytest.mark.slow
def test_evaluation_scores_exactly_the_window(tmp_path: Path) -> None:
    window = Window(832, 64, 128, 128)  # the centre of held-out patch 3
    evaluation = evaluate_models.evaluate("converted", str(MODEL), tmp_path, window=window)
    statistics = evaluation.report.statistics

    # Oracle: count the same pixels with numpy from the two rasters.
    labels = gdal.Open(str(evaluate_models.LABELS)).ReadAsArray(832, 64, 128, 128)
    labels = np.where(np.isin(labels, (5, 6)), 4, labels)
    classified = gdal.Open(str(evaluation.classified)).ReadAsArray()
    assert classified.shape == labels.shape
    valid = (labels >= 1) & (labels <= 4)
    assert statistics.observations == int(valid.sum())
    accuracy = float(np.mean(classified[valid] == labels[valid]))
    assert statistics.overall_accuracy == pytest.approx(accuracy)
    # The converted model's documented score on this patch centre (0.858).
    assert statistics.overall_accuracy == pytest.approx(0.858, abs=0.02)

    report = evaluate_models.report_json(
        [evaluation], evaluate_models.MOSAIC, evaluate_models.LABELS, window
    )
    assert report["window"] == [832, 64, 128, 128]
    # report.json holds the whole agreement report of each model, as the plugin wrote it.
    written = json.loads((tmp_path / "converted_agreement.json").read_text(encoding="utf-8"))
    assert report["models"]["converted"] == {
        "model": str(MODEL.relative_to(ROOT)),
        "classify_seconds": round(evaluation.classify_seconds, 2),
        **written,
    }
    table = evaluate_models.report_markdown(report)
    assert f"| converted | {statistics.overall_accuracy:.4f} |" in table
