# SPDX-License-Identifier: GPL-2.0-or-later
"""Classify end to end against closed forms: tiny ONNX models whose scores are known
exactly, run over real NAIP pixels (data/chesapeake_1m_patches)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
from osgeo import gdal

from qgis_landcover.core.errors import InputError
from qgis_landcover.core.inference.classified_output import OutputPaths
from qgis_landcover.core.inference.classify import classify
from qgis_landcover.core.inference.gdal_source import GdalImageSource
from qgis_landcover.core.inference.image_source import Extent
from qgis_landcover.core.inference.pipeline import ClassifyOptions
from qgis_landcover.core.inference.session import (
    cached_session_count,
    load_session,
)
from qgis_landcover.core.progress import NullProgress
from qgis_landcover.core.raster.reading import raster_grid, same_grid

from ...conftest import DATA
from ...onnx_models import box_model, contract_for, pointwise_model
from .conftest import BIAS, WEIGHTS, closed_form, crop, decided, read

NAIP_060 = DATA / "naip_clips" / "m_4208701_ne_16_060_20200902.tif"  # 0.6 m, alpha band


def test_pointwise_model_gives_the_closed_form(tmp_path: Path, naip: Path, model: Path) -> None:
    out = tmp_path / "out" / "classes.tif"
    out.parent.mkdir()
    result = classify(
        GdalImageSource(naip), model, OutputPaths(out), options=ClassifyOptions(device="cpu")
    )
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
    classify(GdalImageSource(naip), path, OutputPaths(tmp_path / "out.tif"))
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
    classify(GdalImageSource(naip), path, OutputPaths(tmp_path / "auto.tif"), progress=progress)
    np.testing.assert_array_equal(read(tmp_path / "auto.tif"), np.where(image[3] >= image[0], 1, 2))
    assert any("nir <- band 4" in m for m in progress.messages)
    classify(
        GdalImageSource(naip), path, OutputPaths(tmp_path / "chosen.tif"), bands=[2, 3]
    )  # "nir" = green, "red" = blue
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
        result = classify(
            GdalImageSource(naip), path, OutputPaths(out, probabilities=probs), options=options
        )
        assert result.tiles_run > 30  # really tiled (300 x 230 px in 38-px outputs)
        assert (result.tile_size, result.batch_size) == (40, 3)  # as run, for the log
        got = read(out)
        np.testing.assert_array_equal(got[sure], expected[sure])
        shifted = reference - reference.max(axis=0)
        softmax = np.exp(shifted) / np.exp(shifted).sum(axis=0)
        assert np.abs(read(probs).astype(int) - np.rint(softmax * 255)).max() <= 1
        outputs[stripe_width] = got
    np.testing.assert_array_equal(outputs[256], outputs[4096])


def test_extent_classifies_the_matching_pixels(tmp_path: Path, naip: Path, model: Path) -> None:
    full = tmp_path / "full.tif"
    classify(GdalImageSource(naip), model, OutputPaths(full))
    x0, _, _, y0, _, _ = gdal.Open(str(naip)).GetGeoTransform()
    bounds = (x0 + 50.3, y0 - 120.0, x0 + 130.0, y0 - 40.6)  # partial pixels
    part = tmp_path / "part.tif"
    result = classify(GdalImageSource(naip), model, OutputPaths(part), extent=Extent(bounds))
    grid = result.grid
    assert grid.geotransform[0] == x0 + 50 and grid.geotransform[3] == y0 - 40
    assert (grid.width, grid.height) == (80, 80)
    np.testing.assert_array_equal(read(part), read(full)[40:120, 50:130])


def test_tiny_extent_smaller_than_a_tile(tmp_path: Path, naip: Path, model: Path) -> None:
    x0, _, _, y0, _, _ = gdal.Open(str(naip)).GetGeoTransform()
    full = tmp_path / "full.tif"
    classify(GdalImageSource(naip), model, OutputPaths(full))
    part = tmp_path / "part.tif"
    classify(
        GdalImageSource(naip),
        model,
        OutputPaths(part),
        extent=Extent((x0 + 290, y0 - 230, x0 + 300, y0 - 223)),
    )
    np.testing.assert_array_equal(read(part), read(full)[223:230, 290:300])


def test_finer_input_is_resampled_bilinear_to_the_model_grid(tmp_path: Path) -> None:
    # A real 0.6 m NAIP clip (red, green, blue, alpha) and a 1 m RGB model.
    contract = contract_for(3, bands=("red", "green", "blue"), input_scale=1 / 255)
    weights = WEIGHTS[:3, :3]
    model = pointwise_model(tmp_path / "rgb.onnx", weights, contract=contract)
    out = tmp_path / "out.tif"
    result = classify(GdalImageSource(NAIP_060), model, OutputPaths(out))
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
    result = classify(GdalImageSource(naip), model, OutputPaths(tmp_path / "out.tif"))
    got = read(tmp_path / "out.tif")
    invalid = np.all(image == 0, axis=0) | np.any(image == 7, axis=0)
    assert invalid.sum() >= 40 * 20 + 5 * 200
    np.testing.assert_array_equal(got == 0, invalid)
    assert result.pixels_classified == int((~invalid).sum())


def test_all_nodata_extent_warns_and_writes_an_empty_raster(tmp_path: Path, model: Path) -> None:
    empty = crop(tmp_path, "empty.tif", (0, 0, 100, 80), scaleParams=[[0, 255, 0, 0]])
    progress = NullProgress()
    result = classify(
        GdalImageSource(empty), model, OutputPaths(tmp_path / "out.tif"), progress=progress
    )
    assert result.pixels_classified == 0 and result.tiles_run == 0
    assert np.all(read(tmp_path / "out.tif") == 0)
    assert any("no valid pixels" in w for w in progress.warnings)


@pytest.mark.parametrize("softmax_in_model", [False, True])
def test_probabilities_and_confidence(tmp_path: Path, naip: Path, softmax_in_model: bool) -> None:
    contract = contract_for(4, input_scale=1 / 255)
    weights = WEIGHTS * 4  # spread the probabilities
    path = pointwise_model(
        tmp_path / "m.onnx", weights, BIAS, contract=contract, softmax=softmax_in_model
    )
    classify(
        GdalImageSource(naip),
        path,
        OutputPaths(tmp_path / "c.tif", tmp_path / "p.tif", tmp_path / "conf.tif"),
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
    classify(GdalImageSource(naip), path, OutputPaths(tmp_path / "out.tif"))
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
        classify(
            GdalImageSource(naip),
            model,
            OutputPaths(tmp_path / f"out{index}.tif"),
            progress=progress,
        )
        assert any("already loaded" in m for m in progress.messages) == (index > 0)
    assert cached_session_count() == 1


def test_fixed_size_deepness_style_model(tmp_path: Path, naip: Path) -> None:
    contract = contract_for(4, input_scale=1 / 255, tile_size=48)
    path = pointwise_model(tmp_path / "m.onnx", WEIGHTS, BIAS, contract=contract, tile=48, batch=1)
    classify(GdalImageSource(naip), path, OutputPaths(tmp_path / "out.tif"))
    scores = closed_form(read(naip), WEIGHTS, BIAS, 1 / 255)
    sure = decided(scores)
    np.testing.assert_array_equal(read(tmp_path / "out.tif")[sure], scores.argmax(axis=0)[sure] + 1)
    with pytest.raises(InputError, match="only accepts tiles of 48"):
        classify(
            GdalImageSource(naip),
            path,
            OutputPaths(tmp_path / "other.tif"),
            options=ClassifyOptions(tile_size=64),
        )


def test_bad_inputs_are_clear_errors_and_write_nothing(
    tmp_path: Path, naip: Path, model: Path
) -> None:
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    rgb = crop(tmp_path, "rgb.tif", (0, 0, 64, 64), bandList=[1, 2, 3])
    with pytest.raises(InputError, match=r"needs 4 bands \(red, green, blue, nir\).*3 usable"):
        classify(GdalImageSource(rgb), model, OutputPaths(out_dir / "a.tif"))
    with pytest.raises(InputError, match="does not overlap the layer"):
        classify(
            GdalImageSource(naip),
            model,
            OutputPaths(out_dir / "b.tif"),
            extent=Extent((0.0, 0.0, 10.0, 10.0)),
        )
    with pytest.raises(InputError, match="GeoTIFF"):
        classify(GdalImageSource(naip), model, OutputPaths(out_dir / "c.png"))
    with pytest.raises(InputError, match="folder does not exist"):
        classify(GdalImageSource(naip), model, OutputPaths(tmp_path / "missing" / "d.tif"))
    (out_dir / "folder.tif").mkdir()
    with pytest.raises(InputError, match="is a folder"):
        classify(GdalImageSource(naip), model, OutputPaths(out_dir / "folder.tif"))
    (out_dir / "folder.tif").rmdir()
    with pytest.raises(InputError, match=r"would overwrite .*naip\.tif, a file that the input"):
        classify(GdalImageSource(naip), model, OutputPaths(naip))
    not_onnx = tmp_path / "model.onnx"
    not_onnx.write_bytes(b"\x00\x01 definitely not protobuf")
    with pytest.raises(InputError, match="not an ONNX model"):
        classify(GdalImageSource(naip), not_onnx, OutputPaths(out_dir / "e.tif"))
    with pytest.raises(InputError, match="Raster not found"):
        classify(GdalImageSource(tmp_path / "nothing.tif"), model, OutputPaths(out_dir / "f.tif"))
    assert list(out_dir.iterdir()) == []


def test_unwritable_folder_is_a_clear_error(tmp_path: Path, naip: Path, model: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("running as root: permissions are not enforced")
        with pytest.raises(InputError, match="not writable"):
            classify(GdalImageSource(naip), model, OutputPaths(locked / "out.tif"))
    finally:
        locked.chmod(0o700)


LABELS = DATA / "chesapeake_1m_patches" / "m_3708020_sw_17_1_2014_mosaic_labels.tif"


def test_real_imagery_with_the_default_model(tmp_path: Path) -> None:
    from qgis_landcover.core.models.resolve import resolve_model

    try:
        model = resolve_model("")
    except InputError:
        pytest.skip("the default model is not installed")
    window = (384, 128, 256, 256)
    naip = crop(tmp_path, "naip.tif", window)
    result = classify(GdalImageSource(naip), model, OutputPaths(tmp_path / "out.tif"))
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
