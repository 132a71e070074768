# SPDX-License-Identifier: GPL-2.0-or-later
"""Which bands of a layer feed which input channel of the model.

The model names the bands it expects (metadata ``band_names``, e.g. red, green, blue,
nir). Unless the user lists the layer's bands explicitly, each model band is looked up
by the layer bands' descriptions and colour interpretations (GDAL's "Red", "Green",
"Blue"). Model bands not found that way take, in order, the layer's bands that do not
say what they are (alpha bands never feed a model) — so a NAIP GeoTIFF (Red, Green,
Blue, Undefined) maps to red, green, blue, nir, and a model asking for (nir, red) gets
bands 4 and 1. Only when too few such bands exist are named bands taken in order, with
a warning. Every band taken by position is reported.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import InputError
from ..progress import NullProgress, Progress

ALIASES: dict[str, frozenset[str]] = {
    "red": frozenset({"red", "r"}),
    "green": frozenset({"green", "g"}),
    "blue": frozenset({"blue", "b"}),
    "nir": frozenset({"nir", "nearinfrared", "infrared", "nearir", "ir", "nir1"}),
}
"""Spellings that mean the same band (compared after :func:`normalize_name`)."""


@dataclass(frozen=True)
class BandInfo:
    """What a layer says about one of its bands.

    Attributes:
        number: 1-based band number.
        description: the band's description / name ('' when none).
        color: colour interpretation in lower case ('red', 'alpha', 'undefined', ...).
    """

    number: int
    description: str = ""
    color: str = "undefined"

    @property
    def label(self) -> str:
        """How messages name the band, e.g. ``band 4 (nir)``."""
        name = self.description or (self.color if self.color not in ("undefined", "") else "")
        return f"band {self.number} ({name})" if name else f"band {self.number}"


def normalize_name(name: str) -> str:
    """Lower case, letters and digits only: ``'Near-Infrared'`` -> ``'nearinfrared'``."""
    return re.sub(r"[^0-9a-z]", "", name.lower())


def canonical_name(name: str) -> str:
    """The alias group a band name belongs to (``'Near infrared'`` -> ``'nir'``), or the
    normalised name itself."""
    normalized = normalize_name(name)
    for canonical, spellings in ALIASES.items():
        if normalized in spellings:
            return canonical
    return normalized


def identity(band: BandInfo) -> str | None:
    """The known band (an :data:`ALIASES` key) a layer band is, by its description or
    else its colour interpretation; ``None`` when it says nothing known."""
    for text in (band.description, band.color):
        name = canonical_name(text) if text else ""
        if name in ALIASES:
            return name
    return None


def _matches(model_band: str, band: BandInfo) -> bool:
    wanted = canonical_name(model_band)
    return any(text and canonical_name(text) == wanted for text in (band.description, band.color))


def map_bands(
    model_bands: Sequence[str],
    layer_bands: Sequence[BandInfo],
    requested: Sequence[int] | None = None,
    progress: Progress | None = None,
) -> list[int]:
    """The 1-based layer band feeding each model band, in the model's order.

    Args:
        model_bands: the model's ``band_names``.
        layer_bands: the layer's bands.
        requested: the user's explicit choice (1-based), one per model band, or
            ``None`` / empty to match by name.

    Raises:
        InputError: too few bands, an explicit list of the wrong length, a band number
            the layer does not have.
    """
    progress = progress or NullProgress()
    wanted = ", ".join(model_bands)
    layer_text = ", ".join(b.label for b in layer_bands) or "none"
    if requested:
        numbers = [int(n) for n in requested]
        if len(numbers) != len(model_bands):
            raise InputError(
                f"The model needs {len(model_bands)} bands ({wanted}) but {len(numbers)} "
                f"were chosen ({', '.join(map(str, numbers))})."
            )
        missing = [n for n in numbers if not 1 <= n <= len(layer_bands)]
        if missing:
            raise InputError(
                f"Band {missing[0]} does not exist: the layer has {len(layer_bands)} "
                f"band(s) ({layer_text})."
            )
        return numbers
    candidates = [b for b in layer_bands if b.color != "alpha"]
    if len(candidates) < len(model_bands):
        raise InputError(
            f"The model needs {len(model_bands)} bands ({wanted}) but the layer has "
            f"{len(candidates)} usable band(s) ({layer_text})."
        )
    chosen: dict[int, int] = {}  # model band index -> layer band number
    for index, model_band in enumerate(model_bands):
        match = next(
            (
                b.number
                for b in candidates
                if b.number not in chosen.values() and _matches(model_band, b)
            ),
            None,
        )
        if match is not None:
            chosen[index] = match
    unmatched = [i for i in range(len(model_bands)) if i not in chosen]
    unused = [b for b in candidates if b.number not in chosen.values()]
    # Bands the layer does not identify (no known name) stand in for unmatched model
    # bands; only when too few exist are identified bands taken too, with a warning.
    anonymous = [b for b in unused if identity(b) is None]
    pool = anonymous if len(anonymous) >= len(unmatched) else unused
    by_position = []
    for index, band in zip(unmatched, pool, strict=False):
        chosen[index] = band.number
        by_position.append(f"{model_bands[index]} <- {band.label}")
    if by_position:
        text = ", ".join(by_position)
        if pool is anonymous:
            progress.info(f"Bands without a matching name were taken in order: {text}.")
        else:
            progress.warning(
                f"The layer's band names do not match the model's ({wanted}); bands were "
                f"taken in order: {text}. Choose the bands explicitly if this is wrong."
            )
    mapping = [chosen[i] for i in range(len(model_bands))]
    return mapping
