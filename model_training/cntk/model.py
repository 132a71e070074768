# SPDX-License-Identifier: GPL-2.0-or-later
"""The 2018 Azure land-cover network in PyTorch, and loading it from the CNTK graph.

:class:`Azure2018UNet` is the network of the 2018 reference system (Azure
``pixel_level_land_classification``, ``model_mini_pub.py``, MIT): a small
encoder-decoder with three stride-2 stages and additive skip connections, built with
``num_stack_layers=2`` and ``c_map=[64, 32, 32, 32]``. Its "residual" blocks have no
identity shortcut (the original comments it out), and the last convolution is followed
by a ReLU, so scores are >= 0.

:func:`load_cntk_network` does not trust that description: it lowers the saved CNTK
graph (:mod:`model_training.cntk.protobuf`) to layers, derives the hyper-parameters
from it, traces the PyTorch network with ``torch.fx`` and matches the two graphs node by
node from the output back to the input (op kinds, arity, wiring, strides, padding,
kernel and channel counts). Only then are the weights copied. A network that differs
from the file in any connection fails with :class:`CntkFormatError` naming the node.

Image axes: the 2018 training script fed ``numpy.transpose`` of ``(rows, cols, band)``
tiles, i.e. ``(band, cols, rows)``. The stored kernels therefore see the image
transposed; loading swaps every kernel's two spatial axes (``transposed_images=True``)
so that the PyTorch network takes ordinary ``(N, band, rows, cols)`` input. For this
network the two are exactly equivalent (symmetric padding, square crops): running the
swapped kernels on an image equals running the stored kernels on its transpose.
"""

from __future__ import annotations

import dataclasses
import operator
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.fx
from torch import nn
from torch.nn import functional

from .protobuf import (
    ALL_STATIC_AXES,
    CntkFormatError,
    CntkGraph,
    Function,
    load_graph,
    output_name,
    post_order,
    static_axis,
)

# --- The network ------------------------------------------------------------------------


class MeanCentering(nn.Module):
    """Subtracts each image's own mean from the listed channels (the 2018 graph centres
    R, G and B but not NIR). Input and output: (N, C, H, W)."""

    def __init__(self, channels: Sequence[int], in_channels: int) -> None:
        super().__init__()
        self.channels = tuple(int(c) for c in channels)
        self.in_channels = int(in_channels)
        mask = torch.zeros(1, self.in_channels, 1, 1)
        mask[:, list(self.channels)] = 1.0
        # A buffer, not a parameter: part of the graph, never trained.
        self.register_buffer("mask", mask, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=(2, 3), keepdim=True)
        return x - mean * self.mask

    def extra_repr(self) -> str:
        return f"channels={self.channels}, in_channels={self.in_channels}"


class CenterCrop(nn.Module):
    """Drops ``margin`` pixels on every side: (N, C, H, W) -> (N, C, H - 2m, W - 2m)."""

    def __init__(self, margin: int) -> None:
        super().__init__()
        self.margin = int(margin)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.margin == 0:
            return x
        m = self.margin
        return x[:, :, m : x.shape[2] - m, m : x.shape[3] - m]

    def extra_repr(self) -> str:
        return f"margin={self.margin}"


class ConvBN(nn.Sequential):
    """Convolution without bias + batch norm (the original ``conv_bn``)."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int = 1) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel, stride, padding=kernel // 2, bias=False),
            nn.BatchNorm2d(out_channels, eps=1e-5),
        )


class PlainBlock(nn.Module):
    """``relu(bn(conv(relu(bn(conv(x))))))``: the original ``resnet_basic`` /
    ``resnet_basic_inc`` with its identity shortcut disabled, as trained."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = ConvBN(in_channels, out_channels, 3, stride)
        self.conv2 = ConvBN(out_channels, out_channels, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return functional.relu(self.conv2(functional.relu(self.conv1(x))))


def _stage(in_channels: int, out_channels: int, blocks: int, stride: int) -> nn.Sequential:
    layers = [PlainBlock(in_channels, out_channels, stride)]
    layers += [PlainBlock(out_channels, out_channels) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)


def _upsample(channels: int) -> nn.ConvTranspose2d:
    # 3x3 stride-2 transposed convolution that exactly doubles H and W.
    return nn.ConvTranspose2d(channels, channels, 3, 2, padding=1, output_padding=1, bias=False)


@dataclass(frozen=True)
class Azure2018Config:
    """Hyper-parameters of :class:`Azure2018UNet` (defaults: the trained 2018 model)."""

    in_channels: int = 4
    num_classes: int = 5
    c_map: tuple[int, int, int, int] = (64, 32, 32, 32)
    num_stack_layers: int = 2
    centred_channels: tuple[int, ...] = (0, 1, 2)
    output_margin: int = 64


class Azure2018UNet(nn.Module):
    """The 2018 network. Input (N, in_channels, H, W) with H, W multiples of 8 and values
    DN / 256; output (N, num_classes, H - 2m, W - 2m) non-negative scores, m the margin.
    """

    def __init__(self, config: Azure2018Config | None = None) -> None:
        super().__init__()
        self.config = config = config or Azure2018Config()
        c0, c1, c2, c3 = config.c_map
        n = config.num_stack_layers
        self.centre = MeanCentering(config.centred_channels, config.in_channels)
        self.stem = ConvBN(config.in_channels, c0, 3)
        self.stage1 = _stage(c0, c0, n, 1) if n > 0 else nn.Sequential()
        self.stage2 = _stage(c0, c1, n, 2)
        self.stage3 = _stage(c1, c2, n, 2)
        self.stage4 = _stage(c2, c3, n, 2)
        self.up4 = _upsample(c3)
        self.lateral3 = nn.Conv2d(c2, c2, 1)
        self.top3 = nn.Conv2d(c3, c2, 1)
        self.up3 = _upsample(c2)
        self.lateral2 = nn.Conv2d(c1, c1, 1)
        self.top2 = nn.Conv2d(c2, c1, 1)
        self.up2 = _upsample(c1)
        self.input_skip = nn.Conv2d(config.in_channels, c0, 3, padding=1)
        self.lateral1 = nn.Conv2d(c0, c0, 1)
        self.top1 = nn.Conv2d(c1, c0, 1)
        self.head = nn.Conv2d(c0, config.num_classes, 3, padding=1)
        self.crop = CenterCrop(config.output_margin)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.centre(x)
        r1 = self.stage1(self.stem(x))
        r2 = self.stage2(r1)
        r3 = self.stage3(r2)
        r4 = self.stage4(r3)
        o3 = functional.relu(self.lateral3(r3) + self.top3(self.up4(r4)))
        o2 = functional.relu(self.lateral2(r2) + self.top2(self.up3(o3)))
        o1 = functional.relu(self.input_skip(x) + self.lateral1(r1) + self.top1(self.up2(o2)))
        return self.crop(functional.relu(self.head(o1)))


# --- The CNTK graph as layers -------------------------------------------------------------


@dataclass
class Layer:
    """One node of the lowered CNTK graph.

    ``kind``: input | conv | batchnorm | relu | add | centre | crop. ``inputs`` are layer
    ids; ``arrays`` hold the layer's stored values (row-major, as CNTK's Python API);
    ``attrs`` the facts the PyTorch layer must agree with.
    """

    kind: str
    uid: str
    inputs: tuple[str, ...] = ()
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    attrs: dict[str, Any] = field(default_factory=dict)


def _attribute(function: Function, *names: str) -> Any:
    """The first attribute present among ``names`` (names differ between CNTK versions);
    one-element ``*Vec`` lists are unwrapped."""
    for name in names:
        if name in function.attributes:
            value = function.attributes[name]
            if isinstance(value, list) and name.endswith("Vec"):
                if len(value) != 1:
                    raise CntkFormatError(f"{function.uid}: {name} has {len(value)} entries")
                value = value[0]
            return value
    raise CntkFormatError(f"{function.uid}: none of the attributes {names} is present")


def _row_major(values: Sequence[Any]) -> tuple[Any, ...]:
    """Per-axis attribute vectors (not NDShapes, which the reader already reverses) are
    stored fastest axis first."""
    return tuple(reversed(values))


class _Lowering:
    """Lowers a :class:`CntkGraph` (blocks collapsed) to :class:`Layer` nodes."""

    def __init__(self, graph: CntkGraph) -> None:
        self.graph = graph
        inputs = graph.inputs
        if len(inputs) != 1:
            raise CntkFormatError(f"expected one model input, found {len(inputs)}")
        self.input = inputs[0]
        self.layers: dict[str, Layer] = {self.input.uid: Layer("input", self.input.uid)}
        self.output = self.lower(output_name(graph.root))

    def value(self, uid: str, *kinds: str) -> np.ndarray:
        variable = self.graph.variables.get(uid)
        if variable is None or variable.kind not in kinds or variable.value is None:
            raise CntkFormatError(f"expected a stored {'/'.join(kinds)} for {uid!r}")
        return variable.value

    def inner(self, block: Function, name: str) -> Function:
        function = self.graph.producer(name)
        if function is None:
            raise CntkFormatError(f"block {block.uid}: {name!r} is not an inner function")
        return function

    def outer(self, block: Function, name: str) -> str:
        """The outer input a block placeholder stands for."""
        assert block.block_arguments is not None
        if name not in block.block_arguments:
            raise CntkFormatError(f"block {block.uid}: unbound placeholder {name!r}")
        return block.block_arguments[name]

    def lower(self, name: str) -> str:
        """Lower the node producing ``name``; returns its layer id."""
        function = self.graph.producer(name)
        if function is None:
            if name != self.input.uid:
                raise CntkFormatError(f"unexpected graph leaf {name!r}")
            return name
        if function.uid in self.layers:
            return function.uid
        if function.op == "Block" and function.block_op in ("Convolution", "ConvolutionTranspose"):
            return self.convolution_block(function)
        if function.op == "Block" and function.block_op == "BatchNormalization":
            return self.batchnorm_block(function)
        if function.op == "ReLU":
            return self.add(Layer("relu", function.uid, (self.lower(function.inputs[0]),)))
        if function.op == "Plus":
            inputs = tuple(self.lower(argument) for argument in function.inputs)
            return self.add(Layer("add", function.uid, inputs))
        if function.op == "Splice":
            return self.centring(function)
        if function.op in ("Slice", "Reshape"):
            return self.crop(function)
        raise CntkFormatError(f"unsupported CNTK op {function.op} ({function.uid})")

    def add(self, layer: Layer) -> str:
        self.layers[layer.uid] = layer
        return layer.uid

    def convolution_block(self, block: Function) -> str:
        assert block.block_root is not None
        node = self.graph.functions[block.block_root]
        activation = None
        if node.op == "ReLU":
            activation, node = "relu", self.inner(block, node.inputs[0])
        bias = None
        if node.op == "Plus":
            conv_output, bias_uid = node.inputs
            bias = self.value(bias_uid, "parameter")
            node = self.inner(block, conv_output)
        if node.op != "Convolution":
            raise CntkFormatError(f"block {block.uid}: no convolution inside ({node.op})")
        weight_uid, operand = node.inputs
        transpose = bool(node.attributes.get("transpose", False))
        if transpose != (block.block_op == "ConvolutionTranspose"):
            raise CntkFormatError(f"block {block.uid}: transpose flag disagrees with block type")
        attrs = {
            "transpose": transpose,
            # NDShape attributes are already row-major (C, H, W); bool vectors are not.
            "strides": tuple(_attribute(node, "strides"))[1:],
            "auto_padding": _row_major(_attribute(node, "autoPadding"))[1:],
            "lower_pad": tuple(_attribute(node, "lowerPad")),
            "upper_pad": tuple(_attribute(node, "upperPad")),
            "output_shape": tuple(node.attributes.get("outputShape", (0,))),
        }
        dilation = tuple(node.attributes.get("dilation", (1,)))
        if any(d != 1 for d in dilation):
            raise CntkFormatError(f"block {block.uid}: dilated convolution {dilation}")
        if any(attrs["lower_pad"]) or any(attrs["upper_pad"]):
            raise CntkFormatError(f"block {block.uid}: explicit padding is not supported")
        arrays = {"weight": self.value(weight_uid, "parameter")}
        if bias is not None:
            arrays["bias"] = bias.reshape(-1)
        source = self.lower(self.outer(block, operand))
        conv = self.add(Layer("conv", block.uid, (source,), arrays, attrs))
        if activation is None:
            return conv
        return self.add(Layer("relu", f"{block.uid}/relu", (conv,)))

    def batchnorm_block(self, block: Function) -> str:
        assert block.block_root is not None
        node = self.graph.functions[block.block_root]
        if node.op != "BatchNormalization" or len(node.inputs) != 6:
            raise CntkFormatError(f"block {block.uid}: no batch normalisation inside")
        operand, scale, bias, mean, variance, _count = node.inputs
        if not node.attributes.get("spatial", False):
            raise CntkFormatError(f"block {block.uid}: only spatial batch norm is supported")
        arrays = {
            "weight": self.value(scale, "parameter"),
            "bias": self.value(bias, "parameter"),
            "running_mean": self.value(mean, "constant"),
            "running_var": self.value(variance, "constant"),
        }
        attrs = {"eps": float(_attribute(node, "epsilon"))}
        source = self.lower(self.outer(block, operand))
        return self.add(Layer("batchnorm", block.uid, (source,), arrays, attrs))

    def channel_slice(self, name: str) -> int:
        """The channel index of a one-channel ``Slice`` of the model input."""
        function = self.graph.producer(name)
        rank = len(self.input.shape)
        if function is None or function.op != "Slice" or function.inputs != (self.input.uid,):
            raise CntkFormatError(f"expected a channel slice of the input at {name!r}")
        axis = static_axis(_attribute(function, "axis", "axisVec"), rank)
        begin = int(_attribute(function, "beginIndex", "beginIndexVec"))
        end = int(_attribute(function, "endIndex", "endIndexVec"))
        stride = int(function.attributes.get("sliceStrides", 1))
        if axis != 0 or end != begin + 1 or stride != 1:
            raise CntkFormatError(f"{function.uid}: not a one-channel slice")
        return begin

    def centred_channel(self, name: str) -> tuple[int, bool]:
        """``(channel, centred)`` for a splice part: a channel slice, or a channel slice
        minus its own mean over all static axes."""
        function = self.graph.producer(name)
        if function is not None and function.op == "Minus":
            value, mean = function.inputs
            reduce = self.graph.producer(mean)
            if (
                reduce is None
                or reduce.op != "ReduceElements"
                or _attribute(reduce, "reductionOpName") != "Mean"
                or _attribute(reduce, "axis", "axisVec").static_axis_idx != ALL_STATIC_AXES
                or reduce.inputs != (value,)
            ):
                raise CntkFormatError(f"{function.uid}: not a per-image mean subtraction")
            return self.channel_slice(value), True
        return self.channel_slice(name), False

    def centring(self, splice: Function) -> str:
        """The input preprocessing: a splice tree of (optionally mean-centred) channels."""
        rank = len(self.input.shape)
        parts: list[str] = []
        pending = [output_name(splice.uid)]
        while pending:
            name = pending.pop(0)
            function = self.graph.producer(name)
            if function is not None and function.op == "Splice":
                if static_axis(_attribute(function, "axis", "axisVec"), rank) != 0:
                    raise CntkFormatError(f"{function.uid}: splice not along channels")
                pending[:0] = function.inputs
            else:
                parts.append(name)
        channels = [self.centred_channel(part) for part in parts]
        if [c for c, _ in channels] != list(range(self.input.shape[0])):
            raise CntkFormatError(f"{splice.uid}: input channels reordered {channels}")
        attrs = {
            "centred_channels": tuple(c for c, centred in channels if centred),
            "in_channels": self.input.shape[0],
        }
        return self.add(Layer("centre", splice.uid, (self.input.uid,), attrs=attrs))

    def crop(self, function: Function) -> str:
        """The output crop: ``Slice`` ops (on an identity ``Reshape``) of the scores."""
        uid = function.uid
        cuts: list[tuple[int, int, int]] = []
        while function.op == "Slice":
            rank = 3
            axis = static_axis(_attribute(function, "axis", "axisVec"), rank)
            begin = int(_attribute(function, "beginIndex", "beginIndexVec"))
            end = int(_attribute(function, "endIndex", "endIndexVec"))
            if int(function.attributes.get("sliceStrides", 1)) != 1:
                raise CntkFormatError(f"{function.uid}: strided slice")
            cuts.append((axis, begin, end))
            producer = self.graph.producer(function.inputs[0])
            if producer is None:
                raise CntkFormatError(f"{function.uid}: slice of a graph leaf")
            function = producer
        if function.op != "Reshape":
            raise CntkFormatError(f"{uid}: expected the output crop to slice a reshape")
        shape = tuple(_attribute(function, "newShape"))
        if shape[1:] != self.input.shape[1:]:
            raise CntkFormatError(f"{function.uid}: reshape to {shape} is not the tile shape")
        margins = {
            axis: (begin, shape[axis] - end)
            for axis, begin, end in cuts
            if axis in (1, 2) and end > 0
        }
        values = {m for pair in margins.values() for m in pair}
        if sorted(margins) != [1, 2] or len(values) != 1:
            raise CntkFormatError(f"{uid}: the output crop is not a centred square ({cuts})")
        source = self.lower(function.inputs[0])
        attrs = {"margin": values.pop(), "shape": shape}
        return self.add(Layer("crop", uid, (source,), attrs=attrs))


@dataclass(frozen=True)
class LoweredGraph:
    layers: dict[str, Layer]
    output: str
    input_shape: tuple[int, ...]


def lower_graph(graph: CntkGraph) -> LoweredGraph:
    """The CNTK graph as :class:`Layer` nodes (blocks collapsed, pre/post-processing
    recognised)."""
    lowering = _Lowering(graph)
    return LoweredGraph(lowering.layers, lowering.output, lowering.input.shape)


def _depths(lowered: LoweredGraph) -> dict[str, int]:
    """Longest path (in layers) from the input to each layer."""
    depths: dict[str, int] = {}
    for uid in post_order(lowered.output, lambda uid: lowered.layers[uid].inputs):
        inputs = lowered.layers[uid].inputs
        depths[uid] = 1 + max((depths[i] for i in inputs), default=-1)
    return depths


def config_from_graph(lowered: LoweredGraph) -> Azure2018Config:
    """Derive :class:`Azure2018Config` from the lowered graph. The derivation only has to
    be right for the 2018 family; :func:`match_network` then verifies every node."""
    layers = lowered.layers
    depths = _depths(lowered)
    crop = layers[lowered.output]
    centres = [layer for layer in layers.values() if layer.kind == "centre"]
    if crop.kind != "crop" or len(centres) != 1:
        raise CntkFormatError("the graph is not the 2018 network (no input centring / crop)")
    head = layers[crop.inputs[0]]
    while head.kind == "relu":
        head = layers[head.inputs[0]]
    # Encoder convolutions: no bias (batch norm follows), not transposed; by depth.
    encoder = sorted(
        (c for c in layers.values() if c.kind == "conv" and "bias" not in c.arrays),
        key=lambda c: depths[c.uid],
    )
    encoder = [c for c in encoder if not c.attrs["transpose"]]
    strided = [c for c in encoder if max(c.attrs["strides"]) > 1]
    num_stack_layers, remainder = divmod(len(encoder) - 1, 8)
    if head.kind != "conv" or len(strided) != 3 or remainder or not encoder:
        raise CntkFormatError(
            f"the graph is not the 2018 network ({len(encoder)} encoder convolutions, "
            f"{len(strided)} strided)"
        )
    c_map = tuple(int(c.arrays["weight"].shape[0]) for c in (encoder[0], *strided))
    return Azure2018Config(
        in_channels=int(centres[0].attrs["in_channels"]),
        num_classes=int(head.arrays["weight"].shape[0]),
        c_map=c_map,  # type: ignore[arg-type]
        num_stack_layers=num_stack_layers,
        centred_channels=tuple(centres[0].attrs["centred_channels"]),
        output_margin=int(crop.attrs["margin"]),
    )


# --- Matching the PyTorch network against the graph, loading the weights ----------------


class _Tracer(torch.fx.Tracer):
    """Keeps the pre/post-processing modules as single nodes (they match one lowered
    CNTK layer each)."""

    def is_leaf_module(self, module: nn.Module, qualified_name: str) -> bool:
        if isinstance(module, MeanCentering | CenterCrop):
            return True
        return super().is_leaf_module(module, qualified_name)


_RELU_FUNCTIONS = (functional.relu, torch.relu)


def _fx_kind(node: torch.fx.Node, modules: dict[str, nn.Module]) -> str:
    if node.op == "placeholder":
        return "input"
    if node.op == "call_module":
        module = modules[str(node.target)]
        kinds: list[tuple[type[nn.Module] | tuple[type[nn.Module], ...], str]] = [
            ((nn.Conv2d, nn.ConvTranspose2d), "conv"),
            (nn.BatchNorm2d, "batchnorm"),
            (nn.ReLU, "relu"),
            (MeanCentering, "centre"),
            (CenterCrop, "crop"),
        ]
        for types, kind in kinds:
            if isinstance(module, types):
                return kind
    if node.op == "call_function" and node.target in _RELU_FUNCTIONS:
        return "relu"
    if node.op == "call_function" and node.target in (operator.add, torch.add):
        return "add"
    return f"{node.op}:{node.target}"


def match_network(network: nn.Module, lowered: LoweredGraph) -> dict[str, Layer]:
    """Match ``network`` against the lowered CNTK graph, node by node from the output.

    Returns ``{module name: layer}`` for every module that holds weights. Raises
    :class:`CntkFormatError` naming the first node where op kind, arity or wiring differ,
    or a layer of either graph that the other lacks.
    """
    traced = torch.fx.GraphModule(network, _Tracer().trace(network))
    modules = dict(traced.named_modules())
    outputs = [node for node in traced.graph.nodes if node.op == "output"]
    pairs: dict[torch.fx.Node, str] = {}
    stack = [(outputs[0].args[0], lowered.output)]
    while stack:
        node, uid = stack.pop()
        if node in pairs:
            if pairs[node] != uid:
                raise CntkFormatError(
                    f"the network differs from the CNTK graph at {uid}: its {node.name} "
                    f"already stands for {pairs[node]}"
                )
            continue
        layer = lowered.layers[uid]
        kind = _fx_kind(node, modules)
        arguments = [a for a in node.args if isinstance(a, torch.fx.Node)]
        if kind != layer.kind or len(arguments) != len(layer.inputs):
            raise CntkFormatError(
                f"the network differs from the CNTK graph at {uid}: the graph has "
                f"{layer.kind} of {len(layer.inputs)} input(s), the network has "
                f"{kind} of {len(arguments)} ({node.name})"
            )
        pairs[node] = uid
        stack.extend(zip(arguments, layer.inputs, strict=True))
    unmatched = set(lowered.layers) - set(pairs.values())
    if unmatched:
        raise CntkFormatError(f"CNTK layers without a network counterpart: {sorted(unmatched)}")
    if len(set(pairs.values())) != len(pairs):
        raise CntkFormatError("a CNTK layer matched two network nodes")
    matched = {str(node.target): lowered.layers[uid] for node, uid in pairs.items()}
    weighted = {name for name, module in network.named_modules() if _own_tensors(module)}
    missing = weighted - set(matched)
    if missing:
        raise CntkFormatError(f"network layers not in the CNTK graph: {sorted(missing)}")
    return {name: layer for name, layer in matched.items() if name in weighted}


def _own_tensors(module: nn.Module) -> bool:
    return any(True for _ in module.parameters(recurse=False)) or any(
        True for _ in module.named_buffers(recurse=False)
    )


def _check(condition: bool, layer: Layer, message: str) -> None:
    if not condition:
        raise CntkFormatError(f"{layer.uid}: {message}")


def _load_conv(module: nn.Module, layer: Layer, transposed_images: bool) -> None:
    attrs = layer.attrs
    weight = layer.arrays["weight"]
    transpose = isinstance(module, nn.ConvTranspose2d)
    _check(isinstance(module, nn.Conv2d | nn.ConvTranspose2d), layer, "not a convolution")
    assert isinstance(module, nn.Conv2d | nn.ConvTranspose2d)
    _check(transpose == attrs["transpose"], layer, "transposed convolution mismatch")
    kernel = tuple(weight.shape[2:])
    if transposed_images:
        kernel = kernel[::-1]
    # (out, in, kh, kw) for a convolution, (in, out, kh, kw) for a transposed one: the
    # same as PyTorch (verified by the accuracy test; swapping collapses it).
    _check(tuple(module.weight.shape[:2]) == weight.shape[:2], layer, "channel counts differ")
    _check(tuple(module.kernel_size) == kernel, layer, f"kernel {kernel}")
    _check(tuple(module.stride) == tuple(attrs["strides"]), layer, f"strides {attrs['strides']}")
    # CNTK auto-padding of an odd kernel centres it: k // 2 on each side.
    padding = tuple(
        k // 2 if auto else 0 for k, auto in zip(kernel, attrs["auto_padding"], strict=True)
    )
    _check(tuple(module.padding) == padding, layer, f"padding {padding}")
    if transpose:
        assert isinstance(module, nn.ConvTranspose2d)
        # CNTK's output_shape of a "same" transposed convolution is input x stride.
        expected = tuple(
            s - k + 2 * p for s, k, p in zip(attrs["strides"], kernel, padding, strict=True)
        )
        _check(tuple(module.output_padding) == expected, layer, "output padding")
    _check((module.bias is not None) == ("bias" in layer.arrays), layer, "bias presence")
    if transposed_images:
        weight = weight.swapaxes(2, 3)
    with torch.no_grad():
        module.weight.copy_(torch.from_numpy(np.ascontiguousarray(weight)))
        if module.bias is not None:
            module.bias.copy_(torch.from_numpy(layer.arrays["bias"]))


def _load_batchnorm(module: nn.Module, layer: Layer) -> None:
    _check(isinstance(module, nn.BatchNorm2d), layer, "not a batch norm")
    assert isinstance(module, nn.BatchNorm2d)
    _check(module.num_features == layer.arrays["weight"].size, layer, "channel count")
    _check(abs(module.eps - layer.attrs["eps"]) < 1e-12, layer, f"eps {layer.attrs['eps']}")
    with torch.no_grad():
        for name in ("weight", "bias", "running_mean", "running_var"):
            getattr(module, name).copy_(torch.from_numpy(layer.arrays[name].reshape(-1)))


def load_weights(network: nn.Module, lowered: LoweredGraph, transposed_images: bool = True) -> None:
    """Copy the CNTK weights into ``network`` after :func:`match_network` verified it."""
    modules = dict(network.named_modules())
    for name, layer in match_network(network, lowered).items():
        if layer.kind == "conv":
            _load_conv(modules[name], layer, transposed_images)
        elif layer.kind == "batchnorm":
            _load_batchnorm(modules[name], layer)
        elif layer.kind == "centre":
            centre = modules[name]
            assert isinstance(centre, MeanCentering)
            _check(centre.channels == layer.attrs["centred_channels"], layer, "centred channels")
        else:
            raise CntkFormatError(f"{layer.uid}: no weights expected in a {layer.kind} layer")
    crop = lowered.layers[lowered.output]
    crops = [m for m in modules.values() if isinstance(m, CenterCrop)]
    _check(len(crops) == 1 and crops[0].margin == crop.attrs["margin"], crop, "output crop margin")


def load_cntk_network(
    path: str | Path, transposed_images: bool = True
) -> tuple[Azure2018UNet, CntkGraph]:
    """Read a 2018 CNTK model file and return the verified PyTorch network (eval mode)
    with its weights, and the parsed graph."""
    graph = load_graph(path)
    lowered = lower_graph(graph)
    network = Azure2018UNet(config_from_graph(lowered))
    load_weights(network, lowered, transposed_images)
    return network.eval(), graph


# --- For the training pipeline ----------------------------------------------------------


class Azure2018Classes(nn.Module):
    """The 2018 network shaped like the training pipeline's models: (N, 4, H, W) input
    (DN / 256, i.e. ``input_scale`` 1/256 without standardisation) -> (N, K, H, W) scores
    for the K real classes: no output crop, the no-data channel 0 dropped."""

    def __init__(self, network: Azure2018UNet) -> None:
        super().__init__()
        if network.config.output_margin != 0:
            config = dataclasses.replace(network.config, output_margin=0)
            network.config, network.crop = config, CenterCrop(0)
        self.network = network

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network(x)[:, 1:]


def azure2018_for_training(weights: str | Path | None = None) -> Azure2018Classes:
    """The 2018 network for fine-tuning (``weights``: a CNTK ``.model`` file, e.g.
    ``data/models/azure_2018_cntk/250epochs.model``) or for training from scratch
    (``None``: PyTorch's default initialisation)."""
    if weights is None:
        return Azure2018Classes(Azure2018UNet())
    network, _ = load_cntk_network(weights)
    return Azure2018Classes(network.train())
