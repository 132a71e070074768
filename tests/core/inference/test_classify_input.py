# SPDX-License-Identifier: GPL-2.0-or-later
"""What classify feeds the model, through the whole pipeline: layers whose values do not
fit the model are refused or explicitly rescaled, pixels without data (nodata, alpha,
masks) stay nodata in every output and do not change their valid neighbours' classes
(the 2018 model on the shipped mosaic with half of it nodata, and warped to EPSG:4326),
and tiling stays exact around them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime
import pytest
from osgeo import gdal

from qgis_landcover.core.errors import InputError
from qgis_landcover.core.inference.classified_output import OutputPaths
from qgis_landcover.core.inference.classify import classify
from qgis_landcover.core.inference.gdal_source import GdalImageSource
from qgis_landcover.core.inference.model_input import FILL_CONTEXT, mirror_fill, neutral_values
from qgis_landcover.core.inference.pipeline import ClassifyOptions
from qgis_landcover.core.progress import NullProgress

from ...onnx_models import box_model, contract_for
from ...rasters import write_with_alpha
from .conftest import BIAS, MOSAIC, WEIGHTS, decided, read
from .conftest import closed_form as pointwise_scores

WATER = 1  # the 2018 model's class value for water


def closed_form(image: np.ndarray, gap: float = 1e-4) -> tuple[np.ndarray, np.ndarray]:
    """Classes of the conftest's pointwise model on 8-bit values and the pixels whose top
    two scores differ by more than ``gap`` (float noise cannot flip them)."""
    scores = pointwise_scores(image, WEIGHTS, BIAS, 1 / 255)
    return scores.argmax(axis=0) + 1, decided(scores, gap)


# --------------------------------------------------------------------------- values


def test_reflectance_layer_is_refused_or_rescaled(tmp_path: Path, naip: Path, model: Path) -> None:
    # Today's bug: a float32 0-1 raster ran as if it were 8-bit (all one class, exit 0).
    reflectance = tmp_path / "reflectance.tif"
    gdal.Translate(
        str(reflectance), str(naip), outputType=gdal.GDT_Float32, scaleParams=[[0, 255, 0, 1]]
    )
    out = tmp_path / "out.tif"
    with pytest.raises(InputError, match=r"far too small.*float32.*0-255.*INPUT_RANGE=0,1"):
        classify(GdalImageSource(reflectance), model, OutputPaths(out))
    assert not out.exists()
    classify(
        GdalImageSource(reflectance),
        model,
        OutputPaths(out),
        options=ClassifyOptions(input_range=(0.0, 1.0)),
    )
    expected, sure = closed_form(read(naip))
    assert sure.mean() > 0.99
    np.testing.assert_array_equal(read(out)[sure], expected[sure])


def test_16_bit_layer_is_refused_or_rescaled(tmp_path: Path, naip: Path, model: Path) -> None:
    # Today's bug: uint16 values 0-10000 shifted the classes (exit 0).
    sixteen = tmp_path / "sixteen.tif"
    gdal.Translate(
        str(sixteen), str(naip), outputType=gdal.GDT_UInt16, scaleParams=[[0, 255, 0, 10000]]
    )
    out = tmp_path / "out.tif"
    with pytest.raises(InputError, match=r"do not fit.*outside 0-255.*uint16.*INPUT_RANGE=0,10000"):
        classify(GdalImageSource(sixteen), model, OutputPaths(out))
    assert not out.exists()
    classify(
        GdalImageSource(sixteen),
        model,
        OutputPaths(out),
        options=ClassifyOptions(input_range=(0.0, 10000.0)),
    )
    # Rounded to integers at 10000/255 per step: up to 0.013 off on the 8-bit scale.
    expected, sure = closed_form(read(naip), gap=1e-3)
    assert sure.mean() > 0.98
    np.testing.assert_array_equal(read(out)[sure], expected[sure])


def test_8_bit_values_in_another_data_type_are_used_as_they_are(
    tmp_path: Path, naip: Path, model: Path
) -> None:
    as_float = tmp_path / "float.tif"
    gdal.Translate(str(as_float), str(naip), outputType=gdal.GDT_Float32)
    progress = NullProgress()
    classify(GdalImageSource(as_float), model, OutputPaths(tmp_path / "out.tif"), progress=progress)
    expected, sure = closed_form(read(naip))
    np.testing.assert_array_equal(read(tmp_path / "out.tif")[sure], expected[sure])
    assert any("data type is float32, the model's uint8" in m for m in progress.messages)


# --------------------------------------------------------------------------- masks


def test_alpha_band_in_any_position_and_masks_are_nodata(
    tmp_path: Path, naip: Path, model: Path
) -> None:
    # Red, green, blue, nir, alpha: GDAL does not report a 5th-band alpha as the mask,
    # so its transparent pixels were classified.
    image = read(naip)
    alpha = np.full(image.shape[1:], 255, dtype=np.uint8)
    alpha[:, 180:] = 0
    alpha[20:60, 30:90] = 0
    rgbna = write_with_alpha(tmp_path / "rgbna.tif", image, alpha, like=naip)
    result = classify(GdalImageSource(rgbna), model, OutputPaths(tmp_path / "alpha.tif"))
    got = read(tmp_path / "alpha.tif")
    np.testing.assert_array_equal(got == 0, alpha == 0)
    assert result.pixels_classified == int((alpha > 0).sum())
    expected, sure = closed_form(image)
    check = sure & (alpha > 0)
    np.testing.assert_array_equal(got[check], expected[check])
    # A GDAL mask band (per dataset, internal) masks the same way.
    masked = tmp_path / "masked.tif"
    dataset = gdal.Translate(str(masked), str(naip))
    dataset.CreateMaskBand(gdal.GMF_PER_DATASET)
    dataset.GetRasterBand(1).GetMaskBand().WriteArray(alpha)
    dataset = None
    classify(GdalImageSource(masked), model, OutputPaths(tmp_path / "mask.tif"))
    np.testing.assert_array_equal(read(tmp_path / "mask.tif") == 0, alpha == 0)


def test_nodata_stays_nodata_in_probabilities_and_confidence(
    tmp_path: Path, naip: Path, model: Path
) -> None:
    image = read(naip)
    invalid = np.zeros(image.shape[1:], dtype=bool)
    invalid[100:, 200:] = True
    invalid[10:20, :] = True
    data = tmp_path / "nodata.tif"
    dataset = gdal.Translate(str(data), str(naip), noData=0)
    dataset.WriteArray(np.where(invalid, 0, image))
    dataset = None
    classify(
        GdalImageSource(data),
        model,
        OutputPaths(tmp_path / "c.tif", tmp_path / "p.tif", tmp_path / "conf.tif"),
    )
    np.testing.assert_array_equal(read(tmp_path / "c.tif") == 0, invalid)
    probabilities = read(tmp_path / "p.tif")
    assert np.all(probabilities[:, invalid] == 0)
    assert np.all(probabilities[:, ~invalid].astype(int).sum(axis=0) >= 253)  # rounding
    confidence = read(tmp_path / "conf.tif")
    np.testing.assert_array_equal(confidence == 0, invalid)
    assert gdal.Open(str(tmp_path / "conf.tif")).GetRasterBand(1).GetNoDataValue() == 0


def test_tiles_around_nodata_equal_one_piece_inference(tmp_path: Path, naip: Path) -> None:
    # A 3x3 box filter cropped by one pixel: each tile's output is exact, so the tiled
    # run must equal the model run once over the whole raster filled once (the raster
    # reflected at its edges, then its invalid pixels mirror-filled), whatever the
    # stripes. Invalid pixels: a nodata block, a half-plane and scattered pixels.
    contract = contract_for(3, input_scale=1 / 255, output_margin=1, tiles_overlap_percent=30.0)
    path = box_model(tmp_path / "box.onnx", WEIGHTS[:3], contract=contract, margin=1)
    image = read(naip).astype(np.float32)
    invalid = np.zeros(image.shape[1:], dtype=bool)
    invalid[60:140, 80:170] = True
    invalid[:, 250:] = True
    invalid[np.random.default_rng(5).random(invalid.shape) < 0.01] = True
    data = tmp_path / "holes.tif"
    dataset = gdal.Translate(str(data), str(naip), noData=0)
    dataset.WriteArray(np.where(invalid, 0, image).astype(np.uint8))
    dataset = None
    pad = FILL_CONTEXT + 1
    plane = np.pad(np.where(invalid, 0, image), ((0, 0), (pad, pad), (pad, pad)), mode="reflect")
    plane_valid = np.pad(~invalid, pad, mode="reflect")
    filled = mirror_fill(plane, plane_valid, neutral_values(contract), margin=FILL_CONTEXT)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (scores,) = session.run(None, {"image": (filled / 255)[np.newaxis].astype(np.float32)})
    reference = scores[0].astype(np.float64)
    top2 = np.sort(reference, axis=0)[-2:]
    sure = ((top2[1] - top2[0]) > 1e-4) & ~invalid
    outputs = []
    for stripe_width in (256, 4096):
        out = tmp_path / f"tiled{stripe_width}.tif"
        options = ClassifyOptions(tile_size=40, stripe_width=stripe_width, batch_size=3)
        result = classify(GdalImageSource(data), path, OutputPaths(out), options=options)
        assert result.tiles_run > 30
        got = read(out)
        np.testing.assert_array_equal(got == 0, invalid)
        np.testing.assert_array_equal(got[sure], reference.argmax(axis=0)[sure] + 1)
        outputs.append(got)
    np.testing.assert_array_equal(outputs[0], outputs[1])


# --------------------------------------------------------------------------- real model


@pytest.fixture(scope="module")
def default_model() -> Path:
    from qgis_landcover.core.models.resolve import resolve_model

    try:
        return Path(resolve_model(""))
    except InputError:
        pytest.skip("the default model is not installed")


@pytest.fixture(scope="module")
def mosaic_classes(default_model: Path, tmp_path_factory: pytest.TempPathFactory) -> np.ndarray:
    """The 2018 model's classes on the whole shipped mosaic (no nodata): the reference."""
    out = tmp_path_factory.mktemp("reference") / "classes.tif"
    classify(GdalImageSource(MOSAIC), default_model, OutputPaths(out))
    return read(out)


def distance_to(invalid: np.ndarray) -> np.ndarray:
    """Euclidean distance of each pixel to the nearest invalid one (SciPy, a test
    dependency of scikit-learn, as an independent implementation)."""
    from scipy.ndimage import distance_transform_edt

    return distance_transform_edt(~invalid)


@pytest.mark.parametrize("half", ["bottom", "left"])
def test_half_of_the_mosaic_nodata_keeps_the_other_halfs_classes(
    tmp_path: Path, default_model: Path, mosaic_classes: np.ndarray, half: str
) -> None:
    # Nodata used to reach the model as black: the valid pixels next to it became
    # water (the whole column next to a left-half edge), and 1.4 % of the pixels 16 px
    # or more from the bottom half's edge changed class.
    image = read(MOSAIC)
    rows, cols = np.indices(image.shape[1:])
    invalid = rows >= 256 if half == "bottom" else cols < 512
    data = tmp_path / "half.tif"
    dataset = gdal.Translate(str(data), str(MOSAIC), noData=0)
    dataset.WriteArray(np.where(invalid, 0, image))
    dataset = None
    classify(GdalImageSource(data), default_model, OutputPaths(tmp_path / "out.tif"))
    got = read(tmp_path / "out.tif")
    np.testing.assert_array_equal(got == 0, invalid)
    far = distance_to(invalid) >= 16
    assert far.sum() > 100_000
    assert np.mean(got[far] == mosaic_classes[far]) >= 0.99
    # No water appears along the edge (the reference has next to none on this mosaic).
    near = ~invalid & ~far
    assert np.mean(mosaic_classes[near] == WATER) < 0.001
    assert np.mean(got[near] == WATER) < 0.002


def test_mosaic_warped_to_geographic_gets_no_water_rim(tmp_path: Path, default_model: Path) -> None:
    # Warped to EPSG:4326 the mosaic has black corners (0 in every band: no data);
    # classified, it gained a 14 px rim of water along them.
    warped = tmp_path / "wgs84.tif"
    gdal.Warp(str(warped), str(MOSAIC), dstSRS="EPSG:4326")
    result = classify(GdalImageSource(warped), default_model, OutputPaths(tmp_path / "out.tif"))
    assert result.grid.crs_wkt and "4326" in gdal.Open(str(warped)).GetProjection()
    got = read(tmp_path / "out.tif")
    valid = got != 0
    assert 0.9 < valid.mean() < 1.0  # the corners are nodata
    rim = valid & (distance_to(~valid) < 16)
    assert rim.sum() > 10_000
    assert np.mean(got[rim] == WATER) < 0.002
    assert np.mean(got[valid] == WATER) < 0.001
