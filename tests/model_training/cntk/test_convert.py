# SPDX-License-Identifier: GPL-2.0-or-later
"""Converting the 2018 CNTK model without CNTK: reader, rebuild, ONNX export, accuracy.

Oracles: the facts recorded in ``data/models/azure_2018_cntk/NOTES.md`` (variable and
function counts; overall accuracy ~0.91 for a correct conversion and ~0.42 for the
1-epoch control on the 8 real patches), the protobuf wire format (encoded by hand
here), and exact identities (transposed images, repeated conversion).
"""

from __future__ import annotations

import copy
import struct
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

from model_training.cntk import convert
from model_training.cntk.model import (
    Azure2018Classes,
    Azure2018UNet,
    azure2018_for_training,
    lower_graph,
    match_network,
)
from model_training.cntk.model import load_cntk_network as load_network
from model_training.cntk.protobuf import CntkFormatError, load_graph, parse_model_bytes
from model_training.config import load_config
from model_training.export import ExportError, export_onnx, inference_network
from model_training.release.contract import trained_contract
from qgis_landcover.core.inference.normalization import Normalizer
from qgis_landcover.core.inference.session import load_session
from qgis_landcover.core.models.contract import read_contract

from ...conftest import DATA, ROOT

CNTK = DATA / "models" / "azure_2018_cntk"
TRAINED = CNTK / "250epochs.model"
CONTROL = CNTK / "1epoch.model"
SHIPPED = ROOT / "qgis_landcover" / "models" / "azure_2018_unet.onnx"


@pytest.fixture(autouse=True)
def _few_threads() -> None:
    torch.set_num_threads(2)


@pytest.fixture(scope="module")
def trained() -> Azure2018UNet:
    return load_network(TRAINED)[0]


@pytest.fixture(scope="module")
def patches() -> convert.Patches:
    return convert.load_patches()


# --- the protobuf reader -----------------------------------------------------------------


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited field (wire type 2)."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _varint_field(number: int, value: int) -> bytes:
    return _varint(number << 3) + _varint(value)


def test_reader_decodes_hand_encoded_wire_format() -> None:
    # Dictionary{version 1, data {"w": DictionaryValue{NDArrayView float [2, 3] = 0..5},
    # "n": DictionaryValue{string "conv"}, "s": DictionaryValue{NDShape [4, 5]}}},
    # field numbers from CNTK.proto.
    floats = struct.pack("<6f", *range(6))
    view = (
        _varint_field(1, 1)  # data_type Float
        + _field(3, _field(1, _varint(2) + _varint(3)))  # shape_dim, packed
        + _field(4, _field(1, floats))  # float_values.value, packed
    )
    values = {
        "w": _varint_field(2, 11) + _field(13, view),
        "n": _varint_field(2, 6) + _field(8, b"conv"),
        "s": _varint_field(2, 7) + _field(9, _field(1, _varint(4) + _varint(5))),
    }
    data = _varint_field(1, 1) + b"".join(
        _field(2, _field(1, key.encode()) + _field(2, value)) for key, value in values.items()
    )
    parsed = parse_model_bytes(data)
    assert parsed["n"] == "conv"
    # Column-major storage: dims reversed, so element (i, j) is value i * 2 + j.
    assert parsed["s"] == (5, 4)
    np.testing.assert_array_equal(parsed["w"], np.arange(6, dtype=np.float32).reshape(3, 2))


def test_reader_rejects_other_files(tmp_path: Path) -> None:
    with pytest.raises(CntkFormatError):
        parse_model_bytes(b"\xff\xff\xff not protobuf")
    with pytest.raises(CntkFormatError):
        load_graph(ROOT / "tests" / "data" / "accuracy_cases.json")


@pytest.mark.parametrize("path", [TRAINED, CONTROL], ids=["250epochs", "1epoch"])
def test_graph_counts_match_notes(path: Path) -> None:
    graph = load_graph(path)
    kinds = Counter(v.kind for v in graph.variables.values())
    assert kinds["input"] == 1
    assert graph.inputs[0].shape == (4, 256, 256)
    assert len(graph.parameters) == 70
    assert sum(v.value.size for v in graph.parameters if v.value is not None) == 314_373
    assert len(graph.constants) == 51
    assert len(graph.functions) == 138
    blocks = Counter(f.block_op for f in graph.functions.values() if f.op == "Block")
    assert blocks == {"Convolution": 25, "ConvolutionTranspose": 3, "BatchNormalization": 17}


def test_list_prints_parameters_and_functions(capsys: pytest.CaptureFixture[str]) -> None:
    assert convert.main(["--list", str(CONTROL)]) == 0
    listing = capsys.readouterr().out
    assert "parameters (70, 314,373 values)" in listing
    assert "functions (138, 45 blocks)" in listing
    assert "aggregate_variance" in listing
    # The 1-epoch control names slice / reduce axes the newer way.
    assert "sliceStrides" in listing and "axisVec" in listing
    assert "not reachable" not in listing


# --- the rebuild ----------------------------------------------------------------------------


def test_rebuild_derives_the_2018_architecture(trained: Azure2018UNet) -> None:
    config = trained.config
    assert config.c_map == (64, 32, 32, 32)
    assert config.num_stack_layers == 2
    assert config.centred_channels == (0, 1, 2)
    assert config.output_margin == 64
    assert config.num_classes == 5
    assert sum(p.numel() for p in trained.parameters()) == 314_373
    # Weights come from the file, not from the initialiser.
    reference = load_graph(TRAINED).variables
    head_bias = next(v for v in reference.values() if v.name == "b" and v.shape == (5, 1, 1))
    assert head_bias.value is not None
    np.testing.assert_array_equal(trained.head.bias.detach().numpy(), head_bias.value.ravel())


class _MiswiredNetwork(Azure2018UNet):
    """The 2018 network without its full-resolution input skip in the last decoder."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.centre(x)
        r1 = self.stage1(self.stem(x))
        r2 = self.stage2(r1)
        r3 = self.stage3(r2)
        r4 = self.stage4(r3)
        o3 = torch.relu(self.lateral3(r3) + self.top3(self.up4(r4)))
        o2 = torch.relu(self.lateral2(r2) + self.top2(self.up3(o3)))
        o1 = torch.relu(self.lateral1(r1) + self.top1(self.up2(o2)))
        return self.crop(torch.relu(self.head(o1)))


def test_matching_rejects_a_network_wired_differently(trained: Azure2018UNet) -> None:
    lowered = lower_graph(load_graph(TRAINED))
    assert len(match_network(trained, lowered)) == 28 + 17 + 1  # convs, batch norms, centring
    with pytest.raises(CntkFormatError, match="differs from the CNTK graph"):
        match_network(_MiswiredNetwork(trained.config), lowered)


def test_swapped_kernels_equal_running_on_transposed_images(trained: Azure2018UNet) -> None:
    # The 2018 script trained on (band, cols, rows) arrays; the converter swaps every
    # kernel so the network takes (band, rows, cols). The two must agree exactly.
    stored, _ = load_network(TRAINED, transposed_images=False)
    image = torch.rand(1, 4, 192, 192, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        direct = trained(image)
        via_transpose = stored(image.transpose(2, 3)).transpose(2, 3)
    torch.testing.assert_close(direct, via_transpose, rtol=1e-4, atol=1e-4)


def test_training_variant_is_the_uncropped_network(trained: Azure2018UNet) -> None:
    # For fine-tuning: no crop, no no-data channel; its centre is the converted output.
    variant = azure2018_for_training(TRAINED).eval()
    image = torch.rand(1, 4, 256, 256, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        full, cropped = variant(image), trained(image)
    assert full.shape == (1, 4, 256, 256)
    torch.testing.assert_close(full[:, :, 64:192, 64:192], cropped[:, 1:], rtol=0, atol=0)
    assert azure2018_for_training()(image).shape == (1, 4, 256, 256)


def test_fine_tuning_starts_from_the_converted_model(
    trained: Azure2018UNet, patches: convert.Patches, tmp_path: Path
) -> None:
    # configs/finetune_2018.yaml through the training pipeline's export (the 64 px margin
    # cropped in the graph, 4 class channels): before any step, the shipped converted
    # model's scores and classes, on real patches, as the plugin's session runs them.
    config = load_config(ROOT / "model_training" / "configs" / "finetune_2018.yaml")
    variant = Azure2018Classes(copy.deepcopy(trained)).eval()
    contract = trained_contract(config, [0.0] * 4, [1.0] * 4)
    assert (contract.output_margin, contract.tiles_overlap_percent) == (64, 0.0)
    network = inference_network(variant, config.model.output_margin)
    images = patches.images[[3, 7]]  # the held-out patches (a copy; normalised in place)
    sample = torch.from_numpy(Normalizer(contract)(images.copy()))
    path = tmp_path / "start.onnx"
    export_onnx(network, path, contract, sample)
    started = load_session(path, "cpu").run(Normalizer(contract)(images.copy()))
    shipped = load_session(SHIPPED, "cpu").run(Normalizer(read_contract(SHIPPED))(images))
    assert started.shape == (2, 4, 128, 128)
    np.testing.assert_allclose(started, shipped[:, 1:], atol=1e-4)
    # Class values: channel + 1 here, the channel itself in the converted model (0 = no data).
    started_classes = np.array(list(contract.class_values.values()))[started.argmax(1)]
    np.testing.assert_array_equal(started_classes, shipped[:, 1:].argmax(1) + 1)


def test_rebuild_is_deterministic(trained: Azure2018UNet) -> None:
    again, _ = load_network(TRAINED)
    first, second = trained.state_dict(), again.state_dict()
    assert first.keys() == second.keys()
    for key in first:
        assert torch.equal(first[key], second[key]), key


# --- conversion and accuracy on the real patches (NOTES.md: ~0.91, 1 epoch ~0.42) -------


@pytest.fixture(scope="module")
def conversion(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, convert.Conversion]:
    output = tmp_path_factory.mktemp("converted") / "azure.onnx"
    return output, convert.convert(TRAINED, output)


@pytest.fixture
def one_patch(tmp_path: Path) -> Path:
    """A patch folder with one real patch: enough to check export mechanics quickly."""
    folder = tmp_path / "patches"
    folder.mkdir()
    source = sorted(convert.PATCHES.glob("*.npz"))[0]
    (folder / source.name).write_bytes(source.read_bytes())
    return folder


@pytest.mark.slow
def test_converted_model_reaches_the_documented_accuracy(
    conversion: tuple[Path, convert.Conversion],
) -> None:
    scores = conversion[1].scores  # the exported model, run by ONNX Runtime
    assert scores.statistics.observations == 8 * 128 * 128
    assert 0.90 <= scores.statistics.overall_accuracy <= 0.92
    # Patch 7, 85 % low vegetation, is the weak one at ~0.55; the others >= 0.84.
    assert scores.per_patch_accuracy[7] == pytest.approx(0.55, abs=0.03)
    assert min(scores.per_patch_accuracy[:7]) >= 0.84


@pytest.mark.slow
def test_one_epoch_control_does_not(patches: convert.Patches) -> None:
    control, _ = load_network(CONTROL)
    scores = convert.score_patches(convert.torch_predictor(control), patches, 64)
    assert 0.30 <= scores.statistics.overall_accuracy <= 0.50
    assert scores.statistics.kappa.value < 0.1


def test_scores_match_a_plain_count(patches: convert.Patches) -> None:
    # Predict "tree" everywhere: overall accuracy is the tree share of labelled pixels.
    def always_tree(images: np.ndarray) -> np.ndarray:
        scores = np.zeros((len(images), 5, 128, 128), np.float32)
        scores[:, 0] = 10.0  # the no-data channel must never win
        scores[:, 2] = 1.0
        return scores

    scores = convert.score_patches(always_tree, patches, 64)
    centre = patches.labels[:, 64:192, 64:192]
    labelled = centre[(centre >= 1) & (centre <= 4)]
    assert scores.statistics.overall_accuracy == pytest.approx(np.mean(labelled == 2))
    assert scores.statistics.kappa.value == pytest.approx(0.0)
    # Every labelled pixel is predicted tree: all low vegetation is confused with it.
    assert scores.reference_share(2) == pytest.approx(np.mean(labelled == 2))
    assert scores.confused(reference=3, predicted=2) == 1.0
    assert scores.confused(reference=2, predicted=3) == 0.0


@pytest.mark.slow
def test_converted_model_carries_the_contract(
    conversion: tuple[Path, convert.Conversion],
    trained: Azure2018UNet,
    patches: convert.Patches,
) -> None:
    output, result = conversion
    assert result.max_abs_diff <= 1e-3
    assert output.stat().st_size < 10 * 2**20
    card = output.with_suffix(".md").read_text(encoding="utf-8")
    assert f"Overall accuracy: **{result.scores.statistics.overall_accuracy:.3f}**" in card

    contract = read_contract(output)
    assert contract == result.contract
    assert contract.class_names[1] == "water" and contract.nodata_channel == 0
    assert contract.class_values == {c: c for c in range(5)}
    assert contract.band_names == ["red", "green", "blue", "nir"]
    assert (contract.resolution_cm, contract.tile_size, contract.output_margin) == (100, 256, 64)
    assert contract.input_scale == 1 / 256
    assert contract.standardization_mean is None
    assert contract.model_card == card
    assert contract.license == "MIT"

    # ONNX Runtime on a batch of another tile size agrees with PyTorch.
    images = patches.images[:3, :, 32:224, 32:224] * np.float32(1 / 256)
    onnx_scores = convert.onnx_predictor(output)(images)
    torch_scores = convert.torch_predictor(trained)(images)
    assert onnx_scores.shape == (3, 5, 64, 64)
    np.testing.assert_allclose(onnx_scores, torch_scores, atol=1e-3)


@pytest.mark.slow
def test_two_conversions_give_the_same_bytes(
    conversion: tuple[Path, convert.Conversion], tmp_path: Path
) -> None:
    # On one machine the conversion is a function of its inputs: model and card.
    output, _ = conversion
    again = tmp_path / "again.onnx"
    convert.convert(TRAINED, again)
    assert again.read_bytes() == output.read_bytes()
    assert again.with_suffix(".md").read_bytes() == output.with_suffix(".md").read_bytes()


REGENERATE = "regenerate with: python -m model_training.cntk.convert"


def split_model(path: Path) -> tuple[bytes, dict[str, np.ndarray], dict[str, str]]:
    """``path`` as (the serialised model without metadata and with every initializer
    reduced to its name, type and shape; the initializers' values; the metadata)."""
    model = onnx.load(str(path))
    weights = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    metadata = {p.key: p.value for p in model.metadata_props}
    del model.metadata_props[:]
    shapes = [
        onnx.TensorProto(name=t.name, dims=t.dims, data_type=t.data_type)
        for t in model.graph.initializer
    ]
    del model.graph.initializer[:]
    model.graph.initializer.extend(shapes)
    return model.SerializeToString(), weights, metadata


def assert_same_conversion(shipped: Path, fresh: Path) -> None:
    """Graph and metadata (model card included) exactly equal, weights within rtol
    1e-6 (8 float32 ULP): a margin for another machine's arithmetic, not for another
    conversion."""
    shipped_graph, shipped_weights, shipped_metadata = split_model(shipped)
    fresh_graph, fresh_weights, fresh_metadata = split_model(fresh)
    assert shipped_graph == fresh_graph, REGENERATE
    assert shipped_metadata == fresh_metadata, REGENERATE
    for name, value in fresh_weights.items():
        np.testing.assert_allclose(
            shipped_weights[name], value, rtol=1e-6, atol=0, err_msg=f"{name}; {REGENERATE}"
        )


@pytest.mark.slow
def test_shipped_model_is_a_fresh_conversion(
    conversion: tuple[Path, convert.Conversion],
) -> None:
    # The shipped model and card are up to date. Their bytes are pinned by the
    # catalogue's SHA-256 (test_shipped_models.py), not compared with this machine's.
    output, _ = conversion
    assert_same_conversion(SHIPPED, output)
    shipped_card = SHIPPED.with_suffix(".md").read_bytes()
    assert shipped_card == output.with_suffix(".md").read_bytes(), REGENERATE
    licence = (SHIPPED.parent / "LICENSE.azure_2018").read_text(encoding="utf-8")
    assert "MIT License" in licence and "Microsoft Corporation" in licence


def test_comparison_sees_a_weight_off_by_more_than_the_tolerance(tmp_path: Path) -> None:
    model = onnx.load(str(SHIPPED))
    tensor = next(t for t in model.graph.initializer if t.data_type == onnx.TensorProto.FLOAT)
    value = numpy_helper.to_array(tensor).copy()
    index = int(np.argmax(np.abs(value)))
    for factor, same in ((1 + 5e-7, True), (1 + 2e-6, False)):
        changed = value.copy()
        changed.flat[index] *= np.float32(factor)
        tensor.CopyFrom(numpy_helper.from_array(changed, tensor.name))
        path = tmp_path / "changed.onnx"
        onnx.save(model, str(path))
        if same:
            assert_same_conversion(SHIPPED, path)
        else:
            with pytest.raises(AssertionError, match=tensor.name):
                assert_same_conversion(SHIPPED, path)


@pytest.mark.slow
def test_failed_check_leaves_no_output(tmp_path: Path, one_patch: Path) -> None:
    output = tmp_path / "out" / "azure.onnx"
    output.parent.mkdir()
    with pytest.raises(ExportError, match="ONNX Runtime differs"):
        convert.convert(TRAINED, output, patches_folder=one_patch, max_abs_diff=0.0)
    assert list(output.parent.iterdir()) == []
