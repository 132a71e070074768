# SPDX-License-Identifier: GPL-2.0-or-later
"""The int8 graph rewrites are exact: ONNX Runtime's own ConvTranspose and narrow Conv
(an independent implementation) give the same outputs as the rewritten graph, on a
small model with an extra output and on the shipped 2018 U-Net."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from osgeo import gdal

from model_training.release.evaluate_models import MOSAIC
from model_training.release.graph_rewrites import (
    MIN_CONV_OUTPUTS,
    pad_narrow_convs,
    rewrite_for_int8,
    subpixel_conv_transposes,
)
from model_training.release.quantize import FP32_MODEL


def _small_unet(
    up_attributes: dict[str, object] | None = None, head_output: bool = False
) -> onnx.ModelProto:
    """image (1, 4, H, W) -> Conv 3x3 (16) -> Relu ["features", a graph output too]
    -> ConvTranspose 3x3 s2 (6, bias) -> Relu -> Conv 3x3 (5) -> Relu -> "scores"
    (1, 5, 2H, 2W); with ``head_output`` the head Conv's own output is an output too."""
    rng = np.random.default_rng(7)
    up = up_attributes or {
        "kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1], "output_padding": [1, 1],
    }  # fmt: skip
    weights = {
        "w1": rng.normal(size=(16, 4, 3, 3)),
        "b1": rng.normal(size=16),
        "wt": rng.normal(size=(16, 6, 3, 3)),
        "bt": rng.normal(size=6),
        "wh": rng.normal(size=(5, 6, 3, 3)),
        "bh": rng.normal(size=5),
    }
    pads = {"pads": [1, 1, 1, 1], "kernel_shape": [3, 3]}
    nodes = [
        helper.make_node("Conv", ["image", "w1", "b1"], ["c1"], name="stem", **pads),
        helper.make_node("Relu", ["c1"], ["features"], name="relu1"),
        helper.make_node("ConvTranspose", ["features", "wt", "bt"], ["up"], name="up", **up),
        helper.make_node("Relu", ["up"], ["r2"], name="relu2"),
        helper.make_node("Conv", ["r2", "wh", "bh"], ["head"], name="head", **pads),
        helper.make_node("Relu", ["head"], ["scores"], name="relu3"),
    ]
    value = helper.make_tensor_value_info
    outputs = [
        value("scores", TensorProto.FLOAT, [1, 5, "h2", "w2"]),
        value("features", TensorProto.FLOAT, [1, 16, "h", "w"]),
    ]
    if head_output:
        outputs.append(value("head", TensorProto.FLOAT, [1, 5, "h2", "w2"]))
    graph = helper.make_graph(
        nodes,
        "small",
        [value("image", TensorProto.FLOAT, [1, 4, "h", "w"])],
        outputs,
        [numpy_helper.from_array(a.astype(np.float32), k) for k, a in weights.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    entry = model.metadata_props.add()
    entry.key, entry.value = "output_margin", "0"
    onnx.checker.check_model(model)
    return model


def _run(model: onnx.ModelProto, image: np.ndarray) -> dict[str, np.ndarray]:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, {"image": image}), strict=True))


def _ops(model: onnx.ModelProto) -> list[str]:
    return [n.op_type for n in model.graph.node]


@pytest.mark.parametrize("size", [(6, 10), (7, 5), (1, 1)])
def test_rewrites_compute_the_same_outputs_with_the_same_names(size: Sequence[int]) -> None:
    model = _small_unet()
    rewritten, summary = rewrite_for_int8(model)
    assert summary.conv_transposes == ("up",) and summary.padded_convs == ("head",)
    assert "ConvTranspose" not in _ops(rewritten)
    assert _ops(rewritten).count("DepthToSpace") == 1 and _ops(rewritten)[-1] == "Slice"
    head = next(i for i in rewritten.graph.initializer if i.name == "wh")
    assert tuple(head.dims) == (MIN_CONV_OUTPUTS, 6, 3, 3)
    assert [o.name for o in rewritten.graph.output] == ["scores", "features"]
    assert list(rewritten.metadata_props) == list(model.metadata_props)
    image = np.random.default_rng(1).normal(size=(1, 4, *size)).astype(np.float32)
    expected, got = _run(model, image), _run(rewritten, image)
    assert got["scores"].shape == (1, 5, 2 * size[0], 2 * size[1])
    for name in ("scores", "features"):
        np.testing.assert_allclose(got[name], expected[name], rtol=1e-5, atol=1e-4)
    assert np.abs(expected["scores"]).max() > 1.0  # not a vacuous comparison


def test_a_padded_conv_that_is_itself_an_output_keeps_its_channels() -> None:
    model = _small_unet(head_output=True)
    padded, names = pad_narrow_convs(model)
    assert names == ("head",)
    image = np.random.default_rng(2).normal(size=(1, 4, 5, 6)).astype(np.float32)
    expected, got = _run(model, image), _run(padded, image)
    assert got["head"].shape == expected["head"].shape == (1, 5, 10, 12)
    np.testing.assert_allclose(got["head"], expected["head"], rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(got["scores"], expected["scores"], rtol=1e-5, atol=1e-4)


def test_other_conv_transposes_are_left_alone() -> None:
    stride_one = {"kernel_shape": [3, 3], "strides": [1, 1], "pads": [1, 1, 1, 1]}
    model = _small_unet(up_attributes=stride_one)
    rewritten, names = subpixel_conv_transposes(model)
    assert names == () and _ops(rewritten) == _ops(model)


def test_the_shipped_model_rewritten_gives_the_same_scores() -> None:
    model = onnx.load(str(FP32_MODEL))
    rewritten, summary = rewrite_for_int8(model)
    assert len(summary.conv_transposes) == 3 and summary.padded_convs == ("/head/Conv",)
    assert [o.name for o in rewritten.graph.output] == [o.name for o in model.graph.output]
    # One 384 px tile of the shipped 1 m NAIP mosaic, scaled as the model expects.
    pixels = gdal.Open(str(MOSAIC)).ReadAsArray(0, 0, 384, 384).astype(np.float32)
    image = pixels[None] / 256.0
    expected, got = _run(model, image), _run(rewritten, image)
    for name, scores in expected.items():
        assert got[name].shape == scores.shape
        np.testing.assert_allclose(got[name], scores, rtol=0, atol=1e-4)
    assert np.array_equal(got["scores"].argmax(1), expected["scores"].argmax(1))
