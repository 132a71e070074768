# SPDX-License-Identifier: GPL-2.0-or-later
"""``landcover:classify`` in QGIS: parameters, outputs, styling, extents in other CRSs,
online layers (XYZ) through their provider, bad input, and ``qgis_process``.

The image sources themselves (GDAL's, a layer's provider) are tested in
``tests/core/inference/test_gdal_source.py`` and ``tests/qgis_glue/test_image_source.py``."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from osgeo import gdal
from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProject,
    QgsRasterLayer,
    QgsRectangle,
)

from qgis_landcover.algorithms.classify import ClassifyAlgorithm
from qgis_landcover.core.inference.session import clear_session_cache
from qgis_landcover.core.raster.reading import raster_grid
from qgis_landcover.qgis_glue.parameters import enum_string

from ..conftest import DATA, qgis_process_json, run_qgis_process
from ..feedback import RecordingFeedback
from ..onnx_models import contract_for, pointwise_model, pointwise_reference

MOSAIC = DATA / "chesapeake_1m_patches" / "m_3708020_sw_17_1_2014_mosaic_naip.tif"
WEIGHTS = np.array(
    [[1.0, -0.5, 0.0, 0.2], [-0.3, 1.0, -0.2, 0.1], [0.0, -0.4, 1.0, -0.1], [0.1, 0.0, -0.6, 0.5]]
)

Run = Callable[..., dict[str, Any]]


@pytest.fixture(autouse=True)
def fresh_sessions() -> None:
    clear_session_cache()


@pytest.fixture
def naip(tmp_path: Path) -> Path:
    target = tmp_path / "naip.tif"
    gdal.Translate(str(target), str(MOSAIC), srcWin=[200, 100, 260, 200])
    return target


@pytest.fixture
def model(tmp_path: Path) -> Path:
    return pointwise_model(
        tmp_path / "model.onnx", WEIGHTS, contract=contract_for(4, input_scale=1 / 255)
    )


def read(path: str | Path) -> np.ndarray:
    return gdal.Open(str(path)).ReadAsArray()


def expected_classes(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Closed-form classes of the pointwise model and the pixels float noise cannot flip."""
    scores = pointwise_reference(image.astype(np.float64) / 255, WEIGHTS)
    top2 = np.sort(scores, axis=0)[-2:]
    return scores.argmax(axis=0) + 1, (top2[1] - top2[0]) > 1e-4


def test_parameters_all_have_help() -> None:
    algorithm = ClassifyAlgorithm()
    algorithm.initAlgorithm()
    names = [p.name() for p in algorithm.parameterDefinitions()]
    assert names[:4] == ["INPUT", "EXTENT", "MODEL", "BANDS"]
    for name in ("DEVICE", "BATCH_SIZE", "TILE_SIZE", "OVERLAP", "OUTPUT", "OUTPUT_CONFIDENCE"):
        assert name in names
    assert all(p.help() for p in algorithm.parameterDefinitions())
    assert {o.name() for o in algorithm.outputDefinitions()} >= {
        "EXECUTION_PROVIDER",
        "PIXELS_CLASSIFIED",
    }
    assert algorithm.group() == "Classification" and algorithm.groupId() == "classification"


def test_classify_writes_the_closed_form_and_reports(
    run_algorithm: Run, tmp_path: Path, naip: Path, model: Path
) -> None:
    results = run_algorithm(
        "classify",
        {
            "INPUT": str(naip),
            "MODEL": str(model),
            "DEVICE": "cpu",
            "OUTPUT": str(tmp_path / "classes.tif"),
            "OUTPUT_CONFIDENCE": str(tmp_path / "confidence.tif"),
        },
    )
    assert results["EXECUTION_PROVIDER"] == "CPUExecutionProvider"
    assert results["PIXELS_CLASSIFIED"] == 260 * 200
    assert "OUTPUT_PROBABILITIES" not in results  # skipped: no result names a missing file
    expected, sure = expected_classes(read(naip))
    got = read(results["OUTPUT"])
    np.testing.assert_array_equal(got[sure], expected[sure])
    assert read(results["OUTPUT_CONFIDENCE"]).min() >= 1
    assert (tmp_path / "classes.qml").exists()


def test_extent_in_another_crs_is_reprojected(
    run_algorithm: Run, tmp_path: Path, naip: Path, model: Path
) -> None:
    layer_crs = QgsCoordinateReferenceSystem("EPSG:26917")
    wgs84 = QgsCoordinateReferenceSystem("EPSG:4326")
    x0, _, _, y0, _, _ = gdal.Open(str(naip)).GetGeoTransform()
    inner = QgsRectangle(x0 + 40.5, y0 - 150.0, x0 + 180.2, y0 - 30.7)
    to_wgs84 = QgsCoordinateTransform(layer_crs, wgs84, QgsProject.instance())
    geographic = to_wgs84.transformBoundingBox(inner)
    extent = (
        f"{geographic.xMinimum()!r},{geographic.xMaximum()!r},"
        f"{geographic.yMinimum()!r},{geographic.yMaximum()!r} [EPSG:4326]"
    )
    results = run_algorithm(
        "classify",
        {"INPUT": str(naip), "MODEL": str(model), "EXTENT": extent, "OUTPUT": "TEMPORARY_OUTPUT"},
    )
    # Expected: QGIS's bounding box of the extent back in the layer CRS, snapped
    # outward to the layer's pixels.
    back = QgsCoordinateTransform(wgs84, layer_crs, QgsProject.instance()).transformBoundingBox(
        geographic
    )
    grid = raster_grid(gdal.Open(str(naip)))
    window = grid.window_for_bounds(
        (back.xMinimum(), back.yMinimum(), back.xMaximum(), back.yMaximum())
    )
    output = gdal.Open(results["OUTPUT"])
    assert raster_grid(output).geotransform == grid.window_grid(window).geotransform
    assert (output.RasterXSize, output.RasterYSize) == (window.width, window.height)
    expected, sure = expected_classes(read(naip))
    rows = slice(window.row_off, window.row_off + window.height)
    cols = slice(window.col_off, window.col_off + window.width)
    got = output.ReadAsArray()
    np.testing.assert_array_equal(got[sure[rows, cols]], expected[rows, cols][sure[rows, cols]])


def test_bands_parameter_feeds_the_chosen_bands(
    run_algorithm: Run, tmp_path: Path, naip: Path
) -> None:
    contract = contract_for(2, bands=("nir", "red"), input_scale=1 / 255)
    model = pointwise_model(tmp_path / "m.onnx", np.eye(2), contract=contract)
    results = run_algorithm(
        "classify",
        {"INPUT": str(naip), "MODEL": str(model), "BANDS": [3, 2], "OUTPUT": "TEMPORARY_OUTPUT"},
    )
    image = read(naip).astype(int)
    np.testing.assert_array_equal(read(results["OUTPUT"]), np.where(image[2] >= image[1], 1, 2))


def test_batch_runs_load_the_model_once(run_algorithm: Run, naip: Path, model: Path) -> None:
    logs = []
    for _ in range(3):
        feedback = RecordingFeedback()
        run_algorithm(
            "classify",
            {"INPUT": str(naip), "MODEL": str(model), "OUTPUT": "TEMPORARY_OUTPUT"},
            feedback=feedback,
        )
        logs.append(feedback.lines)
    assert [any("already loaded" in line for line in lines) for lines in logs] == [
        False,
        True,
        True,
    ]


def test_output_opens_styled_with_class_names(
    landcover_provider: Any, tmp_path: Path, naip: Path, model: Path
) -> None:
    import processing

    project = QgsProject.instance()
    before = set(project.mapLayers())
    results = processing.runAndLoadResults(
        "landcover:classify",
        {"INPUT": str(naip), "MODEL": str(model), "OUTPUT": str(tmp_path / "styled.tif")},
    )
    added = [project.mapLayer(i) for i in set(project.mapLayers()) - before]
    try:
        (layer,) = [lay for lay in added if lay.source() == results["OUTPUT"]]
        renderer = layer.renderer()
        assert renderer.type() == "paletted"
        labels = {c.value: c.label for c in renderer.classes()}
        assert labels == {k + 1: f"class {k + 1}" for k in range(4)}
    finally:
        project.removeMapLayers([lay.id() for lay in added])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"INPUT": "rgb"}, r"needs 4 bands \(red, green, blue, nir\)"),
        ({"EXTENT": "0,10,0,10 [EPSG:26917]"}, "does not overlap the layer"),
        ({"MODEL": "not_onnx"}, "not an ONNX model"),
        ({"MODEL": "wrong_classes"}, "class_names"),
        ({"OUTPUT": "missing_folder"}, "folder does not exist"),
        ({"OUTPUT": "file_as_folder"}, r"a_file\.txt is a file, not a folder"),
        ({"MODEL": "folder"}, "is a folder, not a file: give an ONNX model file"),
        ({"DEVICE": "cuda"}, "DEVICE=cuda was requested"),
        ({"OVERLAP": "99"}, r"OVERLAP .* must be at least 0 and at most 50; got 99"),
        ({"OVERLAP": "abc"}, r"OVERLAP .* must be a number; got 'abc'"),
        ({"BANDS": "1,x,3,4"}, r"BANDS: 'x' is not a band number"),
        ({"PRECISION": "int8"}, r"is a file or URL: use PRECISION=auto"),
        (
            {"MODEL": "azure-2018-unet-finetuned", "PRECISION": "int8"},
            r"'azure-2018-unet-finetuned' has no int8 variant \(it has fp32\)",
        ),
    ],
)
def test_bad_input_raises_and_writes_nothing(
    run_algorithm: Run,
    tmp_path: Path,
    naip: Path,
    model: Path,
    change: dict[str, str],
    message: str,
) -> None:
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    rgb = tmp_path / "rgb.tif"
    gdal.Translate(str(rgb), str(naip), bandList=[1, 2, 3])
    not_onnx = tmp_path / "text.onnx"
    not_onnx.write_text("no model here")
    wrong = pointwise_model(tmp_path / "wrong.onnx", WEIGHTS, contract=contract_for(5))
    values = {
        "rgb": str(rgb),
        "not_onnx": str(not_onnx),
        "wrong_classes": str(wrong),
        "missing_folder": str(tmp_path / "nowhere" / "out.tif"),
        "file_as_folder": str(tmp_path / "a_file.txt" / "out.tif"),
        "folder": str(tmp_path),
    }
    (tmp_path / "a_file.txt").write_text("a file, not a folder")
    parameters = {"INPUT": str(naip), "MODEL": str(model), "OUTPUT": str(out_dir / "out.tif")}
    parameters.update({k: values.get(v, v) for k, v in change.items()})
    with pytest.raises(QgsProcessingException, match=message):
        run_algorithm("classify", parameters)
    assert list(out_dir.iterdir()) == []


def test_all_nodata_extent_warns_instead_of_failing(
    run_algorithm: Run, tmp_path: Path, model: Path
) -> None:
    empty = tmp_path / "empty.tif"
    gdal.Translate(str(empty), str(MOSAIC), srcWin=[0, 0, 64, 64], scaleParams=[[0, 255, 0, 0]])
    feedback = RecordingFeedback()
    results = run_algorithm(
        "classify",
        {"INPUT": str(empty), "MODEL": str(model), "OUTPUT": str(tmp_path / "out.tif")},
        feedback=feedback,
    )
    assert results["PIXELS_CLASSIFIED"] == 0
    assert np.all(read(results["OUTPUT"]) == 0)
    assert any("no valid pixels" in line for line in feedback.lines)


def test_qgis_process_run_json(tmp_path: Path, naip: Path, model: Path) -> None:
    output = tmp_path / "cli.tif"
    document = qgis_process_json(
        "run",
        "landcover:classify",
        "--",
        f"INPUT={naip}",
        f"MODEL={model}",
        "DEVICE=cpu",
        f"OUTPUT={output}",
    )
    results = document["results"]
    assert results["EXECUTION_PROVIDER"] == "CPUExecutionProvider"
    assert results["PIXELS_CLASSIFIED"] == 260 * 200
    expected, sure = expected_classes(read(naip))
    np.testing.assert_array_equal(read(output)[sure], expected[sure])


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
def test_output_in_a_folder_that_refuses_files(run_algorithm: Run, naip: Path, model: Path) -> None:
    # Was a raw FileNotFoundError (/proc accepts no new files, even for root).
    with pytest.raises(QgsProcessingException, match="Cannot create files in the output folder"):
        run_algorithm(
            "classify", {"INPUT": str(naip), "MODEL": str(model), "OUTPUT": "/proc/x.tif"}
        )


@pytest.mark.parametrize("bands", ["3,2", "3;2", " 3, 2 ", "3 2", ["3", "2"], [3, 2]])
def test_bands_as_text_with_commas(
    run_algorithm: Run, tmp_path: Path, naip: Path, bands: str | list[Any]
) -> None:
    """BANDS=1,2,3,4 was read by QGIS as band 0 (it splits text on ';' only)."""
    contract = contract_for(2, bands=("nir", "red"), input_scale=1 / 255)
    model = pointwise_model(tmp_path / "m.onnx", np.eye(2), contract=contract)
    results = run_algorithm(
        "classify",
        {"INPUT": str(naip), "MODEL": str(model), "BANDS": bands, "OUTPUT": "TEMPORARY_OUTPUT"},
    )
    image = read(naip).astype(int)
    np.testing.assert_array_equal(read(results["OUTPUT"]), np.where(image[2] >= image[1], 1, 2))


def test_device_by_index_or_any_case(run_algorithm: Run, naip: Path, model: Path) -> None:
    """``qgis_process help`` lists DEVICE as '1: cpu', '2: cuda', ... but DEVICE=2 was
    refused (the enum takes names only), and an index turned silently into 'auto'."""
    algorithm = ClassifyAlgorithm()
    algorithm.initAlgorithm()
    context = QgsProcessingContext()
    device = algorithm.parameterDefinition("DEVICE")
    for value, name in (
        ("2", "cuda"),
        (2, "cuda"),
        ("3", "tensorrt"),
        ("CPU", "cpu"),
        ("auto", "auto"),
    ):
        assert device.checkValueIsAcceptable(value, context)
        assert enum_string(algorithm, {"DEVICE": value}, "DEVICE", context) == name
    for value in ("4", -1, "gpu"):
        assert not device.checkValueIsAcceptable(value, context)
    assert device.clone().checkValueIsAcceptable("1", context)
    for value in ("1", 1):
        results = run_algorithm(
            "classify",
            {
                "INPUT": str(naip),
                "MODEL": str(model),
                "DEVICE": value,
                "OUTPUT": "TEMPORARY_OUTPUT",
            },
        )
        assert results["EXECUTION_PROVIDER"] == "CPUExecutionProvider"


def test_tile_and_batch_far_beyond_the_extent_run(
    run_algorithm: Run, naip: Path, model: Path
) -> None:
    """TILE_SIZE=100000 / BATCH_SIZE=100000 crashed with 'Unable to allocate ... GiB'."""
    feedback = RecordingFeedback()
    results = run_algorithm(
        "classify",
        {
            "INPUT": str(naip),
            "MODEL": str(model),
            "TILE_SIZE": 100_000,
            "BATCH_SIZE": 10**7,
            "OUTPUT": "TEMPORARY_OUTPUT",
        },
        feedback=feedback,
    )
    # 260 x 200 px, margin 0: one tile of 288 px (260 up to a multiple of 32).
    assert any("tiles of 288 px are used" in line for line in feedback.lines)
    assert any("in 1 tiles of 288 px" in line for line in feedback.lines)
    expected, sure = expected_classes(read(naip))
    np.testing.assert_array_equal(read(results["OUTPUT"])[sure], expected[sure])


def test_qgis_process_accepts_the_text_forms(tmp_path: Path, naip: Path, model: Path) -> None:
    output = tmp_path / "cli.tif"
    document = qgis_process_json(
        "run",
        "landcover:classify",
        "--",
        f"INPUT={naip}",
        f"MODEL={model}",
        "BANDS=1,2,3,4",
        "DEVICE=1",
        "TILE_SIZE=100000",
        "BATCH_SIZE=100000",
        f"OUTPUT={output}",
    )
    assert document["results"]["EXECUTION_PROVIDER"] == "CPUExecutionProvider"
    expected, sure = expected_classes(read(naip))
    np.testing.assert_array_equal(read(output)[sure], expected[sure])


def test_errors_are_printed_no_more_often_than_qgis_prints_its_own(
    run_algorithm: Run, tmp_path: Path, naip: Path
) -> None:
    """Every error shows three times in qgis_process 3.22's output, for QGIS's own
    algorithms too: QgsProcessingAlgorithm::run logs the exception to the message log
    and reports it to the feedback, whose base class logs it again, and qgis_process
    prints every critical log message. The plugin adds no copy of its own: as many as
    for a native algorithm's error, and none in processing.run's feedback."""
    ours = "is a folder, not a file"
    run = run_qgis_process(
        "run",
        "landcover:classify",
        "--",
        f"INPUT={naip}",
        f"MODEL={tmp_path}",
        f"OUTPUT={tmp_path}/x.tif",
    )
    assert run.returncode == 1
    reference = run_qgis_process(
        "run", "native:fillnodata", "--", f"INPUT={naip}", "BAND=9", f"OUTPUT={tmp_path}/f.tif"
    )
    assert reference.returncode == 1
    # QGIS's own message (band 9 of 4), whatever its wording in this QGIS version.
    (native,) = [
        line.split("\t", 1)[1]
        for line in (reference.stdout + reference.stderr).splitlines()
        if line.startswith("ERROR:\t")
    ]
    count = (run.stdout + run.stderr).count(ours)
    assert count == (reference.stdout + reference.stderr).count(native) >= 1
    assert (run.stdout + run.stderr).count(f"ERROR:\tThe model {tmp_path} {ours}") == 1
    feedback = RecordingFeedback()
    with pytest.raises(QgsProcessingException, match=ours) as error:
        run_algorithm(
            "classify",
            {"INPUT": str(naip), "MODEL": str(tmp_path), "OUTPUT": "TEMPORARY_OUTPUT"},
            feedback=feedback,
        )
    assert str(error.value).count(ours) == 1
    assert feedback.errors == []


WEB_MERCATOR_HALF = 20037508.342789244  # half the Web Mercator world, metres
ZOOM = 17
Z17_PIXEL = 2 * WEB_MERCATOR_HALF / (256 * 2**ZOOM)  # Web Mercator units per tile pixel


@pytest.fixture(scope="module")
def xyz_tiles(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The mosaic's RGB as a local XYZ tile pyramid (zoom 17, PNG, 256 px tiles)."""
    from osgeo_utils import gdal2tiles

    folder = tmp_path_factory.mktemp("xyz") / "tiles"
    gdal2tiles.main(
        ["gdal2tiles", "--xyz", "-z", str(ZOOM), "-r", "near", "-w", "none", "-q",
         "--processes=1", str(MOSAIC), str(folder)]
    )  # fmt: skip
    return folder


def tile_pixels(folder: Path, cols: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """RGBA (4, rows, cols) of global zoom-17 pixel indices, read from the PNG tiles."""
    out = np.zeros((4, rows.size, cols.size), dtype=np.uint8)
    for tx in np.unique(cols // 256):
        for ty in np.unique(rows // 256):
            path = folder / str(ZOOM) / str(tx) / f"{ty}.png"
            if not path.exists():
                continue
            tile = gdal.Open(str(path)).ReadAsArray()
            c = np.nonzero(cols // 256 == tx)[0]
            r = np.nonzero(rows // 256 == ty)[0]
            out[:, r[:, None], c[None, :]] = tile[:, rows[r][:, None] % 256, cols[c][None, :] % 256]
    return out


def test_xyz_layer_is_read_through_the_provider(
    run_algorithm: Run, tmp_path: Path, xyz_tiles: Path
) -> None:
    uri = f"type=xyz&url=file://{xyz_tiles}/{{z}}/{{x}}/{{y}}.png&zmin={ZOOM}&zmax={ZOOM}"
    layer = QgsRasterLayer(uri, "xyz", "wms")
    assert layer.isValid() and layer.dataProvider().bandCount() == 1  # one ARGB band
    # An extent on zoom-17 pixel edges, inside the mosaic: in its middle tile.
    xs = sorted(int(p.name) for p in (xyz_tiles / str(ZOOM)).iterdir())
    ys = sorted(int(p.stem) for p in (xyz_tiles / str(ZOOM) / str(xs[0])).iterdir())
    col0, row0 = xs[len(xs) // 2] * 256 + 50, ys[len(ys) // 2] * 256 + 50
    width = height = 150
    x0 = -WEB_MERCATOR_HALF + col0 * Z17_PIXEL
    y1 = WEB_MERCATOR_HALF - row0 * Z17_PIXEL
    extent = f"{x0!r},{x0 + width * Z17_PIXEL!r},{y1 - height * Z17_PIXEL!r},{y1!r} [EPSG:3857]"
    # A model whose ground resolution is the tiles' at this latitude, so that the model
    # grid is the tile grid.
    latitude = np.degrees(2 * np.arctan(np.exp((y1 - height * Z17_PIXEL / 2) / 6378137.0)))
    latitude -= 90.0
    contract = contract_for(
        3,
        bands=("red", "green", "blue"),
        input_scale=1 / 255,
        resolution_cm=Z17_PIXEL * np.cos(np.radians(latitude)) * 100,
    )
    weights = WEIGHTS[:3, :3]
    model = pointwise_model(tmp_path / "rgb.onnx", weights, contract=contract)
    results = run_algorithm(
        "classify",
        {"INPUT": layer, "EXTENT": extent, "MODEL": str(model), "OUTPUT": "TEMPORARY_OUTPUT"},
    )
    output = gdal.Open(results["OUTPUT"])
    assert output.RasterXSize == width and output.RasterYSize == height
    ox, dx, _, oy, _, _ = output.GetGeoTransform()
    assert dx == pytest.approx(Z17_PIXEL, rel=1e-9)
    assert ox == pytest.approx(x0, abs=1e-3) and oy == pytest.approx(y1, abs=1e-3)
    rgba = tile_pixels(xyz_tiles, np.arange(col0, col0 + width), np.arange(row0, row0 + height))
    scores = pointwise_reference(rgba[:3].astype(np.float64) / 255, weights)
    expected = scores.argmax(axis=0) + 1
    expected[rgba[3] == 0] = 0
    got = output.ReadAsArray()
    assert (rgba[3] == 255).mean() > 0.9
    # Exact wherever float noise cannot flip the class, nodata where the tiles are empty.
    top2 = np.sort(scores, axis=0)[-2:]
    sure = (top2[1] - top2[0] > 1e-4) & (rgba[3] == 255)
    np.testing.assert_array_equal(got[sure], expected[sure])
    assert np.all(got[rgba[3] == 0] == 0)


MODEL3 = Path(__file__).resolve().parent / "data" / "classify_agreement.model3"
LABELS = DATA / "chesapeake_1m_patches" / "m_3708020_sw_17_1_2014_mosaic_labels.tif"


def agreement_oracle(classified: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """Overall accuracy and Cohen's kappa over pixels with a class on both sides
    (scikit-learn as the independent reference)."""
    from sklearn.metrics import cohen_kappa_score

    both = (classified != 0) & (labels != 0)
    a, b = classified[both], labels[both]
    return float(np.mean(a == b)), float(cohen_kappa_score(a, b))


def test_modeler_chain_classify_then_agreement(
    landcover_provider: Any, tmp_path: Path, naip: Path, model: Path
) -> None:
    import processing
    from qgis.core import QgsProcessingModelAlgorithm

    labels = tmp_path / "labels.tif"
    gdal.Translate(str(labels), str(LABELS), srcWin=[200, 100, 260, 200])
    chain = QgsProcessingModelAlgorithm()
    assert chain.fromFile(str(MODEL3))
    results = processing.run(
        chain,
        {
            "imagery": str(naip),
            "model": str(model),
            "reference": str(labels),
            "reference_remap": "",
            "classify:land_cover": str(tmp_path / "land_cover.tif"),
            "agreement:report": str(tmp_path / "report.html"),
            "agreement:statistics": str(tmp_path / "statistics.json"),
        },
    )
    numbers = results["CHILD_RESULTS"]["agreement"]
    accuracy, kappa = agreement_oracle(read(tmp_path / "land_cover.tif"), read(labels))
    assert numbers["OVERALL_ACCURACY"] == pytest.approx(accuracy, abs=1e-9)
    assert numbers["KAPPA"] == pytest.approx(kappa, abs=1e-9)
    assert results["CHILD_RESULTS"]["classify"]["PIXELS_CLASSIFIED"] == 260 * 200
    assert (tmp_path / "report.html").exists() and (tmp_path / "land_cover.qml").exists()


def test_modeler_chain_runs_in_qgis_process(tmp_path: Path, naip: Path, model: Path) -> None:
    labels = tmp_path / "labels.tif"
    gdal.Translate(str(labels), str(LABELS), srcWin=[200, 100, 260, 200])
    document = qgis_process_json(
        "run",
        str(MODEL3),
        "--",
        f"imagery={naip}",
        f"model={model}",
        f"reference={labels}",
        f"classify:land_cover={tmp_path / 'land_cover.tif'}",
        f"agreement:report={tmp_path / 'report.html'}",
        f"agreement:statistics={tmp_path / 'statistics.json'}",
    )
    # qgis_process prints the model's own outputs; the numbers are in the statistics.
    assert document["results"]["agreement:statistics"] == str(tmp_path / "statistics.json")
    statistics = json.loads((tmp_path / "statistics.json").read_text())
    accuracy, kappa = agreement_oracle(read(tmp_path / "land_cover.tif"), read(labels))
    assert statistics["overall_accuracy"] == pytest.approx(accuracy, abs=1e-9)
    assert statistics["kappa"] == pytest.approx(kappa, abs=1e-9)


def test_model_accepts_a_catalogue_name(tmp_path: Path, run_algorithm: Run) -> None:
    """MODEL takes catalogue names as well as files: the embedded fine-tuned model by
    name gives exactly what the same file by path gives."""
    crop = tmp_path / "crop.tif"
    gdal.Translate(str(crop), str(MOSAIC), srcWin=[384, 128, 256, 256])
    shipped = Path(__file__).resolve().parents[2] / "qgis_landcover" / "models"
    outputs = {}
    for label, model in (
        ("name", "azure-2018-unet-finetuned"),
        ("file", str(shipped / "azure_2018_unet_finetuned.onnx")),
    ):
        result = run_algorithm(
            "classify",
            {
                "INPUT": str(crop),
                "MODEL": model,
                "DEVICE": "cpu",
                "OUTPUT": str(tmp_path / f"{label}.tif"),
            },
        )
        assert result["PIXELS_CLASSIFIED"] == 256 * 256
        outputs[label] = read(result["OUTPUT"])
    np.testing.assert_array_equal(outputs["name"], outputs["file"])
    assert set(np.unique(outputs["name"])) <= {1, 2, 3, 4}


def reflectance_copy(tmp_path: Path, naip: Path) -> Path:
    """The 8-bit crop as float32 reflectance 0-1."""
    target = tmp_path / "reflectance.tif"
    gdal.Translate(
        str(target), str(naip), outputType=gdal.GDT_Float32, scaleParams=[[0, 255, 0, 1]]
    )
    return target


def test_input_range_rescales_a_layer_the_model_would_misread(
    run_algorithm: Run, tmp_path: Path, naip: Path, model: Path
) -> None:
    reflectance = reflectance_copy(tmp_path, naip)
    parameters = {"INPUT": str(reflectance), "MODEL": str(model), "DEVICE": "cpu"}
    with pytest.raises(QgsProcessingException, match=r"far too small.*INPUT_RANGE=0,1"):
        run_algorithm("classify", {**parameters, "OUTPUT": str(tmp_path / "refused.tif")})
    assert not (tmp_path / "refused.tif").exists()
    with pytest.raises(QgsProcessingException, match="INPUT_RANGE"):
        run_algorithm(
            "classify",
            {**parameters, "INPUT_RANGE": "1,0", "OUTPUT": str(tmp_path / "bad.tif")},
        )
    results = run_algorithm(
        "classify", {**parameters, "INPUT_RANGE": "0,1", "OUTPUT": str(tmp_path / "out.tif")}
    )
    expected, sure = expected_classes(read(naip))
    np.testing.assert_array_equal(read(results["OUTPUT"])[sure], expected[sure])
