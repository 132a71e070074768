# SPDX-License-Identifier: GPL-2.0-or-later
"""No algorithm writes over, or beside, a file it reads.

Each algorithm runs on inputs copied into a folder of their own, in-process and through
``qgis_process``: afterwards the folder holds exactly the files it held, byte for byte
(no ``.aux.xml`` statistics beside an input, no rewritten VRT). Every output that would
overwrite an input (a VRT's source, the GeoPackage behind a layer URI, a remap table, a
catalogue) is refused with a message naming both, and the input is left as it was.
"""

from __future__ import annotations

import gc
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from osgeo import gdal, ogr, osr
from qgis.core import QgsProcessingException

from qgis_landcover.core.inference.session import clear_session_cache

from ..conftest import DATA, qgis_process_json, run_qgis_process
from ..onnx_models import contract_for, pointwise_model

Run = Callable[..., dict[str, Any]]

NAIP = DATA / "chesapeake_1m_patches" / "m_3708020_sw_17_1_2014_mosaic_naip.tif"
LABELS = DATA / "chesapeake_1m_patches" / "m_3708020_sw_17_1_2014_mosaic_labels.tif"
LOWRES = DATA / "chesapeake_lowres_tile"
NLCD_REMAP = "11:1,21:3,22:5,23:5,24:5,31:4,41:2,42:2,43:2,52:3,71:3,81:3,82:3,90:2,95:3"


@pytest.fixture(autouse=True)
def fresh_sessions() -> None:
    clear_session_cache()


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` with its bytes, after QGIS has closed what it opened
    (GDAL writes ``.aux.xml`` files and VRTs when a dataset is closed)."""
    gc.collect()
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    return {str(p.relative_to(folder)): p.read_bytes() for p in files}


@pytest.fixture
def imagery(tmp_path: Path) -> Path:
    """``inputs/`` with a NAIP crop, a VRT mosaic of it (relative source) and a model."""
    folder = tmp_path / "inputs"
    (folder / "tiles").mkdir(parents=True)
    gdal.Translate(str(folder / "tiles" / "naip.tif"), str(NAIP), srcWin=[200, 100, 96, 96])
    gdal.BuildVRT(str(folder / "mosaic.vrt"), [str(folder / "tiles" / "naip.tif")])
    assert 'relativeToVRT="1">tiles/naip.tif' in (folder / "mosaic.vrt").read_text()
    weights = np.array([[1.0, -0.5, 0.0, 0.2], [-0.3, 1.0, -0.2, 0.1], [0.0, -0.4, 1.0, -0.1]])
    contract = contract_for(3, input_scale=1 / 255)
    pointwise_model(folder / "model.onnx", weights, contract=contract)
    return folder


@pytest.fixture
def labels(tmp_path: Path) -> Path:
    """``inputs/`` with the NLCD and Chesapeake rasters, a class-names table and points."""
    folder = tmp_path / "inputs"
    folder.mkdir()
    for name in ("m_3907833_nw_17_1_nlcd.tif", "m_3907833_nw_17_1_lc.tif"):
        shutil.copyfile(LOWRES / name, folder / name)
    shutil.copyfile(LABELS, folder / "labels.tif")
    (folder / "names.csv").write_text(
        ("value,name\n1,water\n2,tree canopy\n3,field\n4,barren\n5,impervious\n"), encoding="utf-8"
    )
    write_points(folder / "points.gpkg")
    return folder


def write_points(path: Path) -> None:
    """Three points on the labels mosaic (EPSG:26917) with a reference class ``ref``."""
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(26917)
    source = ogr.GetDriverByName("GPKG").CreateDataSource(str(path))
    layer = source.CreateLayer("points", srs, ogr.wkbPoint)
    layer.CreateField(ogr.FieldDefn("ref", ogr.OFTInteger))
    for offset, value in ((10.5, 1), (20.5, 2), (30.5, 2)):
        feature = ogr.Feature(layer.GetLayerDefn())
        feature.SetField("ref", value)
        point = ogr.Geometry(ogr.wkbPoint)
        point.AddPoint_2D(580000.0 + offset, 4100000.0 - offset)
        feature.SetGeometry(point)
        layer.CreateFeature(feature)
    source = None


def agreement_parameters(folder: Path, out: Path) -> dict[str, Any]:
    return {
        "CLASSIFIED": str(folder / "m_3907833_nw_17_1_nlcd.tif"),
        "REFERENCE": str(folder / "m_3907833_nw_17_1_lc.tif"),
        "CLASSIFIED_REMAP": NLCD_REMAP,
        "REFERENCE_REMAP": "6:5",
        "CLASS_NAMES": str(folder / "names.csv"),
        "OUTPUT_HTML": str(out / "report.html"),
        "OUTPUT_JSON": str(out / "report.json"),
        "OUTPUT_CSV": str(out / "matrix.csv"),
        "OUTPUT_DISAGREEMENT": str(out / "agreement.tif"),
    }


def sample_parameters(folder: Path, out: Path) -> dict[str, Any]:
    return {
        "CLASSIFIED": str(folder / "labels.tif"),
        "POINTS": f"{folder / 'points.gpkg'}|layername=points",
        "REFERENCE_FIELD": "ref",
        "OUTPUT_HTML": str(out / "accuracy.html"),
        "OUTPUT_JSON": str(out / "accuracy.json"),
    }


# --------------------------------------------------------------------- inputs untouched


def test_classify_reads_a_vrt_without_writing_beside_it(
    run_algorithm: Run, imagery: Path, tmp_path: Path
) -> None:
    before = snapshot(imagery)
    result = run_algorithm(
        "classify",
        {
            "INPUT": str(imagery / "mosaic.vrt"),
            "MODEL": str(imagery / "model.onnx"),
            "OUTPUT": str(tmp_path / "classes.tif"),
            "OUTPUT_CONFIDENCE": str(tmp_path / "confidence.tif"),
        },
    )
    assert result["PIXELS_CLASSIFIED"] == 96 * 96
    assert snapshot(imagery) == before


def test_classify_through_qgis_process_writes_nothing_beside_its_inputs(
    imagery: Path, tmp_path: Path
) -> None:
    before = snapshot(imagery)
    result = qgis_process_json(
        "run",
        "landcover:classify",
        "--",
        f"INPUT={imagery / 'mosaic.vrt'}",
        f"MODEL={imagery / 'model.onnx'}",
        f"OUTPUT={tmp_path / 'classes.tif'}",
    )
    assert result["results"]["PIXELS_CLASSIFIED"] == 96 * 96
    assert snapshot(imagery) == before


def test_agreement_writes_nothing_beside_its_inputs(
    run_algorithm: Run, labels: Path, tmp_path: Path
) -> None:
    before = snapshot(labels)
    in_process = run_algorithm("agreement", agreement_parameters(labels, tmp_path))[
        "OVERALL_ACCURACY"
    ]
    assert 0.0 < in_process < 1.0
    (tmp_path / "qp").mkdir()
    assert snapshot(labels) == before
    result = qgis_process_json(
        "run",
        "landcover:agreement",
        "--",
        *(f"{k}={v}" for k, v in agreement_parameters(labels, tmp_path / "qp").items()),
    )
    assert result["results"]["OVERALL_ACCURACY"] == pytest.approx(in_process)
    assert snapshot(labels) == before


def test_sample_accuracy_writes_nothing_beside_its_inputs(
    run_algorithm: Run, labels: Path, tmp_path: Path
) -> None:
    before = snapshot(labels)
    result = run_algorithm("sample_accuracy", sample_parameters(labels, tmp_path))
    report = json.loads((tmp_path / "accuracy.json").read_text(encoding="utf-8"))
    assert report["points"]["used"] == 3
    assert result["OVERALL_ACCURACY"] is not None
    assert snapshot(labels) == before


# ----------------------------------------------------------------- overwrites refused


@pytest.mark.parametrize(
    ("output", "target", "message"),
    [
        ("OUTPUT_DISAGREEMENT", "m_3907833_nw_17_1_nlcd.tif", 'CLASSIFIED "Classified raster"'),
        ("OUTPUT_CSV", "m_3907833_nw_17_1_lc.tif", 'REFERENCE "Reference raster"'),
        ("OUTPUT_JSON", "m_3907833_nw_17_1_lc.tif", 'REFERENCE "Reference raster"'),
        ("OUTPUT_HTML", "m_3907833_nw_17_1_lc.tif", 'REFERENCE "Reference raster"'),
        ("OUTPUT_CSV", "names.csv", 'CLASS_NAMES "Class names"'),
        ("OUTPUT_HTML", "m_3907833_nw_17_1_lc.qml", r"the QGIS style of .*_lc\.tif"),
    ],
)
def test_agreement_refuses_to_overwrite_an_input(
    run_algorithm: Run, labels: Path, tmp_path: Path, output: str, target: str, message: str
) -> None:
    before = snapshot(labels)
    parameters = agreement_parameters(labels, tmp_path)
    parameters[output] = str(labels / target)
    with pytest.raises(
        QgsProcessingException,
        match=rf"{output} \".*\" would overwrite {labels / target}.*{message}",
    ):
        run_algorithm("agreement", parameters)
    assert snapshot(labels) == before
    assert not any(tmp_path.glob("*.*"))  # nor any other output


@pytest.mark.parametrize("output", ["OUTPUT_HTML", "OUTPUT_JSON"])
@pytest.mark.parametrize("target", ["points.gpkg", "points.gpkg-wal", "labels.tif"])
def test_sample_accuracy_refuses_to_overwrite_an_input(
    run_algorithm: Run, labels: Path, tmp_path: Path, output: str, target: str
) -> None:
    before = snapshot(labels)
    parameters = sample_parameters(labels, tmp_path)
    parameters[output] = str(labels / target)
    owner = "CLASSIFIED" if target == "labels.tif" else "POINTS"
    with pytest.raises(
        QgsProcessingException, match=rf"{output} .* would overwrite {labels / target}.*{owner} "
    ):
        run_algorithm("sample_accuracy", parameters)
    assert snapshot(labels) == before


@pytest.mark.parametrize(
    ("output", "target", "message"),
    [
        ("OUTPUT", "tiles/naip.tif", r"tiles/naip\.tif \(a source of .*mosaic\.vrt\)"),
        ("OUTPUT_PROBABILITIES", "tiles/naip.tif", r"a source of .*mosaic\.vrt"),
        ("OUTPUT", "tiles/naip.tiff", r"naip\.qml, written beside .*\(the QGIS style of"),
        ("OUTPUT_CONFIDENCE", "mosaic.tif", r"mosaic\.qml, written beside .*QGIS style of"),
    ],
)
def test_classify_refuses_to_overwrite_an_input(
    run_algorithm: Run, imagery: Path, tmp_path: Path, output: str, target: str, message: str
) -> None:
    before = snapshot(imagery)
    parameters = {
        "INPUT": str(imagery / "mosaic.vrt"),
        "MODEL": str(imagery / "model.onnx"),
        "OUTPUT": str(tmp_path / "classes.tif"),
        output: str(imagery / target),
    }
    with pytest.raises(
        QgsProcessingException, match=rf"{output} .* would overwrite .*{message}.*INPUT "
    ):
        run_algorithm("classify", parameters)
    assert snapshot(imagery) == before
    assert not any(tmp_path.glob("*.tif"))


def test_classify_overwrite_refused_through_qgis_process(imagery: Path, tmp_path: Path) -> None:
    before = snapshot(imagery)
    completed = run_qgis_process(
        "run",
        "landcover:classify",
        "--",
        f"INPUT={imagery / 'mosaic.vrt'}",
        f"MODEL={imagery / 'model.onnx'}",
        f"OUTPUT={imagery / 'tiles' / 'naip.tif'}",
    )
    assert completed.returncode != 0
    assert f"would overwrite {imagery / 'tiles' / 'naip.tif'} (a source of" in (
        completed.stdout + completed.stderr
    )
    assert snapshot(imagery) == before


def test_download_model_refuses_to_overwrite_its_catalogue(
    run_algorithm: Run, imagery: Path, tmp_path: Path
) -> None:
    catalogue = imagery / "team.json"
    catalogue.write_text(json.dumps({"models": [{"name": "team", "file": "model.onnx"}]}))
    before = snapshot(imagery)
    parameters = {"MODEL": "team", "CATALOGUE": str(catalogue), "OUTPUT": str(catalogue)}
    with pytest.raises(
        QgsProcessingException, match=rf"OUTPUT .* would overwrite {catalogue}, .*CATALOGUE "
    ):
        run_algorithm("download_model", parameters)
    assert snapshot(imagery) == before
    parameters["OUTPUT"] = str(tmp_path / "copy.onnx")
    result = run_algorithm("download_model", parameters)
    assert Path(result["MODEL_PATH"]).read_bytes() == (imagery / "model.onnx").read_bytes()
    assert snapshot(imagery) == before
