# SPDX-License-Identifier: GPL-2.0-or-later
"""The Markdown model card every model carries (beside its ONNX file as ``.md`` and in
its ``model_card`` metadata).

:class:`ModelCard` is the one layout: the sections every card has (source and licence,
training data, classes and colours, input expectations, known limits) and, between the
inputs and the limits, what the producer measured. Each producer fills it with what it
knows: :func:`trained_model_card` for a model trained here (the export at the end of
training and :mod:`~model_training.release.ship`),
:func:`model_training.cntk.convert.conversion_card` for the converted 2018 model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from qgis_landcover.core.models.contract import ModelContract

from ..config import Config


@dataclass(frozen=True)
class CardTable:
    """A Markdown table: ``header`` cells and ``rows`` of cells, already formatted."""

    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]

    def lines(self) -> list[str]:
        separator = "|" + "---|" * len(self.header)
        return [_table_row(self.header), separator, *(_table_row(row) for row in self.rows)]


def _table_row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


#: Markdown under a heading: lines (paragraphs, bullet points, blank lines) and tables.
Body = tuple[str | CardTable, ...]


@dataclass(frozen=True)
class CardSection:
    """A ``## title`` section with ``body`` under it."""

    title: str
    body: Body

    def lines(self) -> list[str]:
        body = [line for part in self.body for line in _lines(part)]
        return [f"## {self.title}", "", *body]


def _lines(part: str | CardTable) -> list[str]:
    return part.lines() if isinstance(part, CardTable) else [part]


def _bullets(items: Sequence[str]) -> Body:
    return tuple(f"- {item}" for item in items)


@dataclass(frozen=True)
class ModelCard:
    """A model card. ``sources``, ``inputs`` and ``limits`` are bullet points (without
    the ``-``); ``sections`` come between the input expectations and the known limits,
    each a :class:`CardSection` or a complete Markdown block with its own ``##`` heading
    (e.g. :func:`~model_training.release.evaluate_models.heldout_section`)."""

    title: str
    summary: str
    sources: tuple[str, ...]
    training_data: Body
    classes: Body
    inputs: tuple[str, ...]
    sections: tuple[CardSection | str, ...]
    limits: tuple[str, ...]

    def render(self) -> str:
        """The card as Markdown, ending with a newline."""
        blocks = (
            CardSection("Source and licence", _bullets(self.sources)),
            CardSection("Training data", self.training_data),
            CardSection("Classes and colours", self.classes),
            CardSection("Input expectations", _bullets(self.inputs)),
            *self.sections,
            CardSection("Known limits", _bullets(self.limits)),
        )
        lines = [f"# {self.title}", "", self.summary]
        for block in blocks:
            lines += ["", *(block.lines() if isinstance(block, CardSection) else [block.strip()])]
        return "\n".join(lines) + "\n"


# --- A model trained here ------------------------------------------------------------


@dataclass(frozen=True)
class CardNotes:
    """What a model card says beyond the training run's own record: ``sources``, extra
    source and licence bullet points (e.g. where initial weights came from);
    ``evaluation``, a Markdown section (e.g. scores through the plugin on held-out
    pixels); ``limits``, extra known-limit bullet points."""

    sources: tuple[str, ...] = ()
    evaluation: str = ""
    limits: tuple[str, ...] = ()


def describe_network(config: Config) -> str:
    """One sentence on the network and where its initial weights came from."""
    m = config.model
    if m.architecture == "unet":
        text = f"U-Net (`model_training.unet`), base width {m.base_width}, depth {m.depth}"
    else:
        options = ", ".join(f"{k}={v}" for k, v in m.options.items())
        text = f"`{m.architecture}({options})`"
    if m.init_weights:
        text += f", initialised from `{m.init_weights}`"
    if m.freeze:
        text += f"; fixed during training: {', '.join(f'`{f}`' for f in m.freeze)}"
    if m.output_margin:
        text += (
            f"; loss and validation on the centre of each patch ({m.output_margin} px "
            "margin per side)"
        )
    return text


def trained_model_card(
    contract: ModelContract,
    config: Config,
    metrics: Mapping[str, Any],
    provenance: Mapping[str, Any],
    notes: CardNotes | None = None,
) -> ModelCard:
    """The card of a model trained with ``config``: source and licence, training data,
    classes and colours, what the model expects (from ``contract``), how it was trained
    (``provenance``: the trainer's record), how well it did on its validation data
    (``metrics``, the trainer's validation) and ``notes``."""
    notes = notes or CardNotes()
    training = ", ".join(f"`{n}`" for n in provenance.get("training_data", []))
    validation = ", ".join(f"`{n}`" for n in provenance.get("validation_data", []))
    classes = CardTable(
        ("channel", "value", "class", "colour"),
        tuple(
            (str(channel), str(contract.class_values[channel]), name,
             contract.class_colors.get(channel, ""))
            for channel, name in sorted(contract.class_names.items())
        ),
    )  # fmt: skip
    mean = ", ".join(f"{v:.4f}" for v in contract.standardization_mean or [])
    std = ", ".join(f"{v:.4f}" for v in contract.standardization_std or [])
    margin = contract.output_margin
    sections: list[CardSection | str] = [
        CardSection(
            "Training",
            _bullets(
                [
                    f"Network: {describe_network(config)}.",
                    f"Loss {config.loss.name} (class weights: {config.loss.class_weights}); "
                    f"{provenance.get('steps', '?')} optimizer steps of "
                    f"{provenance.get('global_batch', '?')} patches of "
                    f"{config.data.patch_size} px on {provenance.get('world_size', '?')} "
                    f"process(es); AdamW, learning rate {config.optim.lr:g}, "
                    f"{config.optim.schedule} schedule.",
                ]
            ),
        )
    ]
    if metrics:
        sections.append(validation_section(contract, config, metrics))
    if notes.evaluation:
        sections.append(notes.evaluation)
    return ModelCard(
        title=contract.name,
        summary=contract.description,
        sources=(
            "Trained with this project's `model_training` (PyTorch DDP) and exported by "
            "`model_training.export`; the full configuration, band statistics and software "
            "versions are in the ONNX metadata (`provenance`).",
            f"Licence of the weights: {contract.license}.",
            *notes.sources,
        ),
        training_data=_bullets(
            [
                f"Training: {training or 'see provenance'}.",
                f"Validation during training: {validation or 'none'}.",
                f"Label remap: {config.labels.remap}; ignored label values: "
                f"{config.labels.ignore_values}.",
            ]
        ),
        classes=(classes,),
        inputs=(
            f"Bands, in order: {', '.join(contract.band_names)}.",
            f"Resolution: {contract.resolution_cm:g} cm per pixel; tiles of "
            f"{contract.tile_size} px with {contract.tiles_overlap_percent:g} % overlap.",
            f"Pixel values are multiplied by {contract.input_scale:.6g}, then standardised "
            f"per band with mean [{mean}] and std [{std}].",
            "The output has the input's size (no margin is cropped)."
            if margin == 0
            else f"The model returns the centre {contract.output_size} x "
            f"{contract.output_size} px of each {contract.tile_size} px tile "
            f"(`output_margin` {margin}).",
        ),
        sections=tuple(sections),
        limits=(
            "Valid only for imagery like the training data (sensor, season, region, "
            "resolution); accuracy elsewhere is unmeasured.",
            "Classes rare or absent in the validation data have no reliable accuracy.",
            *notes.limits,
        ),
    )


def validation_section(
    contract: ModelContract, config: Config, metrics: Mapping[str, Any]
) -> CardSection:
    """The trainer's validation ``metrics`` (overall accuracy, kappa, mean IoU, IoU per
    class value) of the weights the model holds."""
    selection = config.train.best_metric
    weights = (
        "the last step's weights"
        if selection == "none"
        else f"the best epoch by {selection} (a selection on these pixels)"
    )
    lines = [f"The trainer's own tiling of its validation data, {weights}:", ""]
    for key, label in (
        ("overall_accuracy", "Overall accuracy"),
        ("kappa", "Cohen's kappa"),
        ("miou", "Mean IoU"),
    ):
        if metrics.get(key) is not None:
            lines.append(f"- {label}: {metrics[key]:.4f}")
    per_class = metrics.get("iou", {})
    for channel, name in sorted(contract.class_names.items()):
        value = per_class.get(str(contract.class_values[channel]))
        text = "n/a (absent from the validation data)" if value is None else f"{value:.4f}"
        lines.append(f"- IoU {name}: {text}")
    return CardSection("Validation during training", tuple(lines))
