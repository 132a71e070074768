# SPDX-License-Identifier: GPL-2.0-or-later
"""Every check a model must pass, in one place.

- **The contract** (:func:`check_contract`): the metadata agrees with itself (every
  channel named and valued, colours, bands, resolution, tile, margin, normalisation,
  input type and range). Every :class:`~.contract.ModelContract` runs it when built.
- **The graph** (:func:`check_graph`, :func:`check_scores`): the ONNX graph has the
  shapes the contract promises (one float32 N x C x H x W input, bands, classes, a
  fixed tile equal to ``tile_size``, the output margin), on loading a session and on
  every batch's scores.
- **The file** (:func:`check_model_file`, :func:`check_checksum`,
  :func:`check_downloaded_model`): a model is one existing file, with the checksum its
  catalogue entry or the user pins, and a download is a usable model before it is kept.

Every error names the metadata key at fault (:class:`~..errors.ModelContractError`) or
the file.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import ChecksumError, InputError, ModelContractError
from ..files.checksum import file_sha256

if TYPE_CHECKING:
    from .contract import ModelContract

HEX_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")

INPUT_DTYPES: dict[str, tuple[float, float] | None] = {
    "uint8": (0, 255),
    "uint16": (0, 65535),
    "int16": (-32768, 32767),
    "uint32": (0, 2**32 - 1),
    "int32": (-(2**31), 2**31 - 1),
    "float32": None,
    "float64": None,
}
"""Values of ``input_dtype`` (numpy names) and the range each integer type can hold."""

HEAD_ACTIVATIONS = ("none", "relu", "softmax")
"""What may follow the head's convolution before the scores (``features_output``)."""


# --------------------------------------------------------------------------- contract


def check_contract(contract: ModelContract) -> None:
    """Raise :class:`ModelContractError` naming the first inconsistent metadata key."""
    channels = sorted(contract.class_names)
    if not channels or channels != list(range(len(channels))):
        raise ModelContractError(
            "Model metadata 'class_names' must name every output channel 0..K-1, "
            f"got channels {channels}."
        )
    if contract.nodata_channel is not None and contract.nodata_channel not in contract.class_names:
        raise ModelContractError(
            f"Model metadata 'nodata_channel' {contract.nodata_channel} is not an output channel."
        )
    if sorted(contract.class_values) != channels:
        raise ModelContractError(
            "Model metadata 'class_values' must give a value for every channel in 'class_names'."
        )
    real_values = [contract.class_values[c] for c in contract.class_channels]
    if any(not 1 <= v <= 255 for v in real_values) or len(set(real_values)) != len(real_values):
        raise ModelContractError(
            "Model metadata 'class_values' must be distinct integers 1-255 (0 is the "
            f"output's nodata), got {real_values}."
        )
    if contract.class_colors:
        if sorted(contract.class_colors) != channels:
            raise ModelContractError(
                "Model metadata 'class_colors' must give a colour for every channel."
            )
        for channel, color in contract.class_colors.items():
            if not HEX_COLOR.match(color):
                raise ModelContractError(
                    f"Model metadata 'class_colors': channel {channel} colour {color!r} "
                    "is not '#rrggbb'."
                )
    if not contract.band_names:
        raise ModelContractError("Model metadata 'band_names' is empty.")
    if not contract.class_channels:
        raise ModelContractError("Model metadata leaves no class channel for argmax.")
    if not contract.resolution_cm > 0:
        raise ModelContractError("Model metadata 'resolution' must be > 0 (cm per pixel).")
    if contract.tile_size <= 0:
        raise ModelContractError("Model metadata 'tile_size' must be a positive integer.")
    if not 0 <= contract.tiles_overlap_percent < 100:
        raise ModelContractError("Model metadata 'tiles_overlap' must be 0-99 (percent).")
    if contract.output_margin < 0 or contract.output_size <= 0:
        raise ModelContractError(
            f"Model metadata 'output_margin' {contract.output_margin} leaves no output for "
            f"tile size {contract.tile_size}."
        )
    if not contract.input_scale > 0:
        raise ModelContractError("Model metadata 'input_scale' must be > 0.")
    for key, values in (
        ("standardization_mean", contract.standardization_mean),
        ("standardization_std", contract.standardization_std),
    ):
        if values is not None and len(values) not in (1, contract.num_bands):
            raise ModelContractError(
                f"Model metadata '{key}' has {len(values)} values for {contract.num_bands} bands."
            )
    if contract.standardization_std is not None and any(
        s <= 0 for s in contract.standardization_std
    ):
        raise ModelContractError("Model metadata 'standardization_std' must be > 0.")
    _check_input_keys(contract)
    _check_features_output(contract)
    if contract.model_type != "Segmentor":
        raise ModelContractError(
            f"Model metadata 'model_type' is {contract.model_type!r}; only 'Segmentor' "
            "(semantic segmentation) models classify land cover."
        )


def _check_input_keys(contract: ModelContract) -> None:
    """``input_dtype`` is a known type and ``input_range`` an interval that fits it."""
    if contract.input_dtype is not None and contract.input_dtype not in INPUT_DTYPES:
        raise ModelContractError(
            f"Model metadata 'input_dtype' {contract.input_dtype!r} is not one of "
            f"{', '.join(INPUT_DTYPES)}."
        )
    if contract.input_range is None:
        return
    if len(contract.input_range) != 2 or not contract.input_range[0] < contract.input_range[1]:
        raise ModelContractError(
            "Model metadata 'input_range' must be [low, high] with low < high, got "
            f"{list(contract.input_range)}."
        )
    limits = INPUT_DTYPES.get(contract.input_dtype or "")
    if limits is not None and not (
        limits[0] <= contract.input_range[0] and contract.input_range[1] <= limits[1]
    ):
        raise ModelContractError(
            f"Model metadata 'input_range' {list(contract.input_range)} does not fit "
            f"'input_dtype' {contract.input_dtype} ({limits[0]:g}-{limits[1]:g})."
        )


def _check_features_output(contract: ModelContract) -> None:
    """``features_output`` (when declared) describes a head that can produce the scores."""
    features = contract.features_output
    if features is None:
        return

    def fail(detail: str) -> ModelContractError:
        return ModelContractError(f"Model metadata 'features_output': {detail}")

    if not (features.name and features.weight and features.bias):
        raise fail("'name', 'weight' and 'bias' must name graph tensors.")
    if features.channels < 1:
        raise fail(f"'channels' must be >= 1, got {features.channels}.")
    if features.kernel_size < 1 or features.kernel_size % 2 == 0:
        raise fail(f"'kernel_size' must be an odd number >= 1, got {features.kernel_size}.")
    if features.activation not in HEAD_ACTIVATIONS:
        raise fail(
            f"'activation' {features.activation!r} is not one of {', '.join(HEAD_ACTIVATIONS)}."
        )
    if features.head_channels is not None and (
        len(features.head_channels) != contract.num_classes
        or len(set(features.head_channels)) != len(features.head_channels)
        or min(features.head_channels) < 0
    ):
        raise fail(
            f"'head_channels' {list(features.head_channels)} must give one distinct head "
            f"channel for each of the {contract.num_classes} output channels."
        )
    if not 0 <= features.margin <= contract.output_margin:
        raise fail(
            f"'margin' {features.margin} must lie between 0 and 'output_margin' "
            f"{contract.output_margin}."
        )


# --------------------------------------------------------------------------- graph


@dataclass(frozen=True)
class GraphShape:
    """What a model's ONNX graph fixes, once checked against its contract.

    Attributes:
        input_name, output_name: the graph's tensor names.
        fixed_batch: the batch size the graph requires, or ``None`` (dynamic).
        fixed_tile: the tile side the graph requires, or ``None`` (dynamic H / W).
        needs_probe: some output dimension (or the tile) is dynamic: only running the
            model shows whether its class count and output margin match the contract.
    """

    input_name: str
    output_name: str
    fixed_batch: int | None
    fixed_tile: int | None
    needs_probe: bool


def _dim(value: Any) -> int | None:
    """A static dimension, or ``None`` for a symbolic / unknown one."""
    return value if isinstance(value, int) and value > 0 else None


def check_graph(
    name: str,
    contract: ModelContract,
    inputs: Sequence[Any],
    outputs: Sequence[Any],
    *,
    names_bands: bool,
) -> tuple[ModelContract, GraphShape]:
    """Check a model's graph against its contract.

    Args:
        name: how messages name the model (its file name).
        inputs, outputs: the graph's tensors (ONNX Runtime ``NodeArg``: ``name``,
            ``type``, ``shape`` with ints for static and strings for symbolic sides).
        names_bands: the metadata has ``band_names``; without it (Deepness-style models)
            the contract gets one band per input channel.

    Returns:
        The contract (band names completed for models that do not name them) and the
        graph's fixed sizes.

    Raises:
        ModelContractError: ``'<name>: ...'`` naming the key the graph contradicts.
    """

    def fail(message: str) -> ModelContractError:
        return ModelContractError(f"{name}: {message}")

    if len(inputs) != 1:
        raise fail(f"the model has {len(inputs)} inputs; a segmentation model has one image input.")
    tensor, output = inputs[0], outputs[0]
    if tensor.type != "tensor(float)":
        raise fail(f"the model's input is {tensor.type}; it must be tensor(float) (float32).")
    if len(tensor.shape) != 4 or len(output.shape) != 4:
        raise fail(
            f"input {tensor.shape} and output {output.shape} must both be N x C x H x W "
            "(batch, channels, rows, columns)."
        )
    batch, channels, height, width = (_dim(d) for d in tensor.shape)
    if not names_bands:
        # Deepness-style models do not name their bands: one name per input channel.
        if channels is None:
            raise fail("metadata lacks 'band_names' and the input's channel count is dynamic.")
        contract = contract.with_band_count(channels)
    if channels is not None and channels != contract.num_bands:
        raise fail(
            f"metadata 'band_names' lists {contract.num_bands} bands "
            f"({', '.join(contract.band_names)}) but the model's input has {channels} channels."
        )
    if (height is None) != (width is None) or (height is not None and height != width):
        raise fail(f"the model's input must be square tiles (H = W), got {tensor.shape}.")
    if height is not None and height != contract.tile_size:
        raise fail(
            f"metadata 'tile_size' is {contract.tile_size} but the model's input is fixed at "
            f"{height} x {width} pixels."
        )
    out_channels, out_height, out_width = (_dim(d) for d in output.shape[1:])
    if out_channels is not None and out_channels != contract.num_classes:
        raise fail(
            f"metadata 'class_names' names {contract.num_classes} classes but the model "
            f"outputs {out_channels} channels."
        )
    expected_side = contract.output_size
    for side in (out_height, out_width):
        if side is not None and height is not None and side != expected_side:
            raise fail(
                f"the model returns {out_height} x {out_width} pixels for a {height} x {width} "
                f"input, but metadata 'output_margin' {contract.output_margin} means "
                f"{expected_side} x {expected_side}."
            )
    _check_features_graph(fail, contract, outputs)
    shape = GraphShape(
        input_name=tensor.name,
        output_name=output.name,
        fixed_batch=batch,
        fixed_tile=height,
        needs_probe=None in (out_channels, out_height, out_width, height),
    )
    return contract, shape


def _check_features_graph(fail: Any, contract: ModelContract, outputs: Sequence[Any]) -> None:
    """The output ``features_output`` names exists, is not the scores (the first
    output), and has the declared channels."""
    features = contract.features_output
    if features is None:
        return
    found = [o for o in outputs[1:] if o.name == features.name]
    if not found:
        raise fail(
            f"metadata 'features_output' names the output {features.name!r}, but the model's "
            f"outputs after the scores are {[o.name for o in outputs[1:]]}."
        )
    shape = found[0].shape
    if len(shape) != 4:
        raise fail(f"the features output {features.name!r} must be N x C x H x W, got {shape}.")
    channels = _dim(shape[1])
    if channels is not None and channels != features.channels:
        raise fail(
            f"metadata 'features_output' declares {features.channels} channels but the "
            f"output {features.name!r} has {channels}."
        )


def check_scores(
    name: str, contract: ModelContract, scores: np.ndarray, inputs: tuple[int, ...]
) -> None:
    """Raise :class:`ModelContractError` unless ``scores`` have the shape the contract
    promises for a batch of shape ``inputs`` (N, bands, rows, cols): (N, classes,
    rows - 2 margin, cols - 2 margin)."""
    margin = contract.output_margin
    expected = (inputs[0], contract.num_classes, inputs[-2] - 2 * margin, inputs[-1] - 2 * margin)
    if scores.ndim != 4 or scores.shape != expected:
        raise ModelContractError(
            f"{name}: the model returned scores of shape {tuple(scores.shape)} "
            f"for input {inputs}; the metadata ('class_names', 'output_margin') promise "
            f"{expected}."
        )


# --------------------------------------------------------------------------- file


def check_model_file(path: Path) -> None:
    """Raise :class:`InputError` unless ``path`` is a file: a folder is called one (a
    model is a single ``.onnx`` file), anything else not found."""
    if path.is_dir():
        raise InputError(
            f"The model {path} is a folder, not a file: give an ONNX model file (.onnx)."
        )
    if not path.is_file():
        raise InputError(f"Model file not found: {path}")


def check_checksum(path: Path, sha256: str | None) -> None:
    """Raise :class:`ChecksumError` when ``sha256`` (64 lowercase hex digits) is given
    and ``path`` has another SHA-256."""
    if sha256 is not None and (actual := file_sha256(path)) != sha256:
        raise ChecksumError(f"SHA-256 mismatch for {path}: expected {sha256}, got {actual}.")


def check_downloaded_model(path: Path, url: str) -> None:
    """Reject a downloaded file that is not an ONNX model with a valid contract; the
    message names the URL (the user knows the download by it), not the temporary file."""
    from .contract import read_contract  # contract.py imports this module for its checks

    try:
        read_contract(path)
    except InputError as error:
        detail = str(error).replace(f"{path.name}: ", "").replace(f": {path} (", " (")
        detail = detail.replace(str(path), "the file")
        raise type(error)(
            f"The file downloaded from {url} is not a usable land-cover model: {detail}"
        ) from error
