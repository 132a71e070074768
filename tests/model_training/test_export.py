# SPDX-License-Identifier: GPL-2.0-or-later
"""The U-Net's shapes and size, and the ONNX export: ONNX Runtime reproduces PyTorch,
the metadata passes the plugin core's contract validation, and the plugin's classifier
runs the exported file on a real raster."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from model_training.config import load_config
from model_training.export import ExportError, build_model, export_onnx
from model_training.release.contract import trained_contract
from model_training.unet import UNet, count_parameters
from qgis_landcover.core.inference.classified_output import OutputPaths
from qgis_landcover.core.inference.classify import classify
from qgis_landcover.core.inference.gdal_source import GdalImageSource
from qgis_landcover.core.inference.normalization import Normalizer
from qgis_landcover.core.inference.pipeline import ClassifyOptions
from qgis_landcover.core.inference.session import load_session
from qgis_landcover.core.models.contract import FeaturesOutput, ModelContract, read_contract
from qgis_landcover.core.raster.reading import open_raster, read_window

from .tiny import MOSAIC_IMAGE, patch, tiny_config

# Band statistics of the training patches (scaled units), as a trained model has them.
MEAN = [0.45, 0.49, 0.42, 0.43]
STD = [0.16, 0.13, 0.09, 0.14]
RGB_TWO_CLASSES = ModelContract(
    class_names={0: "a", 1: "b"},
    band_names=["red", "green", "blue"],
    resolution_cm=100,
    tile_size=32,
)
"""The contract of the small RGB models of the features-output tests."""


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def trained_like(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Give batch norm non-trivial running statistics, as training would."""
    generator = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.normal_(0, 0.5, generator=generator)
            module.running_var.uniform_(0.5, 2.0, generator=generator)
    return model.eval()


def real_sample(contract: ModelContract, size: int) -> torch.Tensor:
    """Two real NAIP windows, normalised the way the plugin normalises them."""
    tiles = [np.load(patch(i))["arr_0"][0, 0:4, :size, :size].astype(np.float32) for i in (0, 3)]
    return torch.from_numpy(Normalizer(contract)(np.stack(tiles)))


@pytest.mark.parametrize("shape", [(1, 4, 64, 64), (2, 4, 70, 53), (1, 4, 16, 200)])
def test_unet_output_has_the_input_size(shape: tuple[int, ...]) -> None:
    model = UNet(base_width=4, depth=3, max_width=16).eval()
    with torch.no_grad():
        assert model(torch.zeros(shape)).shape == (shape[0], 4, *shape[2:])


def test_default_model_is_well_under_10_mb_as_onnx(tmp_path: Path) -> None:
    config = load_config(None, ["data.train=[x.csv]"])
    model = trained_like(build_model(config))
    contract = trained_contract(config, MEAN, STD)
    path = tmp_path / "default.onnx"
    export_onnx(model, path, contract, real_sample(contract, 64))
    size_mb = path.stat().st_size / 1e6
    assert size_mb < 6.0, size_mb
    assert size_mb == pytest.approx(count_parameters(model) * 4 / 1e6, rel=0.05)


def test_export_round_trip(tmp_path: Path) -> None:
    config = tiny_config(tmp_path)
    model = trained_like(build_model(config))
    metrics = {"overall_accuracy": 0.9, "kappa": 0.8, "miou": 0.7, "iou": {"2": 0.8, "3": 0.6}}
    contract = trained_contract(
        config, MEAN, STD, metrics=metrics, provenance={"training_data": ["p0.npz"]}
    )
    sample = real_sample(contract, 96)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    path = tmp_path / "model.onnx"
    difference = export_onnx(model, path, contract, sample)
    assert difference < 1e-4
    for key, value in model.state_dict().items():  # the caller's model is untouched
        assert torch.equal(value, before[key])

    # The metadata passes the core's validation, read both ways, and says what we meant.
    props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    # The export adds the features output: the input of the U-Net's 1 x 1 head.
    head = model.head
    assert read_contract(path).features_output == FeaturesOutput(
        "features", head.in_channels, 1, "head.weight", "head.bias", "none"
    )
    contract = replace(contract, features_output=read_contract(path).features_output)
    assert ModelContract.from_metadata_props(props) == contract
    read = read_contract(path)
    assert read == contract
    assert read.class_names == {0: "water", 1: "tree canopy", 2: "low vegetation",
                                3: "barren and impervious"}  # fmt: skip
    assert read.class_values == {0: 1, 1: 2, 2: 3, 3: 4}
    assert read.standardization_mean == MEAN and read.standardization_std == STD
    assert read.input_scale == pytest.approx(1 / 255)
    assert read.output_margin == 0 and read.nodata_channel is None
    assert "Overall accuracy: 0.9000" in read.model_card
    assert read.provenance["training_data"] == ["p0.npz"]

    # ONNX Runtime through the plugin's own session, on a size other than the sample's.
    session = load_session(path, "cpu")
    other = real_sample(contract, 48)
    with torch.no_grad():
        expected = model(other).numpy()
    np.testing.assert_allclose(session.run(other.numpy()), expected, atol=1e-4)


def test_fp16_variant_is_smaller_and_close(tmp_path: Path) -> None:
    config = load_config(None, ["data.train=[x.csv]"])
    model = trained_like(build_model(config), seed=1)
    contract = trained_contract(config, MEAN, STD)
    sample = real_sample(contract, 64)
    full, half = tmp_path / "m.onnx", tmp_path / "m.fp16.onnx"
    export_onnx(model, full, contract, sample)
    difference = export_onnx(model, half, contract, sample, fp16=True)
    with torch.no_grad():
        scale = float(model(sample).abs().max())
    assert 0 < difference < 0.05 * max(1.0, scale)
    assert half.stat().st_size < 0.55 * full.stat().st_size
    assert read_contract(half) == contract


def folded_in_float64(model: torch.nn.Module) -> list[tuple[np.ndarray, np.ndarray | None]]:
    """The oracle: (weight, bias) of every ``Conv2d`` in execution order, with the
    ``BatchNorm2d`` right after it folded in by numpy in float64 and rounded once to
    float32 (epsilon as the float32 that ONNX stores)."""
    expected = []
    modules = list(model.modules())
    for module, following in zip(modules, [*modules[1:], None], strict=True):
        if not isinstance(module, torch.nn.Conv2d):
            continue
        weight = module.weight.detach().numpy().astype(np.float64)
        bias = None if module.bias is None else module.bias.detach().numpy().astype(np.float64)
        if isinstance(following, torch.nn.BatchNorm2d):
            gamma, beta, mean, variance = (
                t.detach().numpy().astype(np.float64)
                for t in (following.weight, following.bias, following.running_mean,
                          following.running_var)
            )  # fmt: skip
            scale = gamma / np.sqrt(variance + np.float64(np.float32(following.eps)))
            weight = weight * scale[:, None, None, None]
            bias = ((0.0 if bias is None else bias) - mean) * scale + beta
        expected.append(
            (weight.astype(np.float32), None if bias is None else bias.astype(np.float32))
        )
    return expected


def test_batch_norm_is_folded_in_float64_not_by_torch(tmp_path: Path) -> None:
    # torch.onnx folds batch norm in float32 through MKL, whose rounding depends on the
    # CPU (issue 11). The export's convolutions must be the float64 fold rounded once,
    # bit for bit, and every other weight the module's own tensor: bytes that depend on
    # the weights only.
    config = tiny_config(tmp_path)
    model = trained_like(build_model(config), seed=2)
    generator = torch.Generator().manual_seed(3)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):  # scale and shift, as training gives
            module.weight.data.uniform_(0.5, 1.5, generator=generator)
            module.bias.data.normal_(0, 0.1, generator=generator)
    contract = trained_contract(config, MEAN, STD)
    path = tmp_path / "model.onnx"
    export_onnx(model, path, contract, real_sample(contract, 32))
    graph = onnx.load(str(path)).graph
    assert not [n for n in graph.node if n.op_type == "BatchNormalization"]
    values = {t.name: onnx.numpy_helper.to_array(t) for t in graph.initializer}
    aliases = {n.output[0]: n.input[0] for n in graph.node if n.op_type == "Identity"}

    def value(name: str) -> np.ndarray:
        while name in aliases:
            name = aliases[name]
        return values[name]

    convs = [n for n in graph.node if n.op_type == "Conv"]
    expected = folded_in_float64(model)
    assert len(convs) == len(expected) == 2 * 3 + 2 * 2 + 1  # depth 2: 3 encoders, 2 decoders, head
    for conv, (weight, bias) in zip(convs, expected, strict=True):
        np.testing.assert_array_equal(value(conv.input[1]), weight, err_msg=conv.name)
        assert bias is not None  # every convolution here has a bias or a batch norm
        np.testing.assert_array_equal(value(conv.input[2]), bias, err_msg=conv.name)
    transposed = [n for n in graph.node if n.op_type == "ConvTranspose"]
    upsamples = [m for m in model.modules() if isinstance(m, torch.nn.ConvTranspose2d)]
    for node, module in zip(transposed, upsamples, strict=True):
        np.testing.assert_array_equal(value(node.input[1]), module.weight.detach().numpy())
        np.testing.assert_array_equal(value(node.input[2]), module.bias.detach().numpy())


class _Unfoldable(torch.nn.Module):
    """Batch norms that cannot be folded into a convolution: one after a transposed
    convolution, one after a convolution whose output is also read elsewhere."""

    def __init__(self) -> None:
        super().__init__()
        self.up = torch.nn.ConvTranspose2d(4, 4, 3, padding=1)
        self.up_norm = torch.nn.BatchNorm2d(4)
        self.conv = torch.nn.Conv2d(4, 4, 3, padding=1)
        self.conv_norm = torch.nn.BatchNorm2d(4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(self.up_norm(self.up(x)))
        return self.conv_norm(x) + x


def test_batch_norms_that_cannot_be_folded_stay_nodes(tmp_path: Path) -> None:
    config = tiny_config(tmp_path)
    model = trained_like(_Unfoldable())
    contract = trained_contract(config, MEAN, STD)
    path = tmp_path / "model.onnx"
    difference = export_onnx(model, path, contract, real_sample(contract, 16))
    assert difference < 1e-4
    kinds = [n.op_type for n in onnx.load(str(path)).graph.node]
    assert kinds.count("BatchNormalization") == 2 and kinds.count("Conv") == 1


def test_failed_check_leaves_no_file(tmp_path: Path) -> None:
    config = tiny_config(tmp_path)
    model = trained_like(build_model(config))
    contract = trained_contract(config, MEAN, STD)
    path = tmp_path / "out" / "model.onnx"
    path.parent.mkdir()
    with pytest.raises(ExportError, match="differs from PyTorch"):
        export_onnx(model, path, contract, real_sample(contract, 32), fp16=True, tolerance=0.0)
    assert list(path.parent.iterdir()) == []


def test_plugin_classifier_runs_the_exported_model(tmp_path: Path) -> None:
    config = tiny_config(tmp_path)
    model = trained_like(build_model(config))
    contract = trained_contract(config, MEAN, STD)
    path = tmp_path / "model.onnx"
    export_onnx(model, path, contract, real_sample(contract, 32))
    output = tmp_path / "classes.tif"
    result = classify(
        GdalImageSource(MOSAIC_IMAGE),
        path,
        OutputPaths(output),
        bands=[1, 2, 3, 4],
        options=ClassifyOptions(device="cpu"),
    )
    assert result.pixels_classified == 1024 * 512
    classes = read_window(open_raster(output), result.grid.full_window, 1)
    assert set(np.unique(classes)) <= {1, 2, 3, 4}


def test_features_output_of_a_head_after_a_channel_selection(tmp_path: Path) -> None:
    # A network whose scores keep head channels 1 and 2 (after a ReLU): the export
    # finds them by value; the head applied to the features output gives the scores.
    class Selecting(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            torch.manual_seed(0)
            self.body = torch.nn.Conv2d(3, 6, 3, padding=1)
            self.head = torch.nn.Conv2d(6, 3, 3, padding=1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.relu(self.head(torch.relu(self.body(x))))[:, 1:]

    contract = RGB_TWO_CLASSES
    path = tmp_path / "selecting.onnx"
    export_onnx(Selecting(), path, contract, torch.randn(2, 3, 32, 32))
    features = read_contract(path).features_output
    assert features is not None
    assert (features.channels, features.kernel_size, features.activation) == (6, 3, "relu")
    assert features.head_channels == (1, 2)
    session = load_session(path, "cpu")  # the plugin accepts the second output
    assert [o.name for o in session.session.get_outputs()] == ["scores", "features"]


def test_no_features_output_without_a_recognised_head(tmp_path: Path) -> None:
    # A strided head is not a per-pixel linear model of neighbourhood features.
    class Strided(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.head = torch.nn.Conv2d(3, 2, 3, padding=1, stride=1, dilation=1, groups=1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.sigmoid(self.head(x))  # an activation adaptation does not know

    contract = RGB_TWO_CLASSES
    path = tmp_path / "sigmoid.onnx"
    export_onnx(Strided(), path, contract, torch.randn(1, 3, 32, 32))
    assert read_contract(path).features_output is None
    assert [o.name for o in load_session(path, "cpu").session.get_outputs()] == ["scores"]
