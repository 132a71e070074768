# SPDX-License-Identifier: GPL-2.0-or-later
"""Tiny ONNX segmentation models built with ``onnx.helper`` whose outputs are known in
closed form, for proving the classify plumbing exactly.

- :func:`pointwise_model`: a 1x1 convolution ``scores = W @ x + b`` per pixel.
- :func:`box_model`: a 3x3 box sum (zero padding) followed by a 1x1 convolution, with
  an optional centre crop (``Slice``) of ``margin`` pixels: pixels near a tile's edge
  see the zero padding, so only a crop of at least 1 pixel is tile-independent.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from qgis_landcover.core.models.contract import ModelContract

OPSET = 17


def contract_for(
    classes: int,
    bands: Sequence[str] = ("red", "green", "blue", "nir"),
    **changes: object,
) -> ModelContract:
    """A contract with ``classes`` channels (values 1..K) for ``bands``."""
    values: dict[str, object] = {
        "class_names": {k: f"class {k + 1}" for k in range(classes)},
        "class_colors": {
            k: f"#{(40 * k) % 256:02x}{(90 * k) % 256:02x}{(150 + k) % 256:02x}"
            for k in range(classes)
        },
        "band_names": list(bands),
        "resolution_cm": 100.0,
        "tile_size": 32,
        "tiles_overlap_percent": 25.0,
        "input_scale": 1.0,
    }
    values.update(changes)
    return ModelContract(**values)  # type: ignore[arg-type]


def _save(
    path: Path,
    nodes: list[onnx.NodeProto],
    initializers: list[onnx.TensorProto],
    in_shape: list[int | str],
    out_shape: list[int | str],
    metadata: dict[str, str] | None,
) -> Path:
    graph = helper.make_graph(
        nodes,
        "model",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, in_shape)],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, out_shape)],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    for key, value in (metadata or {}).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def _shapes(
    bands: int, classes: int, tile: int | None, margin: int, batch: int | None
) -> tuple[list[int | str], list[int | str]]:
    n: int | str = batch if batch is not None else "N"
    if tile is None:
        return [n, bands, "H", "W"], [n, classes, "h", "w"]
    side = tile - 2 * margin
    return [n, bands, tile, tile], [n, classes, side, side]


def _crop(
    nodes: list[onnx.NodeProto], inits: list[onnx.TensorProto], source: str, margin: int
) -> str:
    """Append a Slice dropping ``margin`` pixels from each side of H and W."""
    if margin == 0:
        return source
    inits += [
        numpy_helper.from_array(np.array([margin, margin], dtype=np.int64), "crop_starts"),
        numpy_helper.from_array(np.array([-margin, -margin], dtype=np.int64), "crop_ends"),
        numpy_helper.from_array(np.array([2, 3], dtype=np.int64), "crop_axes"),
    ]
    nodes.append(
        helper.make_node("Slice", [source, "crop_starts", "crop_ends", "crop_axes"], ["cropped"])
    )
    return "cropped"


def pointwise_model(
    path: Path,
    weights: np.ndarray,
    bias: np.ndarray | None = None,
    *,
    contract: ModelContract | None = None,
    metadata: dict[str, str] | None = None,
    tile: int | None = None,
    margin: int = 0,
    batch: int | None = None,
    softmax: bool = False,
) -> Path:
    """``scores[k] = sum_c weights[k, c] * x[c] + bias[k]`` per pixel (then optional crop
    and softmax). ``tile`` fixes H = W; ``batch`` fixes N."""
    classes, bands = weights.shape
    bias = np.zeros(classes, dtype=np.float32) if bias is None else bias
    inits = [
        numpy_helper.from_array(weights.astype(np.float32).reshape(classes, bands, 1, 1), "w"),
        numpy_helper.from_array(bias.astype(np.float32), "b"),
    ]
    nodes = [helper.make_node("Conv", ["image", "w", "b"], ["conv"])]
    last = _crop(nodes, inits, "conv", margin)
    if softmax:
        nodes.append(helper.make_node("Softmax", [last], ["probs"], axis=1))
        last = "probs"
    nodes.append(helper.make_node("Identity", [last], ["scores"]))
    if metadata is None and contract is not None:
        metadata = contract.to_metadata_props()
    in_shape, out_shape = _shapes(bands, classes, tile, margin, batch)
    return _save(path, nodes, inits, in_shape, out_shape, metadata)


def box_model(
    path: Path,
    weights: np.ndarray,
    *,
    contract: ModelContract | None = None,
    tile: int | None = None,
    margin: int = 1,
) -> Path:
    """3x3 box sum per band (zero padding 1), then a 1x1 convolution, then a centre
    crop of ``margin`` pixels."""
    classes, bands = weights.shape
    box = np.zeros((bands, 1, 3, 3), dtype=np.float32)
    box[:] = 1.0
    inits = [
        numpy_helper.from_array(box, "box"),
        numpy_helper.from_array(weights.astype(np.float32).reshape(classes, bands, 1, 1), "w"),
    ]
    nodes = [
        helper.make_node("Conv", ["image", "box"], ["boxed"], group=bands, pads=[1, 1, 1, 1]),
        helper.make_node("Conv", ["boxed", "w"], ["conv"]),
    ]
    last = _crop(nodes, inits, "conv", margin)
    nodes.append(helper.make_node("Identity", [last], ["scores"]))
    metadata = contract.to_metadata_props() if contract is not None else None
    in_shape, out_shape = _shapes(bands, classes, tile, margin, None)
    return _save(path, nodes, inits, in_shape, out_shape, metadata)


def pointwise_reference(
    image: np.ndarray, weights: np.ndarray, bias: np.ndarray | None = None
) -> np.ndarray:
    """The closed form of :func:`pointwise_model`: scores (K, rows, cols) for a
    normalised image (C, rows, cols), in float64."""
    scores = np.einsum("kc,chw->khw", weights.astype(np.float64), image.astype(np.float64))
    if bias is not None:
        scores += bias.astype(np.float64)[:, None, None]
    return scores


def without_features_output(model: Path, target: Path) -> Path:
    """A copy of ``model`` without its second output (the penultimate features) and
    without the ``features_output`` metadata: a model that cannot be adapted."""
    copy = onnx.load(str(model))
    copy.graph.output.remove(copy.graph.output[1])
    kept = [p for p in copy.metadata_props if p.key != "features_output"]
    del copy.metadata_props[:]
    copy.metadata_props.extend(kept)
    onnx.save(copy, str(target))
    return target
