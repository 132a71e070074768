# SPDX-License-Identifier: GPL-2.0-or-later
"""``landcover:agreement`` through ``processing.run`` and ``qgis_process`` on real
Chesapeake rasters."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from osgeo import gdal, osr
from qgis.core import QgsApplication, QgsProcessingException, QgsProcessingOutputNumber
from sklearn.metrics import cohen_kappa_score, confusion_matrix

from ..conftest import DATA, qgis_process_json

Run = Callable[..., dict[str, Any]]

LOWRES = DATA / "chesapeake_lowres_tile"
NLCD = LOWRES / "m_3907833_nw_17_1_nlcd.tif"
LC = LOWRES / "m_3907833_nw_17_1_lc.tif"
LABELS = DATA / "chesapeake_1m_patches" / "m_3708020_sw_17_1_2014_mosaic_labels.tif"
NAIP = DATA / "chesapeake_1m_patches" / "m_3708020_sw_17_1_2014_mosaic_naip.tif"
# NLCD 2011 classes onto the Chesapeake 7-class codes (road and other impervious as 5).
NLCD_REMAP = "11:1,21:3,22:5,23:5,24:5,31:4,41:2,42:2,43:2,52:3,71:3,81:3,82:3,90:2,95:3"


def read(path: Path | str, band: int = 1) -> np.ndarray:
    dataset = gdal.Open(str(path))  # kept alive while its band is read
    return dataset.GetRasterBand(band).ReadAsArray()


def nlcd_oracle() -> tuple[np.ndarray, np.ndarray]:
    """NLCD remapped and the Chesapeake labels (6 -> 5), pixel for pixel."""
    remap = dict(tuple(map(int, pair.split(":"))) for pair in NLCD_REMAP.split(","))
    nlcd = np.vectorize(lambda v: remap.get(int(v), int(v)))(read(NLCD))
    labels = read(LC)
    return nlcd.ravel(), np.where(labels == 6, 5, labels).ravel()


def test_numbers_are_number_outputs(landcover_provider: Any) -> None:
    algorithm = QgsApplication.processingRegistry().algorithmById("landcover:agreement")
    assert algorithm.group() == "Accuracy assessment" and algorithm.groupId() == "accuracy"
    for name in ("OVERALL_ACCURACY", "KAPPA", "MEAN_IOU"):
        assert isinstance(algorithm.outputDefinition(name), QgsProcessingOutputNumber)
    for parameter in algorithm.parameterDefinitions():
        assert parameter.help(), parameter.name()


def test_nlcd_against_chesapeake_in_process(run_algorithm: Run, tmp_path: Path) -> None:
    outputs = {
        "OUTPUT_HTML": str(tmp_path / "report.html"),
        "OUTPUT_JSON": str(tmp_path / "report.json"),
        "OUTPUT_CSV": str(tmp_path / "matrix.csv"),
        "OUTPUT_DISAGREEMENT": str(tmp_path / "agreement.tif"),
    }
    results = run_algorithm(
        "agreement",
        {
            "CLASSIFIED": str(NLCD),
            "REFERENCE": str(LC),
            "CLASSIFIED_REMAP": NLCD_REMAP,
            "REFERENCE_REMAP": "6:5",
            "CLASS_NAMES": "1:water,2:tree canopy,3:low vegetation,4:barren,5:impervious",
            **outputs,
        },
    )
    predicted, reference = nlcd_oracle()
    classes = sorted(set(predicted) | set(reference))
    report = json.loads(Path(outputs["OUTPUT_JSON"]).read_text(encoding="utf-8"))
    assert report["classes"] == classes
    np.testing.assert_array_equal(
        report["matrix"], confusion_matrix(predicted, reference, labels=classes)
    )
    assert results["OVERALL_ACCURACY"] == pytest.approx(np.mean(predicted == reference))
    assert results["KAPPA"] == pytest.approx(cohen_kappa_score(predicted, reference))
    assert results["MEAN_IOU"] == pytest.approx(report["mean_iou"])
    assert report["class_names"][4] == "impervious"
    for key, path in outputs.items():
        assert results[key] == path and Path(path).exists(), key
    with Path(outputs["OUTPUT_CSV"]).open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    assert rows[-1][-1] == str(predicted.size)
    html = Path(outputs["OUTPUT_HTML"]).read_text(encoding="utf-8")
    assert "rows = classification (map), columns = reference" in html
    agreement = read(outputs["OUTPUT_DISAGREEMENT"])
    np.testing.assert_array_equal(agreement.ravel(), np.where(predicted == reference, 1, 2))


def test_reference_in_another_crs_and_extent_in_another_crs(
    run_algorithm: Run, tmp_path: Path
) -> None:
    warped = tmp_path / "labels_4326.tif"
    gdal.Warp(str(warped), str(LABELS), dstSRS="EPSG:4326", xRes=2.2e-5, yRes=1.8e-5)
    # An extent in EPSG:4326 around the middle of the mosaic (EPSG:26917).
    utm, geographic = osr.SpatialReference(), osr.SpatialReference()
    utm.ImportFromEPSG(26917)
    geographic.ImportFromEPSG(4326)
    geographic.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    lon, lat, _ = osr.CoordinateTransformation(utm, geographic).TransformPoint(580512, 4099744)
    extent = f"{lon - 0.001},{lon + 0.001},{lat - 0.001},{lat + 0.001} [EPSG:4326]"
    results = run_algorithm(
        "agreement",
        {
            "CLASSIFIED": str(LABELS),
            "REFERENCE": str(warped),
            "EXTENT": extent,
            "OUTPUT_HTML": str(tmp_path / "report.html"),
            "OUTPUT_JSON": str(tmp_path / "report.json"),
        },
    )
    report = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    assert report["inputs"]["reference_resampled"] is True
    assert 0.9 < results["OVERALL_ACCURACY"] <= 1.0
    # The extent is reprojected to the classified CRS and limits the comparison.
    box = osr.CoordinateTransformation(geographic, utm).TransformBounds(
        lon - 0.001, lat - 0.001, lon + 0.001, lat + 0.001, 21
    )
    expected_pixels = (box[2] - box[0]) * (box[3] - box[1])
    assert report["compared_pixels"] == pytest.approx(expected_pixels, rel=0.02)


def test_qgis_process_json(tmp_path: Path) -> None:
    html = tmp_path / "report.html"
    result = qgis_process_json(
        "run",
        "landcover:agreement",
        "--",
        f"CLASSIFIED={NLCD}",
        f"REFERENCE={LC}",
        f"CLASSIFIED_REMAP={NLCD_REMAP}",
        "REFERENCE_REMAP=6:5",
        f"OUTPUT_HTML={html}",
    )
    predicted, reference = nlcd_oracle()
    outputs = result["results"]
    assert outputs["OVERALL_ACCURACY"] == pytest.approx(np.mean(predicted == reference))
    assert outputs["KAPPA"] == pytest.approx(cohen_kappa_score(predicted, reference))
    assert outputs["OUTPUT_HTML"] == str(html) and html.exists()


def _expect_failure(run_algorithm: Run, parameters: dict[str, Any], message: str) -> None:
    with pytest.raises(QgsProcessingException, match=message):
        run_algorithm("agreement", parameters)


def test_bad_inputs_write_nothing(run_algorithm: Run, tmp_path: Path) -> None:
    outputs = {
        "OUTPUT_HTML": str(tmp_path / "report.html"),
        "OUTPUT_JSON": str(tmp_path / "report.json"),
        "OUTPUT_DISAGREEMENT": str(tmp_path / "agreement.tif"),
    }
    far = tmp_path / "far.tif"
    gdal.Translate(str(far), str(LABELS), outputBounds=[680000, 4100000, 681024, 4099488])
    _expect_failure(
        run_algorithm, {"CLASSIFIED": str(LABELS), "REFERENCE": str(far), **outputs}, "overlap"
    )
    _expect_failure(
        run_algorithm,
        {"CLASSIFIED": str(NAIP), "REFERENCE": str(LABELS), **outputs},
        "4 bands: choose the band",
    )
    _expect_failure(
        run_algorithm,
        {
            "CLASSIFIED": str(NLCD),
            "REFERENCE": str(LC),
            "CLASSIFIED_REMAP": "11:1,21;3",
            **outputs,
        },
        "'21'",
    )
    floats = tmp_path / "float.tif"
    gdal.Translate(str(floats), str(LABELS), outputType=gdal.GDT_Float32)
    _expect_failure(
        run_algorithm,
        {"CLASSIFIED": str(floats), "REFERENCE": str(LABELS), **outputs},
        "Float32 values",
    )
    _expect_failure(
        run_algorithm,
        {"CLASSIFIED": str(tmp_path / "missing.tif"), "REFERENCE": str(LABELS), **outputs},
        "CLASSIFIED",
    )
    _expect_failure(
        run_algorithm,
        {"CLASSIFIED": str(LABELS), "REFERENCE": str(LABELS), "CLASS_NAMES": "1:A,2:B", **outputs},
        r"2 class names given \(for 1, 2\), but the comparison has 3 classes",
    )
    _expect_failure(
        run_algorithm,
        {"CLASSIFIED": str(LABELS), "REFERENCE": str(LABELS), "CLASS_NAMES": "A,B", **outputs},
        r"'A' is not a 'value:name' pair \(expected e\.g\. '1:Water,2:Tree canopy'\)",
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["far.tif", "float.tif"]


def test_all_pixels_ignored_reports_zero_observations(run_algorithm: Run, tmp_path: Path) -> None:
    results = run_algorithm(
        "agreement",
        {
            "CLASSIFIED": str(LABELS),
            "REFERENCE": str(LABELS),
            "IGNORE_VALUES": "2, 3, 5",
            "OUTPUT_HTML": str(tmp_path / "report.html"),
        },
    )
    assert results["OVERALL_ACCURACY"] is None
    assert results["KAPPA"] is None
    assert "Zero observations" in (tmp_path / "report.html").read_text(encoding="utf-8")


def test_ignore_none_counts_class_zero(run_algorithm: Run, tmp_path: Path) -> None:
    labels = read(LC)
    zeros = labels.copy()
    zeros[:10] = 0  # no nodata declared: 0 is a class once nothing is ignored
    path = tmp_path / "zeros.tif"
    driver = gdal.GetDriverByName("GTiff")
    copy = driver.CreateCopy(str(path), gdal.Open(str(LC)))
    copy.GetRasterBand(1).WriteArray(zeros)
    copy = None
    counted = run_algorithm(
        "agreement",
        {
            "CLASSIFIED": str(path),
            "REFERENCE": str(LC),
            "IGNORE_VALUES": "none",
            "OUTPUT_HTML": str(tmp_path / "a.html"),
        },
    )
    default = run_algorithm(
        "agreement",
        {"CLASSIFIED": str(path), "REFERENCE": str(LC), "OUTPUT_HTML": str(tmp_path / "b.html")},
    )
    assert counted["OVERALL_ACCURACY"] == pytest.approx(np.mean(zeros == labels))
    assert default["OVERALL_ACCURACY"] == 1.0


def test_each_side_has_its_own_nodata(run_algorithm: Run, tmp_path: Path) -> None:
    from ..core.accuracy.test_agreement import (
        OWN_NODATA_AGREEMENT,
        OWN_NODATA_CLASSIFIED,
        OWN_NODATA_MATRIX,
        OWN_NODATA_REFERENCE,
        write_grid,
    )

    outputs = {
        "OUTPUT_HTML": str(tmp_path / "report.html"),
        "OUTPUT_JSON": str(tmp_path / "report.json"),
        "OUTPUT_DISAGREEMENT": str(tmp_path / "agreement.tif"),
    }
    results = run_algorithm(
        "agreement",
        {
            "CLASSIFIED": str(write_grid(tmp_path / "c.tif", OWN_NODATA_CLASSIFIED, nodata=4)),
            "REFERENCE": str(write_grid(tmp_path / "r.tif", OWN_NODATA_REFERENCE, nodata=3)),
            "IGNORE_VALUES": "none",  # nodata is left out all the same
            **outputs,
        },
    )
    report = json.loads(Path(outputs["OUTPUT_JSON"]).read_text(encoding="utf-8"))
    assert report["classes"] == [1, 2, 3, 4]
    assert report["matrix"] == OWN_NODATA_MATRIX
    assert report["ignored_pixels"] == 6
    assert results["OVERALL_ACCURACY"] == 0.5
    np.testing.assert_array_equal(read(outputs["OUTPUT_DISAGREEMENT"]), OWN_NODATA_AGREEMENT)
