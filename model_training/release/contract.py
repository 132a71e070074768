# SPDX-License-Identifier: GPL-2.0-or-later
"""The model contract (:class:`~qgis_landcover.core.models.contract.ModelContract`)
that every model written here carries in its ONNX metadata.

:func:`build_contract` is the one builder: the export at the end of training
(:func:`trained_contract`) and the CNTK conversion
(:func:`model_training.cntk.convert.converted_contract`) describe their model with the
same settings types, :class:`~model_training.config.ExportConfig` (name, licence, tiles)
and :class:`~model_training.config.NormalizationConfig` (the raw input). The model card
is added afterwards (:func:`with_card`): it quotes the contract and, for the converted
model, scores measured on the exported file.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from qgis_landcover.core.models.contract import ModelContract

from ..config import Config, ExportConfig, NormalizationConfig
from .model_card import CardNotes, ModelCard, trained_model_card


@dataclass(frozen=True)
class ModelClass:
    """One output channel of a model: the ``value`` written in the classified raster,
    its ``name`` and ``colour`` (``'#rrggbb'``; a model colours every class or none)."""

    value: int
    name: str
    colour: str = ""


def build_contract(
    classes: Sequence[ModelClass],
    band_names: Sequence[str],
    export: ExportConfig,
    normalization: NormalizationConfig,
    *,
    output_margin: int,
    standardization: tuple[Sequence[float], Sequence[float]] | None = None,
    nodata_channel: int | None = None,
    provenance: Mapping[str, Any] | None = None,
) -> ModelContract:
    """The contract of a model whose output channel ``i`` is ``classes[i]``.

    Args:
        classes: every output channel, in channel order (``nodata_channel`` included).
        band_names: the input bands, in the order the model reads them.
        export: name, description, licence, resolution (cm / pixel), tile size (px) and
            default overlap (%).
        normalization: ``input_scale`` and the raw input's ``input_dtype`` and
            ``input_range``; its ``mean`` / ``std`` are not read (see
            ``standardization``).
        output_margin: pixels the network crops from each side of a tile.
        standardization: per-band (mean, std) in scaled units, as measured on the
            training data; ``None`` for a model that standardises nothing.
        nodata_channel: the channel meaning "no data" (never chosen), if any.
        provenance: where the model comes from (stored as given).

    The model card is empty: add it with :func:`with_card`.
    """
    mean, std = standardization if standardization is not None else (None, None)
    return ModelContract(
        class_names={channel: c.name for channel, c in enumerate(classes)},
        class_values={channel: c.value for channel, c in enumerate(classes)},
        class_colors={channel: c.colour for channel, c in enumerate(classes) if c.colour},
        band_names=list(band_names),
        resolution_cm=export.resolution_cm,
        tile_size=export.tile_size,
        tiles_overlap_percent=export.tiles_overlap_percent,
        output_margin=output_margin,
        nodata_channel=nodata_channel,
        input_scale=normalization.input_scale,
        input_dtype=normalization.input_dtype,
        input_range=tuple(float(v) for v in normalization.input_range),
        standardization_mean=None if mean is None else [float(v) for v in mean],
        standardization_std=None if std is None else [float(v) for v in std],
        name=export.name,
        description=export.description,
        license=export.license,
        provenance=dict(provenance or {}),
    )


def with_card(contract: ModelContract, card: ModelCard) -> ModelContract:
    """``contract`` carrying ``card`` (rendered to Markdown) in its ``model_card``."""
    return dataclasses.replace(contract, model_card=card.render())


def trained_contract(
    config: Config,
    mean: Sequence[float],
    std: Sequence[float],
    *,
    metrics: Mapping[str, Any] | None = None,
    provenance: Mapping[str, Any] | None = None,
    notes: CardNotes | None = None,
) -> ModelContract:
    """The contract of a model trained with ``config``: channel ``i`` is the ``i``-th
    smallest class value; standardisation statistics (``mean``, ``std``, scaled units)
    as measured on the training data; ``model.output_margin`` cropped per side; the
    card from the run's ``metrics`` and ``provenance`` plus ``notes``."""
    labels = config.labels
    classes = [
        ModelClass(value, labels.classes[value], labels.colors.get(value, ""))
        for value in config.class_values
    ]
    contract = build_contract(
        classes,
        config.data.band_names,
        config.export,
        config.normalization,
        output_margin=config.model.output_margin,
        standardization=(mean, std),
        provenance=provenance,
    )
    card = trained_model_card(contract, config, metrics or {}, provenance or {}, notes)
    return with_card(contract, card)
