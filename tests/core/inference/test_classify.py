# SPDX-License-Identifier: GPL-2.0-or-later
"""The classify pipeline against closed forms: tiny ONNX models whose scores are known
exactly, run over real NAIP pixels (data/chesapeake_1m_patches)."""

from __future__ import annotations

import dataclasses
import os
import re
import tracemalloc
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
from osgeo import gdal

from qgis_landcover.core.errors import CancelledError, InputError
from qgis_landcover.core.inference.classified_output import OutputPaths
from qgis_landcover.core.inference.classify import (
    ClassifyOptions,
    classify,
    iter_batches,
    pipeline_memory_bytes,
    run_pipeline,
)
from qgis_landcover.core.inference.image_reader import GdalReader
from qgis_landcover.core.inference.normalization import Normalizer
from qgis_landcover.core.inference.session import (
    cached_session_count,
    clear_session_cache,
    load_session,
)
from qgis_landcover.core.inference.tile_plan import plan_tiles
from qgis_landcover.core.progress import NullProgress
from qgis_landcover.core.raster.grid import Grid, Window
from qgis_landcover.core.raster.reading import raster_grid, same_grid

from ...conftest import DATA
from ...onnx_models import box_model, contract_for, pointwise_model, pointwise_reference

MOSAIC = DATA / "chesapeake_1m_patches" / "m_3708020_sw_17_1_2014_mosaic_naip.tif"
NAIP_060 = DATA / "naip_clips" / "m_4208701_ne_16_060_20200902.tif"  # 0.6 m, alpha band
WEIGHTS = np.array(
    [[1.0, -0.5, 0.0, 0.2], [-0.3, 1.0, -0.2, 0.1], [0.0, -0.4, 1.0, -0.1], [0.1, 0.0, -0.6, 0.5]]
)
BIAS = np.array([0.05, -0.02, 0.01, -0.04])


@pytest.fixture(autouse=True)
def fresh_sessions() -> None:
    clear_session_cache()


def read(path: Path) -> np.ndarray:
    dataset = gdal.Open(str(path))
    return dataset.ReadAsArray()


def crop(tmp_path: Path, name: str, window: tuple[int, int, int, int], **options: object) -> Path:
    """A real-pixel GeoTIFF cut from the mosaic (xoff, yoff, width, height)."""
    target = tmp_path / name
    gdal.Translate(str(target), str(MOSAIC), srcWin=list(window), **options)
    return target


def closed_form(
    image: np.ndarray, weights: np.ndarray, bias: np.ndarray | None, scale: float
) -> np.ndarray:
    """Reference scores (K, rows, cols) of the pointwise model on raw pixels."""
    return pointwise_reference(image.astype(np.float64) * scale, weights, bias)


def decided(scores: np.ndarray, gap: float = 1e-4) -> np.ndarray:
    """Pixels whose best class beats the runner-up by more than ``gap`` (float32 noise
    cannot flip them)."""
    top2 = np.sort(scores, axis=0)[-2:]
    return (top2[1] - top2[0]) > gap


@pytest.fixture
def naip(tmp_path: Path) -> Path:
    return crop(tmp_path, "naip.tif", (100, 60, 300, 230))


@pytest.fixture
def model(tmp_path: Path) -> Path:
    contract = contract_for(4, input_scale=1 / 255)
    return pointwise_model(tmp_path / "pointwise.onnx", WEIGHTS, BIAS, contract=contract)


def test_pointwise_model_gives_the_closed_form(tmp_path: Path, naip: Path, model: Path) -> None:
    out = tmp_path / "out" / "classes.tif"
    out.parent.mkdir()
    result = classify(naip, out, model, options=ClassifyOptions(device="cpu"))
    expected_scores = closed_form(read(naip), WEIGHTS, BIAS, 1 / 255)
    expected = expected_scores.argmax(axis=0) + 1  # class values: channel + 1
    got = read(out)
    sure = decided(expected_scores)
    assert sure.mean() > 0.99
    np.testing.assert_array_equal(got[sure], expected[sure])
    assert result.pixels_classified == got.size
    assert result.execution_provider == "CPUExecutionProvider"
    # Same grid as the input, styled: nodata 0, colour table, category names, .qml.
    dataset = gdal.Open(str(out))
    assert same_grid(raster_grid(dataset), raster_grid(gdal.Open(str(naip))))
    band = dataset.GetRasterBand(1)
    assert band.GetNoDataValue() == 0 and band.DataType == gdal.GDT_Byte
    table = band.GetColorTable()
    contract = contract_for(4)
    for channel, color in contract.class_colors.items():
        rgb = tuple(int(color[i : i + 2], 16) for i in (1, 3, 5))
        assert table.GetColorEntry(channel + 1)[:3] == rgb
    assert band.GetCategoryNames()[1:5] == [contract.class_names[c] for c in range(4)]
    assert band.GetOverviewCount() == 1  # 300 px: one 2x overview
    assert "DEFLATE" in dataset.GetMetadata("IMAGE_STRUCTURE").get("COMPRESSION", "")
    qml = (out.parent / "classes.qml").read_text()
    assert 'type="paletted"' in qml and 'label="class 1"' in qml
    assert sorted(p.name for p in out.parent.iterdir()) == [
        "classes.qml",
        "classes.tif",
        "classes.tif.aux.xml",
    ]


def test_normalisation_follows_the_contract(tmp_path: Path, naip: Path) -> None:
    # class 1 where the standardised red is positive: red / 255 > 0.401.
    contract = contract_for(
        2,
        input_scale=1 / 255,
        standardization_mean=[0.401, 0.5, 0.5, 0.5],
        standardization_std=[0.2, 0.1, 0.1, 0.1],
    )
    weights = np.array([[1.0, 0, 0, 0], [0, 0, 0, 0]])
    path = pointwise_model(tmp_path / "m.onnx", weights, contract=contract)
    classify(naip, tmp_path / "out.tif", path)
    red = read(naip)[0]
    expected = np.where(red > 0.401 * 255, 1, 2)
    np.testing.assert_array_equal(read(tmp_path / "out.tif"), expected)
    assert 0.05 < (expected == 1).mean() < 0.95  # the test discriminates


def test_bands_are_mapped_by_name_or_as_chosen(tmp_path: Path, naip: Path) -> None:
    # A model of (nir, red): class 1 where nir >= red (NDVI >= 0; ties go to the first
    # channel, as argmax does).
    contract = contract_for(2, bands=("nir", "red"), input_scale=1 / 255)
    path = pointwise_model(tmp_path / "m.onnx", np.array([[1.0, 0], [0, 1.0]]), contract=contract)
    image = read(naip).astype(int)
    progress = NullProgress()
    classify(naip, tmp_path / "auto.tif", path, progress=progress)
    np.testing.assert_array_equal(read(tmp_path / "auto.tif"), np.where(image[3] >= image[0], 1, 2))
    assert any("nir <- band 4" in m for m in progress.messages)
    classify(naip, tmp_path / "chosen.tif", path, bands=[2, 3])  # "nir" = green, "red" = blue
    np.testing.assert_array_equal(
        read(tmp_path / "chosen.tif"), np.where(image[1] >= image[2], 1, 2)
    )


def one_piece_scores(model: Path, image: np.ndarray, margin: int) -> np.ndarray:
    """The model run once over the whole (reflect-padded) image: the reference."""
    padded = np.pad(image, ((0, 0), (margin, margin), (margin, margin)), mode="reflect")
    session = onnxruntime.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    (scores,) = session.run(None, {"image": padded[np.newaxis].astype(np.float32)})
    return scores[0].astype(np.float64)


def test_tiles_and_blending_equal_one_piece_inference(tmp_path: Path, naip: Path) -> None:
    # A 3x3 box filter sees one pixel around; the model crops one pixel per side, so
    # each tile's output is exact and blending must reproduce the one-piece result.
    weights = WEIGHTS[:3]
    contract = contract_for(3, input_scale=1 / 255, output_margin=1, tiles_overlap_percent=30.0)
    path = box_model(tmp_path / "box.onnx", weights, contract=contract, margin=1)
    image = read(naip).astype(np.float64) / 255
    reference = one_piece_scores(path, image, 1)
    expected = reference.argmax(axis=0) + 1
    sure = decided(reference)
    outputs = {}
    for stripe_width in (256, 4096):
        out = tmp_path / f"tiled{stripe_width}.tif"
        probs = tmp_path / f"probs{stripe_width}.tif"
        options = ClassifyOptions(tile_size=40, stripe_width=stripe_width, batch_size=3)
        result = classify(naip, out, path, probabilities=probs, options=options)
        assert result.tiles_run > 30  # really tiled (300 x 230 px in 38-px outputs)
        got = read(out)
        np.testing.assert_array_equal(got[sure], expected[sure])
        shifted = reference - reference.max(axis=0)
        softmax = np.exp(shifted) / np.exp(shifted).sum(axis=0)
        assert np.abs(read(probs).astype(int) - np.rint(softmax * 255)).max() <= 1
        outputs[stripe_width] = got
    np.testing.assert_array_equal(outputs[256], outputs[4096])


def test_extent_classifies_the_matching_pixels(tmp_path: Path, naip: Path, model: Path) -> None:
    full = tmp_path / "full.tif"
    classify(naip, full, model)
    x0, _, _, y0, _, _ = gdal.Open(str(naip)).GetGeoTransform()
    bounds = (x0 + 50.3, y0 - 120.0, x0 + 130.0, y0 - 40.6)  # partial pixels
    part = tmp_path / "part.tif"
    result = classify(naip, part, model, bounds=bounds)
    grid = result.grid
    assert grid.geotransform[0] == x0 + 50 and grid.geotransform[3] == y0 - 40
    assert (grid.width, grid.height) == (80, 80)
    np.testing.assert_array_equal(read(part), read(full)[40:120, 50:130])


def test_tiny_extent_smaller_than_a_tile(tmp_path: Path, naip: Path, model: Path) -> None:
    x0, _, _, y0, _, _ = gdal.Open(str(naip)).GetGeoTransform()
    full = tmp_path / "full.tif"
    classify(naip, full, model)
    part = tmp_path / "part.tif"
    classify(naip, part, model, bounds=(x0 + 290, y0 - 230, x0 + 300, y0 - 223))
    np.testing.assert_array_equal(read(part), read(full)[223:230, 290:300])


def test_finer_input_is_resampled_bilinear_to_the_model_grid(tmp_path: Path) -> None:
    # A real 0.6 m NAIP clip (red, green, blue, alpha) and a 1 m RGB model.
    contract = contract_for(3, bands=("red", "green", "blue"), input_scale=1 / 255)
    weights = WEIGHTS[:3, :3]
    model = pointwise_model(tmp_path / "rgb.onnx", weights, contract=contract)
    out = tmp_path / "out.tif"
    result = classify(NAIP_060, out, model)
    grid = result.grid
    assert grid.resolution == (1.0, 1.0)
    assert grid.geotransform[0] % 1 == 0 and grid.geotransform[3] % 1 == 0  # aligned
    source = gdal.Open(str(NAIP_060))
    src = raster_grid(source).bounds
    xmin, ymin, xmax, ymax = grid.bounds
    assert xmin <= src[0] < xmin + 1 and xmax - 1 < src[2] <= xmax
    assert ymin <= src[1] < ymin + 1 and ymax - 1 < src[3] <= ymax
    # Reference: GDAL's bilinear warp straight onto the output grid, then the closed form.
    warped = gdal.Warp(
        "",
        source,
        format="MEM",
        outputBounds=grid.bounds,
        width=grid.width,
        height=grid.height,
        resampleAlg="bilinear",
    ).ReadAsArray()
    rgb, alpha = warped[:3], warped[3]
    scores = closed_form(rgb, weights, None, 1 / 255)
    got = read(out)
    assert np.array_equal(got == 0, alpha == 0)  # transparent -> nodata
    check = decided(scores) & (alpha > 0)
    np.testing.assert_array_equal(got[check], scores.argmax(axis=0)[check] + 1)
    assert result.pixels_classified == int((alpha > 0).sum())


def test_nodata_and_zero_pixels_become_nodata(tmp_path: Path, model: Path) -> None:
    naip = crop(tmp_path, "naip.tif", (0, 0, 200, 150), noData=7)
    dataset = gdal.Open(str(naip), gdal.GA_Update)
    image = dataset.ReadAsArray()
    image[:, 10:30, 20:60] = 0  # all bands zero
    image[2, 50:55, :] = 7  # nodata in one band
    dataset.WriteArray(image)
    dataset = None
    result = classify(naip, tmp_path / "out.tif", model)
    got = read(tmp_path / "out.tif")
    invalid = np.all(image == 0, axis=0) | np.any(image == 7, axis=0)
    assert invalid.sum() >= 40 * 20 + 5 * 200
    np.testing.assert_array_equal(got == 0, invalid)
    assert result.pixels_classified == int((~invalid).sum())


def test_all_nodata_extent_warns_and_writes_an_empty_raster(tmp_path: Path, model: Path) -> None:
    empty = crop(tmp_path, "empty.tif", (0, 0, 100, 80), scaleParams=[[0, 255, 0, 0]])
    progress = NullProgress()
    result = classify(empty, tmp_path / "out.tif", model, progress=progress)
    assert result.pixels_classified == 0 and result.tiles_run == 0
    assert np.all(read(tmp_path / "out.tif") == 0)
    assert any("no valid pixels" in w for w in progress.warnings)


class CancelAfter(NullProgress):
    def __init__(self, calls: int) -> None:
        super().__init__()
        self.calls = calls

    def is_cancelled(self) -> bool:
        self.calls -= 1
        return self.calls < 0


def test_cancel_leaves_no_file(tmp_path: Path, naip: Path, model: Path) -> None:
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    with pytest.raises(CancelledError):
        classify(
            naip,
            out_dir / "classes.tif",
            model,
            probabilities=out_dir / "p.tif",
            confidence=out_dir / "c.tif",
            progress=CancelAfter(3),
        )
    assert list(out_dir.iterdir()) == []


class FailingReader(GdalReader):
    def __init__(self, *args: object, reads: int) -> None:
        super().__init__(*args)  # type: ignore[arg-type]
        self.reads = reads

    def read(self, window: Window) -> tuple[np.ndarray, np.ndarray]:
        self.reads -= 1
        if self.reads < 0:
            raise InputError("disk unplugged")
        return super().read(window)


def test_failure_midway_leaves_no_file(tmp_path: Path, naip: Path, model: Path) -> None:
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    existing = out_dir / "classes.tif"
    existing.write_bytes(b"previous result")
    reader = FailingReader(gdal.Open(str(naip)), [1, 2, 3, 4], reads=2)
    session = load_session(model, "cpu")
    with pytest.raises(InputError, match="disk unplugged"):
        run_pipeline(reader, reader.grid.full_window, session, OutputPaths(existing))
    reader.dataset = None  # close it now, not in the interpreter's final collection
    # The previous file is untouched and no temporary file is left.
    assert [p.name for p in out_dir.iterdir()] == ["classes.tif"]
    assert existing.read_bytes() == b"previous result"


@pytest.mark.parametrize("softmax_in_model", [False, True])
def test_probabilities_and_confidence(tmp_path: Path, naip: Path, softmax_in_model: bool) -> None:
    contract = contract_for(4, input_scale=1 / 255)
    weights = WEIGHTS * 4  # spread the probabilities
    path = pointwise_model(
        tmp_path / "m.onnx", weights, BIAS, contract=contract, softmax=softmax_in_model
    )
    classify(
        naip,
        tmp_path / "c.tif",
        path,
        probabilities=tmp_path / "p.tif",
        confidence=tmp_path / "conf.tif",
    )
    scores = closed_form(read(naip), weights, BIAS, 1 / 255)
    exp = np.exp(scores - scores.max(axis=0))
    probabilities = exp / exp.sum(axis=0)
    got = read(tmp_path / "p.tif").astype(int)
    assert got.shape == (4, 230, 300)
    assert np.abs(got - np.rint(probabilities * 255)).max() <= 1
    confidence = read(tmp_path / "conf.tif").astype(int)
    assert np.abs(confidence - np.rint(probabilities.max(axis=0) * 255)).max() <= 1
    dataset = gdal.Open(str(tmp_path / "p.tif"))
    assert dataset.GetRasterBand(2).GetDescription() == "probability of class 2 (x 255)"


def test_nodata_channel_is_excluded_and_values_mapped(tmp_path: Path, naip: Path) -> None:
    contract = contract_for(
        3,
        input_scale=1 / 255,
        nodata_channel=0,
        class_values={0: 0, 1: 10, 2: 20},
        class_names={0: "no data", 1: "wet", 2: "dry"},
    )
    weights = np.array([[0, 0, 0, 0], [0, 0, 1.0, 0], [0, 0, 0, 1.0]])
    bias = np.array([100.0, 0, 0])  # the nodata channel always scores highest
    path = pointwise_model(tmp_path / "m.onnx", weights, bias, contract=contract)
    classify(naip, tmp_path / "out.tif", path)
    image = read(naip).astype(int)
    np.testing.assert_array_equal(
        read(tmp_path / "out.tif"), np.where(image[2] >= image[3], 10, 20)
    )
    dataset = gdal.Open(str(tmp_path / "out.tif"))  # keep the dataset alive for its band
    band = dataset.GetRasterBand(1)
    assert band.GetNoDataValue() == 0  # GDAL 3.6 loads the .aux.xml names only after this
    names = band.GetCategoryNames()
    assert names[10] == "wet" and names[20] == "dry" and names[0] == "no data"


def test_batch_runs_reuse_the_cached_session(tmp_path: Path, naip: Path, model: Path) -> None:
    for index in range(3):
        progress = NullProgress()
        classify(naip, tmp_path / f"out{index}.tif", model, progress=progress)
        assert any("already loaded" in m for m in progress.messages) == (index > 0)
    assert cached_session_count() == 1


def test_fixed_size_deepness_style_model(tmp_path: Path, naip: Path) -> None:
    contract = contract_for(4, input_scale=1 / 255, tile_size=48)
    path = pointwise_model(tmp_path / "m.onnx", WEIGHTS, BIAS, contract=contract, tile=48, batch=1)
    classify(naip, tmp_path / "out.tif", path)
    scores = closed_form(read(naip), WEIGHTS, BIAS, 1 / 255)
    sure = decided(scores)
    np.testing.assert_array_equal(read(tmp_path / "out.tif")[sure], scores.argmax(axis=0)[sure] + 1)
    with pytest.raises(InputError, match="only accepts tiles of 48"):
        classify(naip, tmp_path / "other.tif", path, options=ClassifyOptions(tile_size=64))


def test_bad_inputs_are_clear_errors_and_write_nothing(
    tmp_path: Path, naip: Path, model: Path
) -> None:
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    rgb = crop(tmp_path, "rgb.tif", (0, 0, 64, 64), bandList=[1, 2, 3])
    with pytest.raises(InputError, match=r"needs 4 bands \(red, green, blue, nir\).*3 usable"):
        classify(rgb, out_dir / "a.tif", model)
    with pytest.raises(InputError, match="does not overlap the layer"):
        classify(naip, out_dir / "b.tif", model, bounds=(0.0, 0.0, 10.0, 10.0))
    with pytest.raises(InputError, match="GeoTIFF"):
        classify(naip, out_dir / "c.png", model)
    with pytest.raises(InputError, match="folder does not exist"):
        classify(naip, tmp_path / "missing" / "d.tif", model)
    (out_dir / "folder.tif").mkdir()
    with pytest.raises(InputError, match="is a folder"):
        classify(naip, out_dir / "folder.tif", model)
    (out_dir / "folder.tif").rmdir()
    with pytest.raises(InputError, match=r"would overwrite .*naip\.tif, a file that the input"):
        classify(naip, naip, model)
    not_onnx = tmp_path / "model.onnx"
    not_onnx.write_bytes(b"\x00\x01 definitely not protobuf")
    with pytest.raises(InputError, match="not an ONNX model"):
        classify(naip, out_dir / "e.tif", not_onnx)
    with pytest.raises(InputError, match="Raster not found"):
        classify(tmp_path / "nothing.tif", out_dir / "f.tif", model)
    assert list(out_dir.iterdir()) == []


def test_unwritable_folder_is_a_clear_error(tmp_path: Path, naip: Path, model: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("running as root: permissions are not enforced")
        with pytest.raises(InputError, match="not writable"):
            classify(naip, locked / "out.tif", model)
    finally:
        locked.chmod(0o700)


class ShapeRecorder:
    """Stands in for an ORT session and records the batch shapes it is given."""

    def __init__(self, session: object) -> None:
        self.session = session
        self.shapes: list[tuple[int, ...]] = []

    def run(self, names: list[str], feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        self.shapes.append(next(iter(feed.values())).shape)
        return self.session.run(names, feed)  # type: ignore[attr-defined]


def test_gpu_batches_keep_one_shape(tmp_path: Path, naip: Path, model: Path) -> None:
    session = load_session(model, "cpu")
    recorder = ShapeRecorder(session.session)
    as_gpu = dataclasses.replace(session, provider="CUDAExecutionProvider", session=recorder)
    classify(naip, tmp_path / "gpu.tif", as_gpu, options=ClassifyOptions(batch_size=7))
    classify(naip, tmp_path / "cpu.tif", session, options=ClassifyOptions(batch_size=7))
    assert {shape[0] for shape in recorder.shapes} == {7}  # the short last batch is padded
    np.testing.assert_array_equal(read(tmp_path / "gpu.tif"), read(tmp_path / "cpu.tif"))


class StubReader:
    """A tall, narrow readable grid of ones that counts cache releases."""

    def __init__(self, width: int, height: int) -> None:
        self._grid = Grid("", (0.0, 1.0, 0.0, 0.0, 0.0, -1.0), width, height)
        self.releases = 0

    @property
    def grid(self) -> Grid:
        return self._grid

    def read(self, window: Window) -> tuple[np.ndarray, np.ndarray]:
        return np.ones((4, *window.shape), np.float32), np.ones(window.shape, bool)

    def release(self) -> None:
        self.releases += 1


def test_reader_cache_is_released_every_1024_rows() -> None:
    reader = StubReader(40, 2500)
    plan = plan_tiles(40, 2500, 64, 0, 10.0)
    contract = contract_for(2)
    batches = list(
        iter_batches(
            reader, reader.grid.full_window, plan, plan.stripes(), Normalizer(contract), 4, 4
        )
    )
    assert sum(len(b.jobs) for b in batches) == plan.tile_count
    assert reader.releases == 2  # rows 1024 and 2048


LABELS = DATA / "chesapeake_1m_patches" / "m_3708020_sw_17_1_2014_mosaic_labels.tif"


def test_real_imagery_with_the_default_model(tmp_path: Path) -> None:
    from qgis_landcover.core.models.resolve import resolve_model

    try:
        model = resolve_model("")
    except InputError:
        pytest.skip("the default model is not installed")
    window = (384, 128, 256, 256)
    naip = crop(tmp_path, "naip.tif", window)
    result = classify(naip, tmp_path / "out.tif", model)
    session = load_session(model, "auto")
    got = read(tmp_path / "out.tif")
    # The output grid is the input's (1 m NAIP, the model's resolution).
    assert same_grid(result.grid, raster_grid(gdal.Open(str(naip))))
    values = {session.contract.class_values[c] for c in session.contract.class_channels}
    assert set(np.unique(got)) <= values
    # Plausibility on real labels (Chesapeake 7 classes; impervious 5, 6 -> 4 as the model).
    labels = gdal.Open(str(LABELS)).ReadAsArray(*window)
    labels = np.where(np.isin(labels, (5, 6)), 4, labels)
    compared = labels != 0
    assert np.mean(got[compared] == labels[compared]) > 0.75


# --------------------------------------------------------------------------- bounds


def test_metadata_tile_far_beyond_the_extent_is_capped(tmp_path: Path, naip: Path) -> None:
    """A model whose metadata says tile 100000 used to fail allocating its probe tile
    (298 GiB) and then its first batch; the tile is now capped to the 300 x 230 px
    extent: 300 rounded up to a multiple of 32 (the power of two in 100000) = 320."""
    contract = contract_for(4, input_scale=1 / 255, tile_size=100_000)
    model = pointwise_model(tmp_path / "huge_tile.onnx", WEIGHTS, BIAS, contract=contract)
    progress = NullProgress()
    result = classify(naip, tmp_path / "out.tif", model, progress=progress)
    assert result.tiles_run == 1
    assert any("tiles of 320 px are used" in m for m in progress.messages)
    scores = closed_form(read(naip), WEIGHTS, BIAS, 1 / 255)
    sure = decided(scores)
    np.testing.assert_array_equal(read(tmp_path / "out.tif")[sure], scores.argmax(axis=0)[sure] + 1)


def test_requested_tile_and_batch_beyond_the_extent_are_capped(
    tmp_path: Path, naip: Path, model: Path
) -> None:
    """TILE_SIZE=100000 or BATCH_SIZE=10**7 crashed allocating the batch buffer
    (hundreds of GiB); a tile beyond the extent and a batch beyond the tile count are
    pointless, and are capped."""
    progress = NullProgress()
    options = ClassifyOptions(device="cpu", tile_size=100_000)
    result = classify(naip, tmp_path / "tile.tif", model, options=options, progress=progress)
    assert result.tiles_run == 1
    assert any("tiles of 320 px are used" in m for m in progress.messages)
    progress = NullProgress()
    options = ClassifyOptions(device="cpu", batch_size=10**7)
    result = classify(naip, tmp_path / "batch.tif", model, options=options, progress=progress)
    # Tile 32 (output 32), overlap 25 % = 8 px, stride 24: columns 0, 24, ..., 264, 268
    # (13 tiles over 300 px), rows 0, 24, ..., 192, 198 (10 tiles over 230 px).
    assert result.tiles_run + result.tiles_skipped == 130
    assert any("130 tiles" in m and "batches of 130" in m for m in progress.messages)
    scores = closed_form(read(naip), WEIGHTS, BIAS, 1 / 255)
    sure = decided(scores)
    for name in ("tile.tif", "batch.tif"):
        got = read(tmp_path / name)
        np.testing.assert_array_equal(got[sure], scores.argmax(axis=0)[sure] + 1)


def test_pipeline_memory_is_estimated_term_by_term() -> None:
    """Hand-computed for tile 32, margin 0, 4 bands, 4 classes, batches of 4, stripes of
    256 px (out = 32, span = 256 + 64 = 320, strip = 32 x 320 = 10240 pixels)."""
    inputs = 4 * 4 * 4 * 32 * 32  # batch x bands x float32 x tile²: 65536
    batches = 4 * (inputs + 4 * 4 * 4 * 32 * 32)  # (QUEUE_DEPTH + 2) x (inputs + scores)
    reading = 2 * (4 * 4 * 10240 + 10240)  # strip + validity, read and padded
    blending = 4 * 4 * 32 * 320 + 4 * 32 * 320 + 32 * 320  # sums, weights, validity
    per_tile = 4 * 32 * 32 + 4 * 4 * 32 * 32  # weights, weighted scores
    finished = 2 * 4 * 4 * 32 * 256 + 2 * 8 * 32 * 256 + 6 * (256 + 32) * 256
    own = batches + reading + blending + per_tile + finished
    assert own == 1_943_552
    shape = {"tile_size": 32, "margin": 0, "bands": 4, "classes": 4, "stripe_width": 256}
    assert pipeline_memory_bytes(**shape, batch_size=4, workspace_factor=0) == own
    assert pipeline_memory_bytes(**shape, batch_size=4) == own + 66 * inputs


def test_pipeline_memory_estimate_bounds_the_arrays_allocated(tmp_path: Path) -> None:
    """The estimate (without the model's working memory, which tracemalloc cannot see)
    bounds the peak of the Python / numpy allocations of a real run."""
    image = crop(tmp_path, "wide.tif", (0, 0, 1024, 512))
    contract = contract_for(4, input_scale=1 / 255, tile_size=64, output_margin=8)
    model = pointwise_model(tmp_path / "m.onnx", WEIGHTS, contract=contract, margin=8)
    session = load_session(model, "cpu")
    options = ClassifyOptions(device="cpu", batch_size=8, stripe_width=256, overviews=False)
    tracemalloc.start()
    try:
        classify(image, tmp_path / "out.tif", session, options=options)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    estimate = pipeline_memory_bytes(
        tile_size=64, margin=8, bands=4, classes=4, batch_size=8, stripe_width=256
    )
    workspace = 66 * 8 * 4 * 4 * 64 * 64
    assert peak <= estimate - workspace


def test_memory_limit_lowers_an_automatic_batch_and_refuses_explicit_ones(
    tmp_path: Path, naip: Path, model: Path
) -> None:
    shape = {"tile_size": 32, "margin": 0, "bands": 4, "classes": 4, "stripe_width": 300}

    def need(batch: int) -> int:
        return pipeline_memory_bytes(**shape, batch_size=batch)

    limit = need(2) + (need(3) - need(2)) // 2  # room for 2 tiles per batch, not 3
    progress = NullProgress()
    options = ClassifyOptions(device="cpu", memory_limit_bytes=limit)
    classify(naip, tmp_path / "auto.tif", model, options=options, progress=progress)
    assert any("batches of 2 are used" in m for m in progress.messages)
    scores = closed_form(read(naip), WEIGHTS, BIAS, 1 / 255)
    sure = decided(scores)
    np.testing.assert_array_equal(
        read(tmp_path / "auto.tif")[sure], scores.argmax(axis=0)[sure] + 1
    )
    explicit = dataclasses.replace(options, batch_size=4)
    with pytest.raises(InputError, match=r"Batches of 4 tiles of 32 px .* \(BATCH_SIZE\) to 2 or"):
        classify(naip, tmp_path / "explicit.tif", model, options=explicit)
    assert not (tmp_path / "explicit.tif").exists()


def test_a_tile_too_large_for_the_memory_limit_is_refused_with_one_that_fits(
    tmp_path: Path, naip: Path, model: Path
) -> None:
    limit = 200 * 2**20
    options = ClassifyOptions(device="cpu", tile_size=1024, memory_limit_bytes=limit)
    # A 1100 px wide raster: tiles of 1024 are not capped (one does not cover it).
    wide = crop(tmp_path, "wide.tif", (0, 0, 1024, 512), width=1100, height=200)
    with pytest.raises(InputError, match=r"One tile of 1024 px needs about") as error:
        classify(wide, tmp_path / "out.tif", model, options=options)
    suggested = int(re.search(r"TILE_SIZE\) to (\d+) px", str(error.value)).group(1))
    shape = {"margin": 0, "bands": 4, "classes": 4, "batch_size": 1, "stripe_width": 1100}
    assert suggested % 32 == 0
    assert pipeline_memory_bytes(tile_size=suggested, **shape) <= limit
    assert pipeline_memory_bytes(tile_size=suggested + 32, **shape) > limit
    assert "200 MiB (the memory limit given)" in str(error.value)
    assert not (tmp_path / "out.tif").exists()


def test_overlap_is_bounded_and_a_model_overlap_above_it_is_clamped(
    tmp_path: Path, naip: Path
) -> None:
    contract = contract_for(4, input_scale=1 / 255, tiles_overlap_percent=90.0)
    model = pointwise_model(tmp_path / "m.onnx", WEIGHTS, BIAS, contract=contract)
    progress = NullProgress()
    result = classify(naip, tmp_path / "out.tif", model, progress=progress)
    # Overlap 50 % of 32 = 16 px, stride 16: 300 px -> 0, 16, ..., 256, 268 (18 tiles);
    # 230 px -> 0, 16, ..., 192, 198 (14 tiles).
    assert result.tiles_run + result.tiles_skipped == 18 * 14
    assert any("50 % is used" in m for m in progress.messages)
    options = ClassifyOptions(overlap_percent=99.0)
    with pytest.raises(InputError, match="Tile overlap must be 0-50 percent"):
        classify(naip, tmp_path / "o.tif", model, options=options)
