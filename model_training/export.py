# SPDX-License-Identifier: GPL-2.0-or-later
"""Export a trained network to ONNX with the plugin's model contract.

:func:`export_onnx` is the one export path (training and the CNTK conversion both use
it): it writes the graph with dynamic batch / height / width, stores the contract in
the ONNX metadata, checks that ONNX Runtime reproduces PyTorch on a sample and that the
plugin core accepts the metadata, and only then moves the file into place. The file's
bytes depend on the weights only, not on the CPU that exported them: torch computes
nothing at export (no constant folding) and batch norms are folded into their
convolutions in float64 (:func:`fold_batchnorm`).

Command line (export a checkpoint of a run)::

    python -m model_training.export --run runs/demo            # best (else last) weights
    python -m model_training.export --checkpoint runs/demo/checkpoints/last.pt \\
        --output model.onnx --fp16
"""

from __future__ import annotations

import argparse
import copy
import importlib
import json
import platform
import sys
import warnings
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from onnx import numpy_helper
from torch import nn

from qgis_landcover.core.adaptation.head import Head, scores_from_features
from qgis_landcover.core.errors import InputError, LandcoverError
from qgis_landcover.core.files.atomic import atomic_output
from qgis_landcover.core.models.contract import FeaturesOutput, ModelContract, read_contract
from qgis_landcover.core.models.onnx_file import read_initializers

from .checkpoint import BEST, LAST, load_checkpoint
from .cntk.model import CenterCrop
from .config import Config, config_from_dict
from .onnx_metadata import write_metadata
from .release.contract import trained_contract
from .release.model_card import CardNotes
from .unet import UNet

INPUT_NAME = "image"
OUTPUT_NAME = "scores"
FEATURES_NAME = "features"
#: Nodes that may stand between the head convolution and the scores: crops and an
#: activation (the activation's name in the contract).
_CROP_OPS = ("Slice", "Identity")
_ACTIVATIONS = {"Relu": "relu", "Softmax": "softmax"}


class ExportError(LandcoverError):
    """The exported model does not reproduce the PyTorch one, or breaks the contract."""


class HalfPrecision(nn.Module):
    """Runs ``model`` in float16 between float32 input and output, so the fp16 file
    keeps the float32 interface the plugin feeds (half the weights' size)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model.half()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x.half()).float()


def plain_batchnorm(model: nn.Module) -> nn.Module:
    """Replace ``SyncBatchNorm`` (training on GPUs) by ``BatchNorm2d`` with the same
    parameters and statistics, in place; they compute the same thing at inference."""
    for name, child in model.named_children():
        if isinstance(child, nn.SyncBatchNorm):
            plain = nn.BatchNorm2d(
                child.num_features, child.eps, child.momentum, child.affine,
                child.track_running_stats,
            )  # fmt: skip
            plain.load_state_dict(child.state_dict())
            setattr(model, name, plain)
        else:
            plain_batchnorm(child)
    return model


def fold_batchnorm(model: onnx.ModelProto) -> int:
    """Fold every inference ``BatchNormalization`` that reads a ``Conv`` output (used
    by it alone) into that ``Conv``, in place, in float64, rounded once to the weights'
    type (float32 or float16).

    Why not the exporter's folding: ``torch.onnx`` folds in float32 with torch's
    ``sqrt``, which goes through MKL, whose rounding depends on the CPU, so the file's
    bytes would depend on the machine that wrote it. float64 ``+``, ``*``, ``/`` and
    ``sqrt`` are correctly rounded (IEEE 754) on every machine: these bytes depend on
    the weights only. With ``s = gamma / sqrt(var + eps)`` per output channel,
    ``BN(conv(x)) = conv'(x)`` where ``W' = W * s`` and ``b' = (b - mean) * s + beta``.

    A batch norm after anything else, or with non-constant parameters, stays a node
    (ONNX Runtime runs it). Returns the number of batch norms folded.
    """
    graph = model.graph
    initializers = {tensor.name: tensor for tensor in graph.initializer}
    # torch.onnx shares equal tensors through Identity nodes: follow them.
    aliases = {n.output[0]: n.input[0] for n in graph.node if n.op_type == "Identity"}
    producers = {name: node for node in graph.node for name in node.output}
    graph_outputs = {value.name for value in graph.output}
    uses: dict[str, int] = {}
    for node in graph.node:
        for name in node.input:
            uses[name] = uses.get(name, 0) + 1

    def constant(name: str) -> np.ndarray | None:
        while name in aliases:
            name = aliases[name]
        tensor = initializers.get(name)
        return None if tensor is None else numpy_helper.to_array(tensor)

    def unique(name: str) -> str:
        while name in initializers or name in producers:
            name += "_"
        return name

    folded = []
    for norm in graph.node:
        if norm.op_type != "BatchNormalization" or len(norm.output) != 1:
            continue
        attributes = {a.name: onnx.helper.get_attribute_value(a) for a in norm.attribute}
        conv = producers.get(norm.input[0])
        if (
            attributes.get("training_mode", 0) != 0
            or conv is None
            or conv.op_type != "Conv"
            or uses[conv.output[0]] != 1
            or conv.output[0] in graph_outputs
        ):
            continue
        weight = constant(conv.input[1])
        has_bias = len(conv.input) > 2 and conv.input[2] != ""
        bias = constant(conv.input[2]) if has_bias else np.zeros(1)
        parameters = [constant(name) for name in norm.input[1:5]]
        if weight is None or bias is None or any(p is None for p in parameters):
            continue
        if weight.dtype.kind != "f":
            continue
        gamma, beta, mean, variance = (np.asarray(p, np.float64) for p in parameters)
        epsilon = np.float64(attributes.get("epsilon", 1e-5))  # float32 in the file
        scale = gamma / np.sqrt(variance + epsilon)
        new_weight = weight.astype(np.float64) * scale.reshape(-1, *([1] * (weight.ndim - 1)))
        new_bias = (bias.astype(np.float64) - mean) * scale + beta
        stem = conv.input[1].removesuffix(".weight")
        weight_name, bias_name = (
            unique(f"{stem}.weight.bn_folded"),
            unique(f"{stem}.bias.bn_folded"),
        )
        for name, value in ((weight_name, new_weight), (bias_name, new_bias)):
            tensor = numpy_helper.from_array(value.astype(weight.dtype), name)
            graph.initializer.append(tensor)
            initializers[name] = tensor
        del conv.input[1:]
        conv.input.extend([weight_name, bias_name])
        removed = conv.output[0]
        conv.output[0] = norm.output[0]
        producers[norm.output[0]] = conv
        folded.append((norm, removed))
    for norm, removed in folded:
        graph.node.remove(norm)
        for value in [v for v in graph.value_info if v.name == removed]:
            graph.value_info.remove(value)
    _drop_unused(graph)
    return len(folded)


def _drop_unused(graph: onnx.GraphProto) -> None:
    """Remove the nodes whose outputs nothing reads and the initializers nothing reads
    (what folding left behind), until none is left."""
    kept_inputs = {value.name for value in graph.input}
    while True:
        used = {name for node in graph.node for name in node.input}
        used |= {value.name for value in graph.output}
        dead = [node for node in graph.node if not any(name in used for name in node.output)]
        unused = [t for t in graph.initializer if t.name not in used | kept_inputs]
        if not dead and not unused:
            return
        for node in dead:
            graph.node.remove(node)
        for tensor in unused:
            graph.initializer.remove(tensor)


def expose_features(model: onnx.ModelProto, name: str = FEATURES_NAME) -> FeaturesOutput | None:
    """Add the head's input (the penultimate features) as a second graph output named
    ``name``, in place, and describe it for the contract's ``features_output``.

    The head is the ``Conv`` reached from the scores (the first output) going back
    through crops (``Slice``) and at most one activation (``Relu``, ``Softmax``); it
    must have a square odd kernel with "same" zero padding, stride, dilation and group
    1, and its own weight and bias initializers (read by nothing else), so that an
    adapted model can replace them. The features then have the input's size (the crop
    comes after the head). Returns ``None``, leaving the graph untouched, for any other
    shape of graph (such a model cannot be adapted; nothing else changes). The scores
    stay the first output, so a classification fetches only them.
    """
    graph = model.graph
    if any(output.name == name for output in graph.output):
        raise ExportError(f"The graph already has an output named {name!r}.")
    producers = {out: node for node in graph.node for out in node.output}
    uses: dict[str, int] = {}
    for node in graph.node:
        for used in node.input:
            uses[used] = uses.get(used, 0) + 1
    initializers = {tensor.name: tensor for tensor in graph.initializer}
    node = producers.get(graph.output[0].name)
    activation = "none"
    while node is not None and node.op_type != "Conv":
        if node.op_type in _ACTIVATIONS and activation == "none":
            activation = _ACTIVATIONS[node.op_type]
        elif node.op_type not in _CROP_OPS:
            return None
        node = producers.get(node.input[0])
    if node is None or len(node.input) < 3:
        return None
    weight_name, bias_name = node.input[1], node.input[2]
    if weight_name not in initializers or bias_name not in initializers:
        return None
    if uses.get(weight_name) != 1 or uses.get(bias_name) != 1:
        return None
    attributes = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    weight = initializers[weight_name]
    if weight.data_type != onnx.TensorProto.FLOAT or len(weight.dims) != 4:
        return None
    _, channels, kernel, kernel_cols = (int(d) for d in weight.dims)
    pad = kernel // 2
    if (
        kernel != kernel_cols
        or kernel % 2 == 0
        or list(attributes.get("pads", [0, 0, 0, 0])) != [pad] * 4
        or attributes.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET")
        or list(attributes.get("strides", [1, 1])) != [1, 1]
        or list(attributes.get("dilations", [1, 1])) != [1, 1]
        or attributes.get("group", 1) != 1
    ):
        return None
    graph.node.append(
        onnx.helper.make_node("Identity", [node.input[0]], [name], name=f"/{name}/Identity")
    )
    graph.output.append(
        onnx.helper.make_tensor_value_info(
            name,
            onnx.TensorProto.FLOAT,
            ["batch", channels, f"{name}_height", f"{name}_width"],
        )
    )
    return FeaturesOutput(
        name=name,
        channels=channels,
        kernel_size=kernel,
        weight=weight_name,
        bias=bias_name,
        activation=activation,
    )


def drop_features_output(model: onnx.ModelProto) -> bool:
    """Remove the features output that :func:`expose_features` added (its output and
    ``Identity`` node), in place; for variants whose head cannot be adapted (int8,
    fp16), so that they compute and calibrate only the scores. Returns whether there
    was one. The caller removes ``features_output`` from the contract."""
    outputs = [o for o in model.graph.output if o.name == FEATURES_NAME]
    if not outputs:
        return False
    model.graph.output.remove(outputs[0])
    for node in [n for n in model.graph.node if list(n.output) == [FEATURES_NAME]]:
        model.graph.node.remove(node)
    return True


def cpu_session(path: Path) -> Any:
    """A plain ONNX Runtime CPU session of ``path`` (errors only in its log), for the
    export's checks."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def add_features_output(path: Path) -> FeaturesOutput:
    """Give an exported model file its features output, in place (atomically): the graph
    edit :func:`export_onnx` makes (:func:`expose_features`), for models exported
    before it, with the contract's ``features_output`` and the same check (the head
    applied to the features gives the scores on a sample of standard-normal tiles).

    Raises:
        ExportError: the model has one already, or its head is not one
            :func:`expose_features` recognises.
    """

    contract = read_contract(path)
    if contract.features_output is not None:
        raise ExportError(f"{path.name} already has a features output.")
    model = onnx.load(str(path))
    features = expose_features(model)
    if features is None:
        raise ExportError(f"{path.name}: no convolution head recognised before the scores.")
    contract = replace(contract, features_output=features)
    size = contract.tile_size
    generator = np.random.default_rng(0)
    sample = generator.standard_normal((1, contract.num_bands, size, size)).astype(np.float32)
    with atomic_output(path) as temporary:
        onnx.checker.check_model(model)
        onnx.save(model, str(temporary))
        write_metadata(temporary, contract)
        session = cpu_session(temporary)
        (scores,) = session.run([OUTPUT_NAME], {INPUT_NAME: sample})
        features = check_features_output(temporary, contract, session, sample, scores)
        write_metadata(temporary, replace(contract, features_output=features))
    return features


def check_features_output(
    path: Path, contract: ModelContract, session: Any, sample: np.ndarray, scores: np.ndarray
) -> FeaturesOutput:
    """The contract's ``features_output`` completed with the head channels the scores
    keep (``head_channels``, found by comparing values), after checking that the head
    applied in numpy to the features the model returns for ``sample`` gives its
    ``scores`` within 1e-4 of the largest score: the relation adaptation relies on.

    Raises:
        ExportError: it does not.
    """
    description = contract.features_output
    assert description is not None
    (features,) = session.run([description.name], {INPUT_NAME: sample})
    weights = read_initializers(path, [description.weight, description.bias])
    head = Head(weights[description.weight], weights[description.bias], description.activation)
    computed = scores_from_features(features, head, description, contract.output_margin)
    limit = 1e-4 * max(1.0, float(np.abs(scores).max()))
    rows: list[int] = []
    if computed.shape[0] == scores.shape[0] and computed.shape[2:] == scores.shape[2:]:
        for channel in range(scores.shape[1]):
            differences = np.abs(computed - scores[:, channel : channel + 1]).max(axis=(0, 2, 3))
            best = int(np.argmin(differences))
            if differences[best] <= limit and best not in rows:
                rows.append(best)
    if len(rows) != scores.shape[1]:
        raise ExportError(
            f"The features output does not give the scores through the head it describes "
            f"({description}): head scores {computed.shape}, model scores {scores.shape}."
        )
    kept = None if rows == list(range(computed.shape[1])) else tuple(rows)
    return replace(description, head_channels=kept)


def inference_network(model: nn.Module, margin: int) -> nn.Module:
    """The network as exported: ``model`` (full-size output) followed by the centre crop
    of ``margin`` pixels per side that the contract's ``output_margin`` declares."""
    return nn.Sequential(model, CenterCrop(margin)) if margin else model


def export_onnx(
    model: nn.Module,
    path: str | Path,
    contract: ModelContract,
    sample: torch.Tensor,
    *,
    fp16: bool = False,
    opset: int = 17,
    tolerance: float | None = None,
) -> float:
    """Write ``model`` to ``path`` as ONNX with ``contract`` in its metadata.

    Args:
        model: a network mapping (N, bands, H, W) float32 standardised input to
            (N, classes, H - 2m, W - 2m) scores, m = ``contract.output_margin``. It is
            copied; the caller's module (device, mode, precision) is not touched.
        path: destination ``.onnx``; replaced only when every check passed.
        contract: the metadata to store (validated again by reading it back).
        sample: a real input batch (N, bands, H, W) for the ORT-vs-PyTorch check.
        fp16: write a float16 variant (float32 input / output, half-size weights).
        opset: ONNX opset.
        tolerance: largest allowed absolute difference of the scores; default
            ``1e-3`` (fp32) or ``5e-2`` (fp16) times ``max(1, max |score|)``.

    Returns:
        The maximum absolute difference between ONNX Runtime's scores and the float32
        PyTorch model's on ``sample``.

    Raises:
        ExportError: the difference exceeds the tolerance, or the metadata does not
            pass the plugin core's contract validation.
    """

    reference_model = plain_batchnorm(copy.deepcopy(model)).float().cpu().eval()
    sample = sample.detach().float().cpu()
    with torch.no_grad():
        expected = reference_model(sample).numpy()
    margin = contract.output_margin
    declared = tuple(size - 2 * margin for size in sample.shape[-2:])
    if expected.shape[-2:] != declared:
        raise ExportError(
            f"The network returns {expected.shape[-2:]} scores for a {tuple(sample.shape[-2:])}"
            f" input; the contract's output_margin {margin} means {declared}."
        )
    exported: nn.Module = reference_model
    if fp16:
        exported = HalfPrecision(copy.deepcopy(reference_model)).eval()
    destination = Path(path)
    with atomic_output(destination) as temporary:
        dynamic = {0: "batch", 2: "height", 3: "width"}
        # A cropped output is smaller than the input: its sizes get names of their own.
        output_dynamic = {0: "batch", 2: "scores_height", 3: "scores_width"} if margin else dynamic
        with warnings.catch_warnings():
            # The TorchScript exporter is deprecated in favour of the dynamo one, which
            # needs onnxscript; for a plain CNN both give the same graph.
            warnings.simplefilter("ignore")
            # No constant folding: torch would compute it in float32 through MKL, whose
            # rounding depends on the CPU; the graph's initializers stay the module's
            # own tensors, bit for bit, and fold_batchnorm folds in float64.
            torch.onnx.export(
                exported,
                (sample,),
                str(temporary),
                dynamo=False,
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamic_axes={INPUT_NAME: dynamic, OUTPUT_NAME: output_dynamic},
                opset_version=opset,
                do_constant_folding=False,
            )
        graph = onnx.load(str(temporary))
        fold_batchnorm(graph)
        if not fp16:  # the fp16 head is not a float32 initializer: no adaptation
            features = expose_features(graph)
            contract = replace(contract, features_output=features)
        onnx.checker.check_model(graph)
        onnx.save(graph, str(temporary))
        write_metadata(temporary, contract)
        try:
            read_contract(temporary)
        except LandcoverError as error:
            raise ExportError(f"The exported metadata is rejected: {error}") from error
        session = cpu_session(temporary)
        (scores,) = session.run([OUTPUT_NAME], {INPUT_NAME: sample.numpy()})
        if contract.features_output is not None:
            features = check_features_output(temporary, contract, session, sample.numpy(), scores)
            if features != contract.features_output:
                write_metadata(temporary, replace(contract, features_output=features))
        if scores.shape != expected.shape:
            raise ExportError(
                f"ONNX Runtime returned shape {scores.shape}, PyTorch {expected.shape}."
            )
        difference = float(np.abs(scores.astype(np.float64) - expected).max())
        scale = max(1.0, float(np.abs(expected).max()))
        limit = tolerance if tolerance is not None else (5e-2 if fp16 else 1e-3) * scale
        if not difference <= limit:
            raise ExportError(
                f"ONNX Runtime differs from PyTorch by {difference:.3g} (allowed {limit:.3g})."
            )
    return difference


def software_versions() -> dict[str, str]:
    import onnx
    import onnxruntime

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
    }


def export_checkpoint(
    checkpoint: Path,
    output: Path,
    *,
    fp16: bool = False,
    sample: torch.Tensor | None = None,
    notes: CardNotes | None = None,
) -> tuple[Path, float]:
    """Export the weights of a training checkpoint with the contract recorded in it
    (``notes`` added to its model card).

    Returns:
        (written path, max abs difference ORT vs PyTorch).
    """
    state = load_checkpoint(checkpoint)
    config = config_from_dict(state["config"])
    statistics = state["statistics"]
    model = build_model(config)
    model.load_state_dict(state["model"])
    if sample is None:
        sample = example_input(config, seed=config.train.seed)
    metrics = state.get("metrics") or {}
    contract = trained_contract(
        config,
        statistics["mean"],
        statistics["std"],
        metrics=metrics,
        provenance={**json.loads(state.get("provenance", "{}")), "metrics": metrics},
        notes=notes,
    )
    network = inference_network(model, config.model.output_margin)
    difference = export_onnx(
        network, output, contract, sample, fp16=fp16, opset=config.export.opset
    )
    return output, difference


def build_model(config: Config) -> nn.Module:
    """The network ``config.model`` describes (initial weights; see ``init_weights``)."""
    m = config.model
    if m.architecture == "unet":
        return UNet(
            in_channels=len(config.data.bands),
            num_classes=len(config.class_values),
            base_width=m.base_width,
            depth=m.depth,
            max_width=m.max_width,
        )
    module_name, _, function_name = m.architecture.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), function_name)
    except (ImportError, AttributeError) as error:
        raise InputError(
            f"model.architecture {m.architecture!r} cannot be imported: {error}"
        ) from error
    model = factory(**m.options)
    if not isinstance(model, nn.Module):
        raise InputError(f"model.architecture {m.architecture!r} did not return a torch module.")
    return model


def example_input(config: Config, seed: int = 0, batch: int = 2) -> torch.Tensor:
    """Standard-normal input of one export tile (standardised data has that scale)."""
    generator = torch.Generator().manual_seed(seed)
    size = config.export.tile_size
    return torch.randn(batch, len(config.data.bands), size, size, generator=generator)


def timestamp() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--run", type=Path, help="run folder: export its best (else last) weights")
    source.add_argument("--checkpoint", type=Path, help="checkpoint file to export")
    source.add_argument(
        "--add-features",
        type=Path,
        metavar="MODEL",
        help="give an exported ONNX model its features output, in place",
    )
    parser.add_argument("--output", type=Path, help="ONNX file (default: <run>/model.onnx)")
    parser.add_argument("--fp16", action="store_true", help="also write a float16 variant")
    args = parser.parse_args(argv)
    if args.add_features is not None:
        try:
            features = add_features_output(args.add_features)
        except LandcoverError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        print(f"{args.add_features}: features output {features}")
        return 0
    if args.run is not None:
        best = args.run / "checkpoints" / BEST
        checkpoint = best if best.is_file() else args.run / "checkpoints" / LAST
        output = args.output or args.run / "model.onnx"
    else:
        checkpoint = args.checkpoint
        output = args.output or checkpoint.with_suffix(".onnx")
    try:
        path, difference = export_checkpoint(checkpoint, output)
        print(f"wrote {path} (ONNX Runtime vs PyTorch max abs difference {difference:.3g})")
        if args.fp16:
            half = output.with_name(output.stem + ".fp16.onnx")
            path, difference = export_checkpoint(checkpoint, half, fp16=True)
            print(f"wrote {path} (float16; max abs difference {difference:.3g})")
    except LandcoverError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
