# SPDX-License-Identifier: GPL-2.0-or-later
"""``landcover:classify_tiles`` in QGIS: four adjacent tiles (given as layers, or by a
tile index) classified chunk by chunk on local worker processes or a Dask LocalCluster
equal ``landcover:classify`` over the same area as one raster; a second run resumes
(skips every chunk); the mosaic opens styled and chains into ``landcover:agreement`` in
a model; bad inputs are messages.

The job itself (seams, resume, corrupt tiles, areas, killed workers) is tested in
``tests/core/tiles/``."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from osgeo import gdal, ogr
from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsProcessingException,
    QgsProcessingModelAlgorithm,
    QgsProcessingModelChildAlgorithm,
    QgsProcessingModelChildParameterSource,
    QgsProcessingOutputRasterLayer,
    QgsProject,
    QgsRectangle,
)

from qgis_landcover.algorithms.classify_tiles import ClassifyTilesAlgorithm

from ..conftest import DATA
from ..core.tiles import conftest as tiles_data
from ..feedback import RecordingFeedback

# The many-tiles tests' data, as fixtures here too: the area as one GeoTIFF (whole) and
# as 2 x 2 adjacent tiles, a 3x3 box model cropping 1 px per side (its output does not
# depend on where tiles or chunks start), fresh model sessions for each test.
whole = tiles_data.whole
tiles = tiles_data.tiles
model = tiles_data.model
fresh_sessions = tiles_data.fresh_sessions
read = tiles_data.read
AREA = tiles_data.AREA

Run = Callable[..., dict[str, Any]]

LABELS = DATA / "chesapeake_1m_patches" / "m_3708020_sw_17_1_2014_mosaic_labels.tif"
CHUNK = 256  # rounded down to 240 (8 output tiles of 30 px): 2 x 1 chunks


def job_parameters(tiles: list[Path], model: Path, folder: Path, **changes: Any) -> dict[str, Any]:
    """``classify_tiles`` parameters for the test tiles: the CPU, 1 worker, chunks of
    :data:`CHUNK` px, the job in ``folder``; ``changes`` replace or add parameters."""
    return {
        "INPUTS": [str(t) for t in tiles],
        "MODEL": str(model),
        "DEVICE": "cpu",
        "WORKERS": 1,
        "CHUNK_SIZE": CHUNK,
        "OUTPUT_FOLDER": str(folder),
        **changes,
    }


def one_raster(run_algorithm: Run, tmp_path: Path, whole: Path, model: Path) -> np.ndarray:
    """The oracle: ``landcover:classify`` over the same area as one raster."""
    results = run_algorithm(
        "classify",
        {
            "INPUT": str(whole),
            "MODEL": str(model),
            "DEVICE": "cpu",
            "PRECISION": "auto",
            "OUTPUT": str(tmp_path / "one.tif"),
        },
    )
    return read(results["OUTPUT"])


def tile_index(path: Path, tiles: list[Path], field: str = "location") -> Path:
    """A GeoPackage tile index with relative paths in ``field``."""
    source = ogr.GetDriverByName("GPKG").CreateDataSource(str(path))
    layer = source.CreateLayer(
        "index", srs=gdal.Open(str(tiles[0])).GetSpatialRef(), geom_type=ogr.wkbPolygon
    )
    layer.CreateField(ogr.FieldDefn(field, ogr.OFTString))
    for tile in tiles:
        xmin, xres, _, ymax, _, yres = gdal.Open(str(tile)).GetGeoTransform()
        xmax, ymin = xmin + 160 * xres, ymax + 120 * yres
        feature = ogr.Feature(layer.GetLayerDefn())
        feature.SetField(field, str(tile.relative_to(path.parent)))
        feature.SetGeometry(
            ogr.CreateGeometryFromWkt(
                f"POLYGON(({xmin} {ymin},{xmax} {ymin},{xmax} {ymax},{xmin} {ymax},{xmin} {ymin}))"
            )
        )
        layer.CreateFeature(feature)
    source = None
    return path


def test_parameters_and_outputs_are_declared_with_help() -> None:
    algorithm = ClassifyTilesAlgorithm()
    algorithm.initAlgorithm()
    names = [p.name() for p in algorithm.parameterDefinitions()]
    assert names[:5] == ["INPUTS", "TILE_INDEX", "PATH_FIELD", "EXTENT", "MODEL"]
    for name in ("DEVICE", "WORKERS", "SCHEDULER", "CHUNK_SIZE", "OUTPUT_FOLDER"):
        assert name in names
    assert all(p.help() for p in algorithm.parameterDefinitions())
    assert {o.name() for o in algorithm.outputDefinitions()} >= {
        "OUTPUT_MOSAIC",
        "OUTPUT_MANIFEST",
        "OUTPUT_AREAS",
        "CHUNKS_DONE",
        "CHUNKS_FAILED",
        "PIXELS_CLASSIFIED",
    }
    assert "Dask" in algorithm.tags() and algorithm.group() == "Classification"
    # A raster layer output: the modeler offers it to raster inputs (agreement's).
    assert isinstance(algorithm.outputDefinition("OUTPUT_MOSAIC"), QgsProcessingOutputRasterLayer)


def test_layers_on_local_processes_equal_one_raster_and_resume(
    run_algorithm: Run, tmp_path: Path, tiles: list[Path], whole: Path, model: Path
) -> None:
    parameters = job_parameters(tiles, model, tmp_path / "job", WORKERS=2)
    results = run_algorithm("classify_tiles", parameters)
    expected = one_raster(run_algorithm, tmp_path, whole, model)
    np.testing.assert_array_equal(read(results["OUTPUT_MOSAIC"]), expected)
    assert (results["CHUNKS_DONE"], results["CHUNKS_FAILED"]) == (2, 0)
    assert results["PIXELS_CLASSIFIED"] == expected.size == 320 * 240
    assert Path(results["OUTPUT_MANIFEST"]).name == "manifest.gpkg"
    totals = [
        line.split(",")
        for line in Path(results["OUTPUT_AREAS"]).read_text().splitlines()
        if line.startswith("total,")
    ]
    values, counts = np.unique(expected, return_counts=True)
    assert [(int(t[1]), int(t[3])) for t in totals] == list(zip(values, counts, strict=True))
    # Again: every chunk is skipped, same outputs.
    feedback = RecordingFeedback()
    again = run_algorithm("classify_tiles", parameters, feedback)
    assert any("2 already done" in line and "0 to run" in line for line in feedback.lines)
    assert (again["CHUNKS_DONE"], again["PIXELS_CLASSIFIED"]) == (2, 320 * 240)
    np.testing.assert_array_equal(read(again["OUTPUT_MOSAIC"]), expected)


def test_tile_index_on_local_dask_equals_one_raster(
    run_algorithm: Run, tmp_path: Path, tiles: list[Path], whole: Path, model: Path
) -> None:
    index = tile_index(tmp_path / "index.gpkg", tiles, field="path")
    results = run_algorithm(
        "classify_tiles",
        {
            "TILE_INDEX": str(index),
            "PATH_FIELD": "path",
            "MODEL": str(model),
            "DEVICE": "cpu",
            "WORKERS": 2,
            "SCHEDULER": "local-dask",
            "CHUNK_SIZE": CHUNK,
            "OUTPUT_FOLDER": str(tmp_path / "job"),
        },
    )
    np.testing.assert_array_equal(
        read(results["OUTPUT_MOSAIC"]), one_raster(run_algorithm, tmp_path, whole, model)
    )
    assert results["CHUNKS_DONE"] == 2


def test_mosaic_opens_styled_and_chains_into_agreement(
    landcover_provider: Any, tmp_path: Path, tiles: list[Path], model: Path
) -> None:
    import processing
    from sklearn.metrics import cohen_kappa_score

    labels = tmp_path / "labels.tif"
    gdal.Translate(str(labels), str(LABELS), srcWin=list(AREA))
    chain = QgsProcessingModelAlgorithm("tiles then agreement", "tests")
    static = QgsProcessingModelChildParameterSource.fromStaticValue
    classify = QgsProcessingModelChildAlgorithm("landcover:classify_tiles")
    classify.setChildId("tiles")
    for name, value in job_parameters(tiles, model, tmp_path / "job").items():
        classify.addParameterSources(name, [static(value)])
    agreement = QgsProcessingModelChildAlgorithm("landcover:agreement")
    agreement.setChildId("agreement")
    agreement.addParameterSources(
        "CLASSIFIED",
        [QgsProcessingModelChildParameterSource.fromChildOutput("tiles", "OUTPUT_MOSAIC")],
    )
    agreement.addParameterSources("REFERENCE", [static(str(labels))])
    agreement.addParameterSources("OUTPUT_JSON", [static(str(tmp_path / "agreement.json"))])
    agreement.setDependencies([])
    chain.addChildAlgorithm(classify)
    chain.addChildAlgorithm(agreement)
    project = QgsProject.instance()
    before = set(project.mapLayers())
    results = processing.runAndLoadResults(chain, {})
    added = [project.mapLayer(i) for i in set(project.mapLayers()) - before]
    try:
        numbers = results["CHILD_RESULTS"]["agreement"]
        mosaic = results["CHILD_RESULTS"]["tiles"]["OUTPUT_MOSAIC"]
        classified, reference = read(mosaic), read(labels)
        both = (classified != 0) & (reference != 0)
        accuracy = float(np.mean(classified[both] == reference[both]))
        kappa = float(cohen_kappa_score(classified[both], reference[both]))
        assert numbers["OVERALL_ACCURACY"] == pytest.approx(accuracy, abs=1e-9)
        assert numbers["KAPPA"] == pytest.approx(kappa, abs=1e-9)
    finally:
        project.removeMapLayers([lay.id() for lay in added])
    # processing.run in a script: the mosaic loads styled with the model's classes.
    before = set(project.mapLayers())
    loaded = processing.runAndLoadResults(
        "landcover:classify_tiles",
        job_parameters(tiles, model, tmp_path / "styled", WORKERS=0),  # from cores and memory
    )
    assert loaded["CHUNKS_DONE"] == 2
    added = [project.mapLayer(i) for i in set(project.mapLayers()) - before]
    try:
        (layer,) = [lay for lay in added if lay.source() == loaded["OUTPUT_MOSAIC"]]
        assert layer.renderer().type() == "paletted"
        labels_by_value = {c.value: c.label for c in layer.renderer().classes()}
        assert labels_by_value == {k + 1: f"class {k + 1}" for k in range(3)}
    finally:
        project.removeMapLayers([lay.id() for lay in added])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"INPUTS": None}, r"No input rasters: give INPUTS, or a TILE_INDEX"),
        ({"INPUTS": None, "TILE_INDEX": "index", "PATH_FIELD": "path"}, r"no field 'path'"),
        ({"OUTPUT_FOLDER": "inside_inputs"}, "holds input rasters"),
        ({"MODEL": "missing"}, "missing.onnx"),
    ],
)
def test_bad_input_is_a_message(
    run_algorithm: Run,
    tmp_path: Path,
    tiles: list[Path],
    model: Path,
    change: dict[str, Any],
    message: str,
) -> None:
    values = {
        "index": str(tile_index(tmp_path / "index.gpkg", tiles)),
        "inside_inputs": str(tiles[0].parent),
        "missing": str(tmp_path / "missing.onnx"),
    }
    parameters = job_parameters(tiles, model, tmp_path / "job", WORKERS=0)
    parameters.update({k: values.get(v, v) if isinstance(v, str) else v for k, v in change.items()})
    parameters = {k: v for k, v in parameters.items() if v is not None}
    with pytest.raises(QgsProcessingException, match=message):
        run_algorithm("classify_tiles", parameters)


PLAN_LINE = r"(?P<done>\d+) already done .*, (?P<run>\d+) to run"
"""The job's first log line: chunks skipped (done before) and chunks to run."""


class CancelAtFirstChunk(RecordingFeedback):
    """Cancels when the first chunk is reported (progress above 0)."""

    def setProgress(self, progress: float) -> None:
        super().setProgress(progress)
        if progress > 0:
            self.cancel()


def test_cancel_on_dask_keeps_done_chunks_and_the_next_run_finishes(
    run_algorithm: Run, tmp_path: Path, tiles: list[Path], whole: Path, model: Path
) -> None:
    parameters = job_parameters(
        tiles,
        model,
        tmp_path / "job",
        SCHEDULER="local-dask",
        CHUNK_SIZE=64,  # 6 x 4 of 60 px
    )
    with pytest.raises(QgsProcessingException, match=r"Cancelled by the user after \d+ of 24"):
        run_algorithm("classify_tiles", parameters, CancelAtFirstChunk())
    done = len(list((tmp_path / "job" / "chunks").glob("*.tif")))
    assert 1 <= done < 24
    assert not [p for p in (tmp_path / "job").rglob("*") if ".tmp-landcover" in p.name]
    feedback = RecordingFeedback()
    results = run_algorithm("classify_tiles", parameters, feedback)
    [plan] = [m for line in feedback.lines if (m := re.search(PLAN_LINE, line))]
    assert int(plan["done"]) >= 1 and int(plan["done"]) + int(plan["run"]) == 24
    assert results["CHUNKS_DONE"] == 24
    np.testing.assert_array_equal(
        read(results["OUTPUT_MOSAIC"]), one_raster(run_algorithm, tmp_path, whole, model)
    )


def test_extent_in_another_crs_clips_the_job(
    run_algorithm: Run, tmp_path: Path, tiles: list[Path], whole: Path, model: Path
) -> None:
    """EXTENT in WGS 84 (QGIS reprojects its box to the inputs' CRS): the left half of
    the area, which keeps its pixels as classified over the whole area (the chunks read
    their margins across the extent's edge)."""
    xmin, xres, _, ymax, _, yres = gdal.Open(str(whole)).GetGeoTransform()
    # A box well inside the left half: its reprojection to UTM stays inside too.
    left = QgsRectangle(xmin + 20, ymax + 200 * yres, xmin + 140, ymax + 40 * yres)
    to_wgs84 = QgsCoordinateTransform(
        QgsCoordinateReferenceSystem("EPSG:26917"),
        QgsCoordinateReferenceSystem("EPSG:4326"),
        QgsProject.instance(),
    )
    box = to_wgs84.transformBoundingBox(left)
    results = run_algorithm(
        "classify_tiles",
        {
            "INPUTS": [str(t) for t in tiles],
            "EXTENT": f"{box.xMinimum()!r},{box.xMaximum()!r},{box.yMinimum()!r},"
            f"{box.yMaximum()!r} [EPSG:4326]",
            "MODEL": str(model),
            "DEVICE": "cpu",
            "WORKERS": 1,
            "OUTPUT_FOLDER": str(tmp_path / "job"),
        },
    )
    mosaic = gdal.Open(results["OUTPUT_MOSAIC"])
    x0, _, _, y0, _, _ = mosaic.GetGeoTransform()
    col, row = round((x0 - xmin) / xres), round((y0 - ymax) / yres)
    # The reprojected box holds the UTM box and stays within the left half.
    assert 0 <= col <= 20 and 0 <= row <= 40
    assert col + mosaic.RasterXSize >= 140 and col + mosaic.RasterXSize <= 160
    expected = one_raster(run_algorithm, tmp_path, whole, model)
    window = expected[row : row + mosaic.RasterYSize, col : col + mosaic.RasterXSize]
    np.testing.assert_array_equal(mosaic.ReadAsArray(), window)
