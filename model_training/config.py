# SPDX-License-Identifier: GPL-2.0-or-later
"""Training configuration: typed dataclasses loaded from YAML or TOML, with
``--set section.field=value`` overrides for any field.

Every run saves its resolved configuration (``config.yaml`` in the run folder), so a
run can always be repeated, and the exported model's provenance records it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from qgis_landcover.core.errors import InputError

# Chesapeake 7-class codes -> the 2018 model's 4 classes: both impervious classes (5
# other, 6 road) join barren (4); unlisted values keep their own value.
CHESAPEAKE7_TO_2018 = {5: 4, 6: 4}


@dataclass
class DataConfig:
    """Where the training pairs are and how to read them.

    ``train`` and ``val`` list sources; each is a pairs CSV (columns ``image,label``,
    optional ``window`` as ``col row width height``), a folder (``*<image_suffix>`` next
    to ``*<label_suffix>``, plus any ``*.npz`` patches), a ``.npz`` patch, a glob, or a
    mapping ``{image, label, window}``. Relative paths are resolved against the working
    directory (inside a CSV: against the CSV's folder).
    """

    train: list[Any] = field(default_factory=list)
    val: list[Any] = field(default_factory=list)
    bands: list[int] = field(default_factory=lambda: [1, 2, 3, 4])
    band_names: list[str] = field(default_factory=lambda: ["red", "green", "blue", "nir"])
    label_band: int = 1
    image_suffix: str = "_naip.tif"
    label_suffix: str = "_labels.tif"
    npz_image_channels: list[int] = field(default_factory=lambda: [0, 1, 2, 3])
    npz_label_channel: int = 8
    patch_size: int = 256
    cache: bool = False
    num_workers: int = 0


@dataclass
class LabelsConfig:
    """Label values -> classes. ``remap`` maps label raster values to class values
    (unlisted values keep theirs; a dict or the plugin's ``'5:4,6:4'`` text / file);
    ``ignore_values`` and any value that is not a class after the remap are ignored in
    loss and metrics. Output channel ``i`` is the ``i``-th smallest class value."""

    remap: dict[int, int] | str = field(default_factory=lambda: dict(CHESAPEAKE7_TO_2018))
    ignore_values: list[int] = field(default_factory=lambda: [0, 15])
    classes: dict[int, str] = field(
        default_factory=lambda: {
            1: "water",
            2: "tree canopy",
            3: "low vegetation",
            4: "barren and impervious",
        }
    )
    # The shipped models' colours (the 2018 model's palette), so maps look alike.
    colors: dict[int, str] = field(
        default_factory=lambda: {1: "#1f78b4", 2: "#33a02c", 3: "#b2df8a", 4: "#a6a6a6"}
    )


@dataclass
class SamplerConfig:
    """Random training windows with rare-class over-sampling (the 2018 approach): a
    window holding at least ``rare_min_fraction`` of rare-class pixels is always kept,
    any other window only with probability ``common_keep_probability``."""

    rare_classes: list[int] = field(default_factory=lambda: [1, 4])
    rare_min_fraction: float = 0.003
    common_keep_probability: float = 0.5
    min_labelled_fraction: float = 0.05
    max_tries: int = 50


@dataclass
class AugmentConfig:
    """Aerial-imagery augmentation; jitter is in scaled units (DN x ``input_scale``)."""

    flips: bool = True
    rotate90: bool = True
    brightness: float = 0.05
    contrast: float = 0.1


@dataclass
class NormalizationConfig:
    """Input scaling and standardisation, written into the model metadata. ``mean`` /
    ``std`` (scaled units) are computed from ``windows`` random training windows when
    left empty."""

    input_scale: float = 1.0 / 255.0
    # The raw values the imagery holds (NAIP: 8-bit), written into the model contract so
    # the plugin can refuse imagery of another type or range instead of guessing.
    input_dtype: str = "uint8"
    input_range: list[float] = field(default_factory=lambda: [0.0, 255.0])
    mean: list[float] | None = None
    std: list[float] | None = None
    windows: int = 64


@dataclass
class ModelConfig:
    """The network. ``architecture`` ``unet``: the built-in U-Net, ``depth`` poolings,
    widths ``base_width * 2**level`` capped at ``max_width``. Otherwise
    ``package.module:function``, called with ``options`` as keyword arguments, returning
    a module that maps (N, bands, H, W) to (N, classes, H, W) scores (e.g. the converted
    2018 network for fine-tuning). ``init_weights``: a checkpoint (or state dict) whose
    weights start the training (fine-tuning a previous run).

    ``output_margin``: pixels per side whose scores are not trusted (the 2018 network
    was trained on the centre 128 x 128 of 256 x 256 tiles: 64). The loss and the
    validation then score only the centre of each patch, and the export crops the
    margin in the graph and declares it in the contract, so the plugin tiles with that
    much context. ``freeze``: module paths (e.g. ``network.stem``) whose weights stay
    fixed and whose batch norm keeps its statistics (fine-tuning on little data)."""

    architecture: str = "unet"
    base_width: int = 16
    depth: int = 4
    max_width: int = 128
    options: dict[str, Any] = field(default_factory=dict)
    init_weights: str | None = None
    output_margin: int = 0
    freeze: list[str] = field(default_factory=list)


@dataclass
class LossConfig:
    """``ce`` (weighted cross-entropy), ``focal`` or ``dice_ce``. ``class_weights``:
    ``auto`` (median-frequency balancing from label counts), ``none``, or one weight per
    class."""

    name: Literal["ce", "focal", "dice_ce"] = "ce"
    class_weights: str | list[float] = "auto"
    max_class_weight: float = 10.0
    focal_gamma: float = 2.0
    dice_weight: float = 1.0


@dataclass
class OptimConfig:
    """AdamW with linear warm-up then a cosine, step or constant schedule (per
    optimizer step)."""

    lr: float = 1e-3
    weight_decay: float = 1e-4
    schedule: Literal["cosine", "step", "constant"] = "cosine"
    warmup_steps: int = 100
    min_lr_ratio: float = 0.01
    step_every: int = 1000
    step_gamma: float = 0.1
    grad_clip: float = 0.0


@dataclass
class TrainConfig:
    """The loop. ``batch_size`` is per process and micro-step: a global batch is
    ``batch_size x grad_accum x world size`` patches."""

    run_dir: str = "runs/default"
    seed: int = 0
    epochs: int = 10
    steps_per_epoch: int = 200
    batch_size: int = 16
    grad_accum: int = 1
    val_batch_size: int = 16
    amp: Literal["auto", "none", "bf16", "fp16"] = "auto"
    compile: bool = False
    deterministic: bool = False
    threads: int = 0
    checkpoint_every: int = 100
    keep_checkpoints: bool = False
    log_every: int = 10
    # "none": no best-epoch selection; the last weights are exported (for validation
    # data that is also the reported held-out set, where picking would bias it).
    best_metric: Literal["miou", "kappa", "overall_accuracy", "none"] = "miou"
    backend: Literal["auto", "gloo", "nccl"] = "auto"
    progress: bool = True
    log_samples: bool = False


@dataclass
class ExportConfig:
    """The ONNX model written at the end of training (``model.onnx`` in the run folder)."""

    name: str = "landcover-unet"
    description: str = "U-Net land-cover classifier for 1 m NAIP imagery (R, G, B, NIR)."
    license: str = "GPL-2.0-or-later"
    resolution_cm: float = 100.0
    tile_size: int = 256
    tiles_overlap_percent: float = 25.0
    fp16: bool = False
    opset: int = 17


@dataclass
class Config:
    """The whole training configuration."""

    data: DataConfig = field(default_factory=DataConfig)
    labels: LabelsConfig = field(default_factory=LabelsConfig)
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    normalization: NormalizationConfig = field(default_factory=NormalizationConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    export: ExportConfig = field(default_factory=ExportConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def class_values(self) -> list[int]:
        """Class values in output-channel order."""
        return sorted(self.labels.classes)

    def validate(self) -> None:
        """Raise :class:`InputError` on settings that cannot work together."""
        problems: list[str] = []
        values = self.class_values
        if len(values) < 2:
            problems.append("labels.classes needs at least two classes")
        if self.labels.colors and set(self.labels.colors) != set(values):
            problems.append("labels.colors must give a '#rrggbb' colour to every class (or none)")
        unknown_rare = sorted(set(self.sampler.rare_classes) - set(values))
        if unknown_rare:
            problems.append(f"sampler.rare_classes not in labels.classes: {unknown_rare}")
        if len(self.data.band_names) != len(self.data.bands):
            problems.append("data.band_names must name each of data.bands")
        if len(self.data.npz_image_channels) != len(self.data.bands):
            problems.append("data.npz_image_channels must list as many channels as data.bands")
        # The U-Net pools depth times: other sizes work, but are padded inside.
        multiple = 2**self.model.depth if self.model.architecture == "unet" else 1
        for name, size in (
            ("data.patch_size", self.data.patch_size),
            ("export.tile_size", self.export.tile_size),
        ):
            if size <= 0 or size % multiple:
                problems.append(f"{name} ({size}) must be a positive multiple of {multiple}")
        margin = self.model.output_margin
        if margin < 0:
            problems.append("model.output_margin must be >= 0")
        for name, size in (
            ("data.patch_size", self.data.patch_size),
            ("export.tile_size", self.export.tile_size),
        ):
            if margin > 0 and size <= 2 * margin:
                problems.append(f"{name} ({size}) must exceed twice model.output_margin ({margin})")
        for name in ("mean", "std"):
            stats = getattr(self.normalization, name)
            if stats is not None and len(stats) != len(self.data.bands):
                problems.append(f"normalization.{name} needs one value per band")
        if isinstance(self.loss.class_weights, str):
            if self.loss.class_weights not in ("auto", "none"):
                problems.append("loss.class_weights must be 'auto', 'none' or a list")
        elif len(self.loss.class_weights) != len(values):
            problems.append("loss.class_weights needs one weight per class")
        positive = {
            "train.epochs": self.train.epochs,
            "train.steps_per_epoch": self.train.steps_per_epoch,
            "train.batch_size": self.train.batch_size,
            "train.grad_accum": self.train.grad_accum,
            "train.val_batch_size": self.train.val_batch_size,
            "train.log_every": self.train.log_every,
            "model.base_width": self.model.base_width,
            "model.depth": self.model.depth,
            "sampler.max_tries": self.sampler.max_tries,
        }
        problems += [f"{name} must be positive" for name, v in positive.items() if v <= 0]
        if not 0 < self.sampler.common_keep_probability <= 1:
            problems.append("sampler.common_keep_probability must be in (0, 1]")
        if self.model.architecture != "unet" and ":" not in self.model.architecture:
            problems.append("model.architecture must be 'unet' or 'package.module:function'")
        if not self.data.train:
            problems.append("data.train lists no training data")
        if problems:
            raise InputError("Invalid training configuration: " + "; ".join(problems) + ".")


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Defaults, then the YAML / TOML file ``path``, then ``key=value`` overrides
    (``train.epochs=3``, ``data.train=[a.csv]``; values are parsed as YAML)."""
    raw: dict[str, Any] = {}
    if path is not None:
        raw = read_config_file(Path(path))
    return config_from_dict(apply_overrides(raw, overrides or []))


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """``raw`` (a config mapping, changed in place) with ``key=value`` overrides applied."""
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise InputError(f"Override {item!r} is not of the form section.field=value.")
        try:
            value = yaml.safe_load(text) if text.strip() else None
        except yaml.YAMLError as error:
            raise InputError(f"Override {item!r}: cannot parse the value ({error}).") from error
        set_dotted(raw, key.strip(), value)
    return raw


def read_config_file(path: Path) -> dict[str, Any]:
    """The mapping in a ``.yaml`` / ``.yml`` / ``.toml`` file."""
    if not path.is_file():
        raise InputError(f"Configuration file not found: {path}")
    try:
        if path.suffix.lower() == ".toml":
            with path.open("rb") as stream:
                data = tomllib.load(stream)
        else:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, tomllib.TOMLDecodeError) as error:
        raise InputError(f"Cannot parse {path}: {error}") from error
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InputError(f"{path} must hold a mapping of sections.")
    return data


def save_config(config: Config, path: Path) -> None:
    """Write the resolved configuration as YAML."""
    path.write_text(yaml.safe_dump(config.to_dict(), sort_keys=False), encoding="utf-8")


def config_from_dict(data: dict[str, Any]) -> Config:
    """A :class:`Config` from a resolved dict (e.g. one stored in a checkpoint)."""
    config = convert(Config, data, "config")
    config.validate()
    return config


def set_dotted(target: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    node = target
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise InputError(f"Override {key!r}: {part!r} is not a section.")
        node = child
    node[parts[-1]] = value


def convert(kind: Any, value: Any, where: str) -> Any:
    """``value`` checked and converted to the type annotation ``kind``; errors name the
    offending key (``where``)."""
    if dataclasses.is_dataclass(kind) and isinstance(kind, type):
        if not isinstance(value, dict):
            raise InputError(f"{where} must be a mapping, not {value!r}.")
        hints = typing.get_type_hints(kind)
        names = {f.name for f in dataclasses.fields(kind)}
        unknown = sorted(set(value) - names)
        if unknown:
            raise InputError(f"Unknown setting(s) in {where}: {', '.join(map(str, unknown))}.")
        return kind(**{k: convert(hints[k], v, f"{where}.{k}") for k, v in value.items()})
    origin = typing.get_origin(kind)
    args = typing.get_args(kind)
    if kind is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for option in (a for a in args if a is not type(None)):
            try:
                return convert(option, value, where)
            except InputError as error:
                errors.append(str(error))
        raise InputError(errors[-1] if errors else f"{where}: invalid value {value!r}.")
    if origin is Literal:
        if value not in args:
            raise InputError(f"{where} must be one of {list(args)}, not {value!r}.")
        return value
    if origin is list:
        if not isinstance(value, list | tuple):
            raise InputError(f"{where} must be a list, not {value!r}.")
        return [convert(args[0], v, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise InputError(f"{where} must be a mapping, not {value!r}.")
        return {
            convert(args[0], k, f"{where} key"): convert(args[1], v, f"{where}.{k}")
            for k, v in value.items()
        }
    return convert_scalar(kind, value, where)


def convert_scalar(kind: type, value: Any, where: str) -> Any:
    if kind is bool:
        if isinstance(value, bool):
            return value
    elif kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            return int(value)  # TOML / JSON mapping keys are strings
    elif kind is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            # YAML 1.1 reads "5e-4" (no dot) as a string.
            with contextlib.suppress(ValueError):
                return float(value)
    elif kind is str and isinstance(value, str):
        return value
    raise InputError(f"{where} must be {kind.__name__}, not {value!r}.")
