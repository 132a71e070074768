# SPDX-License-Identifier: GPL-2.0-or-later
"""Model validation: the contract against itself, the graph against the contract (on
loading a session and on every batch), and the model file (exists, pinned checksum, a
download that is a usable model)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from qgis_landcover.core.errors import ChecksumError, InputError, ModelContractError
from qgis_landcover.core.files.checksum import file_sha256
from qgis_landcover.core.inference.session import clear_session_cache, load_session
from qgis_landcover.core.models.contract import ModelContract
from qgis_landcover.core.models.validation import (
    check_checksum,
    check_downloaded_model,
    check_graph,
    check_model_file,
    check_scores,
)

from ...onnx_models import box_model, contract_for, pointwise_model
from .test_contract import example_contract

WEIGHTS = np.array([[1.0, -1.0, 0.0, 0.5], [0.0, 2.0, -1.0, 0.0], [-1.0, 0.0, 1.0, 1.0]])


@pytest.fixture(autouse=True)
def empty_cache() -> None:
    clear_session_cache()


def tensor(name: str, shape: list[object], kind: str = "tensor(float)") -> SimpleNamespace:
    """An ONNX Runtime ``NodeArg`` as the graph check reads it."""
    return SimpleNamespace(name=name, type=kind, shape=shape)


# --------------------------------------------------------------------------- contract


@pytest.mark.parametrize(
    ("props", "key"),
    [
        ({"class_names": "{}"}, "class_names"),
        ({"resolution": '"fine"'}, "resolution"),
        ({"tile_size": "2.5"}, "tile_size"),
        ({"class_colors": '{"0": "green", "1": "#1f78b4", "2": "#33a02c"}'}, "class_colors"),
        ({"nodata_channel": "7"}, "nodata_channel"),
        ({"output_margin": "128"}, "output_margin"),
        ({"standardization_std": "[1, 2]"}, "standardization_std"),
        ({"model_type": '"Detector"'}, "model_type"),
    ],
)
def test_malformed_metadata_names_the_key(props: dict[str, str], key: str) -> None:
    good = example_contract().to_metadata_props()
    with pytest.raises(ModelContractError, match=key):
        ModelContract.from_metadata_props({**good, **props})


@pytest.mark.parametrize(
    ("props", "message"),
    [
        ({"input_dtype": '"int7"'}, "'input_dtype' 'int7' is not one of"),
        ({"input_range": "[5, 1]"}, "'input_range' must be \\[low, high\\] with low < high"),
        ({"input_range": "[0, 1, 2]"}, "'input_range' must be \\[low, high\\], got 3 values"),
        ({"input_range": "[0, 300]", "input_dtype": '"uint8"'}, "does not fit 'input_dtype'"),
        ({"input_range": '"0-255"'}, "'input_range' is malformed"),
    ],
)
def test_malformed_input_keys_are_named(props: dict[str, str], message: str) -> None:
    good = example_contract().to_metadata_props()
    with pytest.raises(ModelContractError, match=message):
        ModelContract.from_metadata_props({**good, **props})


def test_a_contract_is_checked_when_it_is_built() -> None:
    with pytest.raises(ModelContractError, match="'class_values' must be distinct integers 1-255"):
        example_contract(class_values={0: 0, 1: 5, 2: 5})
    with pytest.raises(ModelContractError, match="'standardization_mean' has 2 values for 4 bands"):
        example_contract(standardization_mean=[0.5, 0.5])
    assert isinstance(example_contract(), ModelContract)


# --------------------------------------------------------------------------- graph


def test_a_static_graph_is_checked_without_a_probe() -> None:
    contract = contract_for(3, tile_size=64, output_margin=8)
    checked, shape = check_graph(
        "m.onnx",
        contract,
        [tensor("image", [2, 4, 64, 64])],
        [tensor("scores", [2, 3, 48, 48])],
        names_bands=True,
    )
    assert checked is contract
    assert (shape.input_name, shape.output_name) == ("image", "scores")
    assert (shape.fixed_batch, shape.fixed_tile, shape.needs_probe) == (2, 64, False)
    _, dynamic = check_graph(
        "m.onnx",
        contract,
        [tensor("image", ["N", 4, "H", "W"])],
        [tensor("scores", ["N", 3, "H", "W"])],
        names_bands=True,
    )
    assert (dynamic.fixed_batch, dynamic.fixed_tile, dynamic.needs_probe) == (None, None, True)


@pytest.mark.parametrize(
    ("inputs", "outputs", "names_bands", "message"),
    [
        (
            [tensor("a", ["N", 4, 32, 32]), tensor("b", ["N", 4, 32, 32])],
            [tensor("s", ["N", 3, 32, 32])],
            True,
            "has 2 inputs",
        ),
        (
            [tensor("a", ["N", 4, 32, 32], "tensor(uint8)")],
            [tensor("s", ["N", 3, 32, 32])],
            True,
            r"tensor\(uint8\); it must be tensor\(float\)",
        ),
        ([tensor("a", ["N", 4, 32])], [tensor("s", ["N", 3, 32, 32])], True, "N x C x H x W"),
        (
            [tensor("a", ["N", 4, 32, 64])],
            [tensor("s", ["N", 3, 32, 64])],
            True,
            r"square tiles \(H = W\)",
        ),
        (
            [tensor("a", ["N", "C", 32, 32])],
            [tensor("s", ["N", 3, 32, 32])],
            False,
            "lacks 'band_names' and the input's channel count is dynamic",
        ),
    ],
)
def test_graphs_a_segmentation_model_cannot_have_are_named(
    inputs: list[SimpleNamespace], outputs: list[SimpleNamespace], names_bands: bool, message: str
) -> None:
    with pytest.raises(ModelContractError, match=rf"^m\.onnx: .*{message}"):
        check_graph("m.onnx", contract_for(3), inputs, outputs, names_bands=names_bands)


def test_scores_must_have_the_promised_shape() -> None:
    contract = contract_for(3, output_margin=2)
    check_scores("m.onnx", contract, np.zeros((2, 3, 28, 36)), (2, 4, 32, 40))
    with pytest.raises(
        ModelContractError, match=r"m\.onnx: .*shape \(2, 3, 32, 40\).*\(2, 3, 28, 36\)"
    ):
        check_scores("m.onnx", contract, np.zeros((2, 3, 32, 40)), (2, 4, 32, 40))


@pytest.mark.parametrize("tile", [32, None])
def test_class_count_must_match_output_channels(tmp_path: Path, tile: int | None) -> None:
    path = pointwise_model(tmp_path / "m.onnx", WEIGHTS, contract=contract_for(4), tile=tile)
    with pytest.raises(ModelContractError, match="class_names"):
        load_session(path, "cpu")


def test_band_count_must_match_input_channels(tmp_path: Path) -> None:
    contract = contract_for(3, bands=("red", "green", "blue"))
    path = pointwise_model(tmp_path / "m.onnx", WEIGHTS, contract=contract, tile=32)
    with pytest.raises(ModelContractError, match=r"band_names.*red, green, blue.*4 channels"):
        load_session(path, "cpu")


def test_fixed_tile_must_match_tile_size(tmp_path: Path) -> None:
    path = pointwise_model(tmp_path / "m.onnx", WEIGHTS, contract=contract_for(3), tile=64)
    with pytest.raises(ModelContractError, match=r"'tile_size' is 32.*fixed at 64 x 64"):
        load_session(path, "cpu")


@pytest.mark.parametrize("tile", [32, None])
def test_output_margin_must_match_the_crop(tmp_path: Path, tile: int | None) -> None:
    weights = WEIGHTS[:2]
    # The graph crops 2 pixels per side; metadata claiming 0 (or 3) is caught on load.
    for claimed in (0, 3):
        contract = contract_for(2, output_margin=claimed)
        path = box_model(
            tmp_path / f"m{claimed}.onnx", weights, contract=contract, tile=tile, margin=2
        )
        with pytest.raises(ModelContractError, match="output_margin"):
            load_session(path, "cpu")
    good = box_model(
        tmp_path / "good.onnx",
        weights,
        contract=contract_for(2, output_margin=2),
        tile=tile,
        margin=2,
    )
    session = load_session(good, "cpu")
    assert session.run(np.zeros((1, 4, 32, 32), np.float32)).shape == (1, 2, 28, 28)
    assert session.fixed_tile == tile


def test_deepness_metadata_takes_its_bands_from_the_graph(tmp_path: Path) -> None:
    props = {
        "model_type": json.dumps("Segmentor"),
        "class_names": json.dumps({"0": "background", "1": "field", "2": "road"}),
        "resolution": json.dumps(50),
        "tiles_size": json.dumps(32),
        "tiles_overlap": json.dumps(15),
    }
    path = pointwise_model(tmp_path / "deepness.onnx", WEIGHTS, metadata=props, tile=32, batch=1)
    session = load_session(path, "cpu")
    contract = session.contract
    assert contract.band_names == ["band1", "band2", "band3", "band4"]
    assert contract.input_scale == pytest.approx(1 / 255)
    assert contract.class_values == {0: 1, 1: 2, 2: 3}
    assert session.fixed_batch == 1 and session.fixed_tile == 32


# --------------------------------------------------------------------------- file


def test_a_model_is_one_existing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="Model file not found"):
        check_model_file(tmp_path / "absent.onnx")
    with pytest.raises(InputError, match="is a folder, not a file"):
        check_model_file(tmp_path)
    model = pointwise_model(tmp_path / "m.onnx", WEIGHTS, contract=contract_for(3))
    check_model_file(model)


def test_a_pinned_checksum_must_match(tmp_path: Path) -> None:
    model = pointwise_model(tmp_path / "m.onnx", WEIGHTS, contract=contract_for(3))
    check_checksum(model, None)
    check_checksum(model, file_sha256(model))
    with pytest.raises(ChecksumError, match=f"expected {'0' * 64}, got {file_sha256(model)}"):
        check_checksum(model, "0" * 64)


def test_a_download_that_is_no_usable_model_is_named_by_its_url(tmp_path: Path) -> None:
    url = "https://example.org/m.onnx"
    text = tmp_path / "m.onnx.part"
    text.write_text("<html>not found</html>")
    with pytest.raises(
        InputError, match=r"^The file downloaded from https://example\.org/m\.onnx"
    ) as error:
        check_downloaded_model(text, url)
    assert str(tmp_path) not in str(error.value)
    props = contract_for(3).to_metadata_props()
    del props["tile_size"], props["tiles_size"]
    bare = pointwise_model(tmp_path / "bare.onnx", WEIGHTS, metadata=props)
    with pytest.raises(
        ModelContractError, match=r"not a usable land-cover model: .*lacks 'tile_size'"
    ):
        check_downloaded_model(bare, url)
    check_downloaded_model(
        pointwise_model(tmp_path / "ok.onnx", WEIGHTS, contract=contract_for(3)), url
    )
