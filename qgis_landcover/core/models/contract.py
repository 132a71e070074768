# SPDX-License-Identifier: GPL-2.0-or-later
"""The model contract: what an ONNX land-cover model says about itself.

The contract lives in the ONNX file's ``metadata_props`` (string key -> string value,
each value JSON-encoded). It is the one interface between ``model_training`` (which
writes it) and the plugin (which reads it). Keys and units follow the Deepness QGIS
plugin where Deepness has them, so Deepness segmentation models run here and ours run
in Deepness:

====================  ===========================================================
key                   meaning
====================  ===========================================================
model_type            ``"Segmentor"`` (Deepness)
class_names           {output channel index: name} (Deepness)
resolution            model resolution in **cm per pixel** (Deepness)
tile_size             tile side in pixels (Deepness; older files: ``tiles_size``)
tiles_overlap         overlap between tiles in **percent** of the tile (Deepness)
standardization_mean  per-band mean subtracted after scaling (Deepness)
standardization_std   per-band std divided after scaling (Deepness)
--------------------  -----------------------------------------------------------
landcover_contract    contract version (int); its presence marks our own models
band_names            band order the model expects, e.g. ["red","green","blue","nir"]
class_colors          {channel: "#rrggbb"}
class_values          {channel: value written in the classified raster}
nodata_channel        channel meaning "no data", excluded from argmax, or null
output_margin         pixels cropped from each side of the input by the model
input_scale           raw pixel values are multiplied by this before standardisation
input_dtype           data type of the raw values the model was trained on, e.g. "uint8"
input_range           [low, high] of those raw values, e.g. [0, 255]
features_output       the penultimate features and the head that turns them into
                      scores (:class:`FeaturesOutput`), for local adaptation; optional
name, description, license, model_card (Markdown), provenance (object)
====================  ===========================================================

Models without ``landcover_contract`` (e.g. from the Deepness model zoo) get
Deepness's defaults: values scaled by 1/255, no margin, and class value = channel + 1
(0 stays the output's nodata). Models without ``input_dtype`` / ``input_range`` get
them derived from ``input_scale`` (:meth:`ModelContract.expected_input`). Every
contract is checked when it is built (:func:`~.validation.check_contract`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from ..errors import InputError, ModelContractError
from .validation import INPUT_DTYPES, check_contract, check_model_file

CONTRACT_VERSION = 1
DEEPNESS_INPUT_SCALE = 1.0 / 255.0


@dataclass(frozen=True)
class InputExpectation:
    """What raw input a model reads correctly (before ``input_scale``).

    Attributes:
        dtype: numpy name of the data type, e.g. ``"uint8"``.
        value_range: (low, high) of the raw values, or ``None`` when unknown (only the
            data type is then known).
        origin: where it comes from, for messages (``"metadata 'input_range'"``, or how
            it was derived).
    """

    dtype: str
    value_range: tuple[float, float] | None
    origin: str

    @property
    def range_text(self) -> str:
        """``'0-255'``, or ``'any'`` when unknown."""
        if self.value_range is None:
            return "any"
        return f"{self.value_range[0]:g}-{self.value_range[1]:g}"


@dataclass(frozen=True)
class FeaturesOutput:
    """Where a model exposes its penultimate features, and the head that maps them to
    the scores (metadata ``features_output``), so the head can be re-fitted on the
    model's own features (local adaptation) without any other knowledge of the graph.

    With ``k`` = ``kernel_size``, ``p = k // 2`` and ``d = output_margin - margin``::

        scores[n, c, y, x] = act(bias[c] + sum_{f, i, j} weight[c, f, i, j]
                                 * features[n, f, y + d + i - p, x + d + j - p])

    features outside the map count as 0 (the convolution's zero padding; never reached
    for ``d >= p``). The scores stay the graph's first output; this one is fetched only
    by adaptation, so classification costs the same.

    Attributes:
        name: the graph output holding the features, float32 (N, channels, H - 2 margin,
            W - 2 margin) for an (N, bands, H, W) input.
        channels: feature channels (64 in the 2018 network).
        margin: pixels the features map lacks on each side of the input (0: input size).
        kernel_size: the head convolution's square, odd kernel side (3 in the 2018
            network: each pixel's score is a linear function of 3 x 3 x 64 = 576 values).
        weight, bias: names of the graph initializers holding the head's weight
            (classes, channels, k, k) and bias (classes,), float32.
        activation: what follows the convolution: ``"none"``, ``"relu"`` (the 2018
            network) or ``"softmax"`` over the channels.
        head_channels: the head's output channel behind each score channel when the
            graph keeps only some of them, after the activation (models fine-tuned
            from the 2018 network drop its no-data channel 0: ``(1, 2, 3, 4)``);
            ``None``: every head channel, in order.
    """

    name: str
    channels: int
    kernel_size: int
    weight: str
    bias: str
    activation: str = "none"
    margin: int = 0
    head_channels: tuple[int, ...] | None = None

    @property
    def neighbourhood_features(self) -> int:
        """Inputs of one pixel's score: ``channels * kernel_size ** 2``."""
        return self.channels * self.kernel_size**2

    def to_json(self) -> dict[str, Any]:
        value = asdict(self)
        if self.head_channels is None:
            del value["head_channels"]  # files stay as they were without it
        else:
            value["head_channels"] = list(self.head_channels)
        return value

    @classmethod
    def from_json(cls, value: Any) -> FeaturesOutput:
        """Parse the metadata object; raise :class:`ModelContractError` when malformed."""
        fields = ("name", "channels", "kernel_size", "weight", "bias", "activation", "margin",
                  "head_channels")  # fmt: skip
        if not isinstance(value, dict) or not {"name", "channels", "kernel_size", "weight",
                                               "bias"} <= set(value):  # fmt: skip
            raise ModelContractError(
                "Model metadata 'features_output' is malformed: expected an object with "
                "'name', 'channels', 'kernel_size', 'weight', 'bias' (and 'activation', "
                f"'margin'), got {json.dumps(value)[:200]}."
            )
        try:
            return cls(
                name=str(value["name"]),
                channels=_strict_int(value["channels"]),
                kernel_size=_strict_int(value["kernel_size"]),
                weight=str(value["weight"]),
                bias=str(value["bias"]),
                activation=str(value.get("activation", "none")),
                margin=_strict_int(value.get("margin", 0)),
                head_channels=None
                if value.get("head_channels") is None
                else tuple(_strict_int(c) for c in value["head_channels"]),
            )
        except (TypeError, ValueError) as error:
            raise ModelContractError(
                "Model metadata 'features_output' is malformed: "
                + ", ".join(f"{k}={value.get(k)!r}" for k in fields if k in value)
                + "; 'channels', 'kernel_size' and 'margin' must be integers."
            ) from error


def _strict_int(value: Any) -> int:
    """An integer from JSON (``3`` or ``3.0``), refusing ``3.5``, strings and booleans."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(value)
    if isinstance(value, float) and not value.is_integer():
        raise ValueError(value)
    return int(value)


def _dtype_for_range(low: float, high: float) -> str:
    """The smallest integer type holding integral ``low``..``high``, else float32."""
    if float(low).is_integer() and float(high).is_integer():
        for name in ("uint8", "uint16", "int16", "uint32", "int32"):
            limits = INPUT_DTYPES[name]
            if limits is not None and limits[0] <= low and high <= limits[1]:
                return name
    return "float32"


@dataclass(frozen=True)
class ModelContract:
    """The metadata of a land-cover segmentation model.

    Attributes:
        class_names: output channel index -> class name, for every output channel.
        class_values: output channel -> value written in the classified raster
            (1..255; 0 is the output's nodata). Defaults to the channel index when
            channel 0 is the nodata channel, else to the channel index + 1.
        class_colors: output channel -> ``'#rrggbb'``.
        band_names: names of the input bands in the order the model expects.
        resolution_cm: ground sampling distance the model was trained at, cm / pixel.
        tile_size: input tile side in pixels.
        tiles_overlap_percent: default overlap between neighbouring tiles, percent.
        output_margin: pixels the model crops from each side of its input
            (0: output has the input's size; 64: a 256 input gives the centre 128).
        nodata_channel: channel meaning "no data", excluded from argmax, or None.
        input_scale: raw pixel values are multiplied by this first (e.g. 1/255).
        standardization_mean, standardization_std: per-band, applied after scaling
            as ``(x * input_scale - mean) / std``; None for no standardisation.
        input_dtype, input_range: the raw input the model was trained on (data type,
            numpy name, and (low, high) of its values), as declared in the metadata;
            ``None`` when not declared (:meth:`expected_input` derives them).
        features_output: where the graph exposes its penultimate features and its
            head, or ``None`` (the model cannot be adapted; :class:`FeaturesOutput`).
    """

    class_names: dict[int, str]
    band_names: list[str]
    resolution_cm: float
    tile_size: int
    tiles_overlap_percent: float = 10.0
    class_values: dict[int, int] = field(default_factory=dict)
    class_colors: dict[int, str] = field(default_factory=dict)
    output_margin: int = 0
    nodata_channel: int | None = None
    input_scale: float = DEEPNESS_INPUT_SCALE
    standardization_mean: list[float] | None = None
    standardization_std: list[float] | None = None
    input_dtype: str | None = None
    input_range: tuple[float, float] | None = None
    features_output: FeaturesOutput | None = None
    name: str = ""
    description: str = ""
    license: str = ""
    model_card: str = ""
    provenance: dict[str, Any] = field(default_factory=dict)
    model_type: str = "Segmentor"
    contract_version: int = CONTRACT_VERSION

    def __post_init__(self) -> None:
        # Fill derived defaults on the frozen instance, then check consistency.
        if not self.class_values:
            # Channel index as value when channel 0 is "no data" (the 2018 convention);
            # otherwise index + 1, so a real class 0 (Deepness's "background") does not
            # collide with the output's nodata value 0.
            offset = 0 if self.nodata_channel == 0 else 1
            object.__setattr__(self, "class_values", {c: c + offset for c in self.class_names})
        check_contract(self)

    @property
    def num_classes(self) -> int:
        """Number of output channels."""
        return len(self.class_names)

    @property
    def num_bands(self) -> int:
        """Number of input bands."""
        return len(self.band_names)

    @property
    def output_size(self) -> int:
        """Side in pixels of the model's output for one ``tile_size`` input."""
        return self.tile_size - 2 * self.output_margin

    @property
    def resolution_m(self) -> float:
        """Model resolution in metres per pixel."""
        return self.resolution_cm / 100.0

    @property
    def class_channels(self) -> list[int]:
        """Output channels that are real classes (the argmax candidates)."""
        return [c for c in sorted(self.class_names) if c != self.nodata_channel]

    def expected_input(self) -> InputExpectation | None:
        """The raw input the model reads correctly, declared or derived; ``None`` when
        neither the metadata nor ``input_scale`` says.

        - ``input_range`` declared: that range (and ``input_dtype``, or the smallest
          integer type holding an integral range, else float32);
        - only ``input_dtype``: the range of an integer type, none for a float type;
        - neither: from ``input_scale``, which brings the raw values to about 0-1:
          1/255, 1/256 (the 2018 model) or 1/127.5 mean 8-bit values, uint8 0-255;
          1/N for another integer N above 256 means uint16 0-N (e.g. 1/10000 for
          reflectance x 10000); any other scale declares nothing.
        """
        if self.input_range is not None:
            low, high = self.input_range
            dtype = self.input_dtype or _dtype_for_range(low, high)
            return InputExpectation(dtype, (low, high), "metadata 'input_range'")
        if self.input_dtype is not None:
            return InputExpectation(
                self.input_dtype, INPUT_DTYPES[self.input_dtype], "metadata 'input_dtype'"
            )
        inverse = 1.0 / self.input_scale
        origin = (
            f"derived from 'input_scale' 1/{inverse:.6g}, as the model does not declare "
            "'input_range'"
        )
        if 127.0 <= inverse <= 256.5:
            return InputExpectation("uint8", (0.0, 255.0), origin)
        if 256.5 < inverse <= 65535.5 and abs(inverse - round(inverse)) < 1e-6 * inverse:
            return InputExpectation("uint16", (0.0, float(round(inverse))), origin)
        return None

    def to_metadata_props(self) -> dict[str, str]:
        """The contract as ONNX ``metadata_props`` (every value JSON-encoded)."""
        values: dict[str, Any] = {
            "model_type": self.model_type,
            "class_names": {str(k): v for k, v in sorted(self.class_names.items())},
            "resolution": self.resolution_cm,
            "tile_size": self.tile_size,
            # Deepness documents the older spelling; write both so either reader works.
            "tiles_size": self.tile_size,
            "tiles_overlap": self.tiles_overlap_percent,
            "landcover_contract": self.contract_version,
            "band_names": self.band_names,
            "class_values": {str(k): v for k, v in sorted(self.class_values.items())},
            "class_colors": {str(k): v for k, v in sorted(self.class_colors.items())},
            "nodata_channel": self.nodata_channel,
            "output_margin": self.output_margin,
            "input_scale": self.input_scale,
            "name": self.name,
            "description": self.description,
            "license": self.license,
            "model_card": self.model_card,
            "provenance": self.provenance,
        }
        if self.standardization_mean is not None:
            values["standardization_mean"] = self.standardization_mean
        if self.standardization_std is not None:
            values["standardization_std"] = self.standardization_std
        # Written only when declared: files stay as they were for models that do not.
        if self.input_dtype is not None:
            values["input_dtype"] = self.input_dtype
        if self.input_range is not None:
            values["input_range"] = list(self.input_range)
        if self.features_output is not None:
            values["features_output"] = self.features_output.to_json()
        return {key: json.dumps(value) for key, value in values.items()}

    @classmethod
    def from_metadata_props(cls, props: Mapping[str, str]) -> ModelContract:
        """Parse ``metadata_props``; raise :class:`ModelContractError` naming the key."""
        reader = _MetadataReader(props)
        ours = "landcover_contract" in props
        tile_size = reader.get("tile_size", int, None)
        if tile_size is None:
            tile_size = reader.get("tiles_size", int, None)
        if tile_size is None:
            raise ModelContractError("Model metadata lacks 'tile_size' (or 'tiles_size').")
        class_names = reader.int_keyed("class_names", str, required=True)
        band_names = reader.get("band_names", list, None)
        if band_names is None:
            if ours:
                raise ModelContractError("Model metadata lacks 'band_names'.")
            # Foreign models do not name bands: a placeholder per standardisation value
            # (or one); the loader sets the count from the graph (with_band_count).
            stats = reader.float_list("standardization_mean") or [0.0]
            band_names = [f"band{i + 1}" for i in range(len(stats))]
        return cls(
            model_type=reader.get("model_type", str, "Segmentor"),
            class_names=class_names,
            band_names=[str(b) for b in band_names],
            resolution_cm=reader.get("resolution", float, None, required=True),
            tile_size=tile_size,
            tiles_overlap_percent=reader.get("tiles_overlap", float, 10.0),
            class_values=reader.int_keyed("class_values", int),
            class_colors=reader.int_keyed("class_colors", str),
            output_margin=reader.get("output_margin", int, 0),
            nodata_channel=reader.get("nodata_channel", int, None),
            input_scale=reader.get("input_scale", float, DEEPNESS_INPUT_SCALE),
            standardization_mean=reader.float_list("standardization_mean"),
            standardization_std=reader.float_list("standardization_std"),
            input_dtype=reader.get("input_dtype", str, None),
            input_range=_range_or_none(reader.float_list("input_range")),
            features_output=_features_or_none(reader.get("features_output", dict, None)),
            name=reader.get("name", str, ""),
            description=reader.get("description", str, ""),
            license=reader.get("license", str, ""),
            model_card=reader.get("model_card", str, ""),
            provenance=reader.get("provenance", dict, {}),
            contract_version=reader.get("landcover_contract", int, 0),
        )

    def with_band_count(self, bands: int) -> ModelContract:
        """For foreign models that do not name their bands: ``band1..bandN``."""
        if self.num_bands == bands:
            return self
        return replace(self, band_names=[f"band{i + 1}" for i in range(bands)])

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON-serialisable) for reports and logs."""
        return asdict(self)


def _features_or_none(value: dict[str, Any] | None) -> FeaturesOutput | None:
    return None if value is None else FeaturesOutput.from_json(value)


def _range_or_none(values: list[float] | None) -> tuple[float, float] | None:
    """``input_range`` as a pair; a list of another length fails validation."""
    if values is None:
        return None
    if len(values) != 2:
        raise ModelContractError(
            f"Model metadata 'input_range' must be [low, high], got {len(values)} values."
        )
    return (values[0], values[1])


class _MetadataReader:
    """Typed access to JSON-encoded metadata values, with errors naming the key."""

    def __init__(self, props: Mapping[str, str]) -> None:
        self.props = dict(props)

    def raw(self, key: str) -> Any:
        text = self.props[key]
        try:
            return json.loads(text)
        except (json.JSONDecodeError, TypeError):
            # Some exporters store bare strings / numbers without JSON quoting.
            return text

    def get(self, key: str, kind: type, default: Any, *, required: bool = False) -> Any:
        if key not in self.props:
            if required:
                raise ModelContractError(f"Model metadata lacks '{key}'.")
            return default
        value = self.raw(key)
        if value is None:
            return default
        try:
            if kind is float:
                return float(value)
            if kind is int:
                if isinstance(value, float) and not value.is_integer():
                    raise ValueError
                return int(value)
            if kind is str:
                return str(value)
            if not isinstance(value, kind):
                raise TypeError
            return value
        except (TypeError, ValueError) as error:
            raise ModelContractError(
                f"Model metadata '{key}' is malformed: expected {kind.__name__}, got "
                f"{self.props[key]!r}."
            ) from error

    def int_keyed(self, key: str, kind: type, *, required: bool = False) -> dict[int, Any]:
        value = self.get(key, dict, None, required=required)
        if value is None:
            return {}
        try:
            return {int(k): kind(v) for k, v in value.items()}
        except (TypeError, ValueError) as error:
            raise ModelContractError(
                f"Model metadata '{key}' is malformed: expected an object keyed by channel "
                f"index, got {self.props[key]!r}."
            ) from error

    def float_list(self, key: str) -> list[float] | None:
        value = self.get(key, list, None)
        if value is None:
            return None
        try:
            return [float(v) for v in value]
        except (TypeError, ValueError) as error:
            raise ModelContractError(
                f"Model metadata '{key}' is malformed: expected a list of numbers."
            ) from error


def read_metadata_props(path: str | os.PathLike[str]) -> dict[str, str]:
    """The ``metadata_props`` of an ONNX file, read with ONNX Runtime (no ``onnx``),
    which also checks that the graph loads; without ONNX Runtime (downloading a model
    must work in a QGIS without it) read from the file alone, the graph being checked
    when a session loads it."""
    model_path = Path(path)
    check_model_file(model_path)
    try:
        import onnxruntime
    except ImportError:
        from .onnx_metadata import read_onnx_metadata

        return read_onnx_metadata(model_path)
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    try:
        session = onnxruntime.InferenceSession(
            str(model_path), options, providers=["CPUExecutionProvider"]
        )
    except Exception as error:  # ORT raises its own exception types for bad files
        raise InputError(f"Not a valid ONNX model: {model_path} ({error})") from error
    return dict(session.get_modelmeta().custom_metadata_map)


def read_contract(path: str | os.PathLike[str]) -> ModelContract:
    """Read and validate the contract stored in an ONNX file."""
    props = read_metadata_props(path)
    try:
        return ModelContract.from_metadata_props(props)
    except ModelContractError as error:
        raise ModelContractError(f"{Path(path).name}: {error}") from error
