# SPDX-License-Identifier: GPL-2.0-or-later
"""adapt_model on real imagery: a crop of the shipped mosaic and the 2018 model.

Oracles: the file itself (graph and contract unchanged but for the head and the
card), the model's own predictions used as labels (the adapted map must agree with
the original), the ONNX Runtime scores the head must reproduce, and hand-made bad
labels (each with its message)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper
from osgeo import gdal

from qgis_landcover.core.adaptation.adapt import AdaptOptions, adapt_model
from qgis_landcover.core.adaptation.features import LabelPoints
from qgis_landcover.core.adaptation.head import Head, scores_from_features
from qgis_landcover.core.errors import InputError, ModelContractError, OverwriteError
from qgis_landcover.core.files.checksum import file_sha256
from qgis_landcover.core.inference.classified_output import OutputPaths
from qgis_landcover.core.inference.classify import classify
from qgis_landcover.core.inference.gdal_source import GdalImageSource
from qgis_landcover.core.inference.pipeline import ClassifyOptions
from qgis_landcover.core.inference.session import load_session
from qgis_landcover.core.models.contract import read_contract
from qgis_landcover.core.models.onnx_file import read_initializers

from ...conftest import ROOT
from ...onnx_models import without_features_output
from ...rasters import mosaic_crop

MODEL = ROOT / "qgis_landcover" / "models" / "azure_2018_unet.onnx"
OPTIONS = AdaptOptions(device="cpu")


@pytest.fixture(scope="module")
def crop(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    """A 192 x 192 crop of the mosaic (real NAIP) and its labels (5, 6 -> 4)."""
    image, labels = mosaic_crop(tmp_path_factory.mktemp("adapt"), 192)
    return image, np.where(np.isin(labels, [5, 6]), 4, labels)


def points_on(image: Path, rows: np.ndarray, cols: np.ndarray, values: list) -> LabelPoints:
    x0, dx, _, y0, _, dy = gdal.Open(str(image)).GetGeoTransform()
    return LabelPoints(x0 + (cols + 0.5) * dx, y0 + (rows + 0.5) * dy, np.asarray(values))


def sample(
    classes: np.ndarray, per_class: dict[int, int], seed: int = 0
) -> tuple[np.ndarray, np.ndarray, list]:
    """``per_class`` random pixels (rows, cols, values) of each class of ``classes``."""
    generator = np.random.default_rng(seed)
    rows: list[int] = []
    cols: list[int] = []
    values: list = []
    for value, count in per_class.items():
        r, c = np.nonzero(classes == value)
        pick = generator.choice(len(r), size=count, replace=False)
        rows += list(r[pick])
        cols += list(c[pick])
        values += [value] * count
    return np.array(rows), np.array(cols), values


def classify_with(model: Path, image: Path, output: Path) -> np.ndarray:
    classify(GdalImageSource(image), model, OutputPaths(output),
             options=ClassifyOptions(device="cpu", overviews=False))  # fmt: skip
    return gdal.Open(str(output)).ReadAsArray()


@pytest.mark.parametrize("name", ["azure_2018_unet", "azure_2018_unet_finetuned"])
def test_head_reproduces_the_models_scores(name: str) -> None:
    # The features output and the head named in the metadata give the scores of both
    # shipped fp32 models (the fine-tuned one keeps head channels 1-4).
    model = MODEL.with_name(f"{name}.onnx")
    session = load_session(model, "cpu")
    features = session.contract.features_output
    assert features is not None and features.neighbourhood_features == 576
    assert features.head_channels == (None if name == "azure_2018_unet" else (1, 2, 3, 4))
    batch = np.random.default_rng(0).uniform(0, 1, (1, 4, 160, 160)).astype(np.float32)
    scores, maps = session.session.run(["scores", features.name], {"image": batch})
    weights = read_initializers(model, [features.weight, features.bias])
    head = Head(
        weights[features.weight], weights[features.bias], features.activation,
        features.head_channels,
    )  # fmt: skip
    computed = scores_from_features(maps, head, features, session.contract.output_margin)
    np.testing.assert_allclose(computed, scores, atol=1e-4)


def test_adapted_model_keeps_graph_and_contract(crop: tuple, tmp_path: Path) -> None:
    image, reference = crop
    rows, cols, values = sample(reference, {2: 15, 3: 15})
    output = tmp_path / "adapted.onnx"
    result = adapt_model(
        GdalImageSource(image), MODEL, points_on(image, rows, cols, values), output,
        options=OPTIONS,
    )  # fmt: skip
    assert result.labels_per_class == {2: 15, 3: 15} and result.labels_used == 30
    assert 0.0 <= result.cv_accuracy <= 1.0
    assert result.cross_validation.confusion.sum() == 30
    # Same graph and weights but the head; same contract but name, card, provenance.
    original, adapted = onnx.load(str(MODEL)), onnx.load(str(output))
    assert [n.SerializeToString() for n in adapted.graph.node] == [
        n.SerializeToString() for n in original.graph.node
    ]
    head = {"head.weight", "head.bias"}
    changed = {
        t.name
        for t, u in zip(original.graph.initializer, adapted.graph.initializer, strict=True)
        if not np.array_equal(numpy_helper.to_array(t), numpy_helper.to_array(u))
    }
    assert changed == head
    before, after = read_contract(MODEL), read_contract(output)
    for key in ("class_names", "class_values", "band_names", "output_margin", "features_output",
                "input_scale", "tile_size", "resolution_cm"):  # fmt: skip
        assert getattr(after, key) == getattr(before, key)
    assert after.name == "azure-2018-unet-adapted"
    adaptation = after.provenance["adaptation"]
    assert after.provenance["adapted_from"]["sha256"] == file_sha256(MODEL)
    assert adaptation["labels_per_class"] == {"2": 15, "3": 15}
    assert adaptation["cv_accuracy"] == pytest.approx(result.cv_accuracy)
    assert "## Local adaptation" in after.model_card and "| 2 | tree canopy | 15 |" in (
        after.model_card
    )
    assert json.loads(json.dumps(after.provenance)) == after.provenance
    # It runs in classify like any model.
    classes = classify_with(output, image, tmp_path / "adapted_map.tif")
    assert classes.shape == (192, 192) and set(np.unique(classes)) <= {1, 2, 3, 4}


def test_labels_that_agree_with_the_model_change_almost_nothing(
    crop: tuple, tmp_path: Path
) -> None:
    image, _ = crop
    original = classify_with(MODEL, image, tmp_path / "original.tif")
    present = {int(v): 20 for v, n in zip(*np.unique(original, return_counts=True), strict=True)
               if n >= 20}  # fmt: skip
    rows, cols, values = sample(original, present, seed=1)
    output = tmp_path / "agreeing.onnx"
    adapt_model(GdalImageSource(image), MODEL, points_on(image, rows, cols, values), output,
                options=OPTIONS)  # fmt: skip
    adapted = classify_with(output, image, tmp_path / "agreeing_map.tif")
    # The pull chosen by cross-validation is the strongest (measured: 0.98 agreement).
    assert np.mean(adapted == original) >= 0.97


def test_class_names_are_accepted(crop: tuple, tmp_path: Path) -> None:
    image, reference = crop
    rows, cols, values = sample(reference, {2: 6, 3: 6})
    names = ["Tree canopy" if v == 2 else "low vegetation" for v in values]
    options = AdaptOptions(device="cpu", prior_shift=False)
    result = adapt_model(GdalImageSource(image), MODEL, points_on(image, rows, cols, names),
                         tmp_path / "named.onnx", options=options)  # fmt: skip
    assert result.area_shares == {} and result.prior_shift == {}
    assert result.labels_per_class == {2: 6, 3: 6}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("outside", r"1 of 12 labels lie outside the raster or the extent \(the first, label 12"),
        ("unknown", r"2 labels have class values the model does not know \('7', 'forest'\)"),
        ("few", r"Too few labels for low vegetation \(3\): 4"),
        ("one_class", r"labels of at least two classes"),
    ],
)
def test_bad_labels_get_clear_messages(
    crop: tuple, tmp_path: Path, change: str, message: str
) -> None:
    image, reference = crop
    rows, cols, values = sample(reference, {2: 6, 3: 6})
    values = list(values)
    if change == "outside":
        cols[-1] = 5000
    elif change == "unknown":
        values[0], values[1] = 7, "forest"
    elif change == "few":
        values = [2] * 8 + [3] * 4
    elif change == "one_class":
        values = [2] * 12
    with pytest.raises(InputError, match=message):
        adapt_model(GdalImageSource(image), MODEL, points_on(image, rows, cols, values),
                    tmp_path / "bad.onnx", options=OPTIONS)  # fmt: skip
    assert not (tmp_path / "bad.onnx").exists()


def test_labels_on_pixels_without_data(crop: tuple, tmp_path: Path) -> None:
    image, reference = crop
    holed = tmp_path / "holed.tif"
    gdal.Translate(str(holed), str(image))
    dataset = gdal.Open(str(holed), gdal.GA_Update)
    for band in range(1, 5):
        dataset.GetRasterBand(band).WriteArray(np.zeros((40, 40), np.uint8), 0, 0)
    dataset = None
    rows, cols, values = sample(reference, {2: 6, 3: 6})
    rows[:2], cols[:2] = [5, 10], [5, 10]
    with pytest.raises(InputError, match=r"2 of 12 labels fall on pixels without data"):
        adapt_model(GdalImageSource(holed), MODEL, points_on(holed, rows, cols, values),
                    tmp_path / "bad.onnx", options=OPTIONS)  # fmt: skip


def test_model_without_features_output(crop: tuple, tmp_path: Path) -> None:
    image, reference = crop
    plain = without_features_output(MODEL, tmp_path / "plain.onnx")
    rows, cols, values = sample(reference, {2: 6, 3: 6})
    with pytest.raises(ModelContractError, match="does not expose its penultimate features"):
        adapt_model(GdalImageSource(image), plain, points_on(image, rows, cols, values),
                    tmp_path / "out.onnx", options=OPTIONS)  # fmt: skip


def test_output_never_overwrites_the_model(crop: tuple, tmp_path: Path) -> None:
    image, reference = crop
    copy = tmp_path / "model.onnx"
    copy.write_bytes(MODEL.read_bytes())
    rows, cols, values = sample(reference, {2: 6, 3: 6})
    with pytest.raises(OverwriteError):
        adapt_model(GdalImageSource(image), copy, points_on(image, rows, cols, values), copy,
                    options=OPTIONS)  # fmt: skip
    assert copy.read_bytes() == MODEL.read_bytes()
