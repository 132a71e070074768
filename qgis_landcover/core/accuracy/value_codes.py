# SPDX-License-Identifier: GPL-2.0-or-later
"""Dense codes for the integer values of a raster, discovered block by block, and the
rule that turns raw values into classes (remap, nodata, ignore values).

Counting pixels by *code* rather than by class keeps the per-pixel work to one
combined index and one ``np.bincount``: remaps and ignore values are applied afterwards
to the small table of distinct values, never to the pixels.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np

from ..errors import InputError
from .remap import apply_remap

DEFAULT_IGNORE_VALUES = (0,)
"""Class values ignored on both sides unless the caller gives its own list (0 is no
data in most land-cover products); a raster's own nodata value is ignored in any case."""

MAX_DISTINCT_VALUES = 1024
"""More distinct values than this on one side means continuous data, not classes."""

_SLOTS_16 = 1 << 16


@dataclass(frozen=True)
class ClassRule:
    """How the raw values of one raster (or array) become classes.

    Attributes:
        remap: raw value -> class value; unlisted values keep their value.
        nodata: raw values that are ignored (compared before the remap).
        ignore: class values that are ignored (compared after the remap, so that a
            remap such as ``15:0`` can send a value to an ignored class).
    """

    remap: Mapping[int, int] = field(default_factory=dict)
    nodata: frozenset[int] = frozenset()
    ignore: frozenset[int] = frozenset()

    @classmethod
    def build(
        cls,
        remap: Mapping[int, int] | None = None,
        nodata: Iterable[int] = (),
        ignore: Iterable[int] = (),
    ) -> ClassRule:
        return cls(dict(remap or {}), frozenset(int(v) for v in nodata), frozenset(ignore))

    def classify(self, raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Classes of the raw values ``raw`` (1-D int64) and a mask of the ignored ones.

        Returns:
            (classes, ignored): int64 and bool arrays shaped like ``raw``.
        """
        classes = apply_remap(raw, self.remap)
        ignored = np.isin(raw, np.fromiter(self.nodata, np.int64, len(self.nodata)))
        ignored |= np.isin(classes, np.fromiter(self.ignore, np.int64, len(self.ignore)))
        return classes, ignored


class ValueEncoder:
    """Maps the integer pixel values of one raster to dense codes ``0 .. size-1``.

    An encoder made for ``uint8`` data starts with the codes 0-255 for the values 0-255,
    so uint8 blocks are their own codes (no per-pixel work). Other values get codes in
    order of discovery through a 65,536-slot lookup table (values in the int16 or uint16
    range) or ``np.unique`` (anything wider).

    ``values[code]`` is the raw value of each code.
    """

    def __init__(self, dtype: np.dtype | type) -> None:
        kind = np.dtype(dtype)
        if kind.kind not in "biu":
            raise InputError(
                f"Class values must be integers, not {kind.name}: choose an integer band "
                "or convert the raster to an integer type first."
            )
        self._values: list[int] = []
        self._codes: dict[int, int] = {}
        # slot (value as uint16 bits) -> code, valid where ``_seen``; ``_slot_signed`` says how
        # slots read back into values (int16 or uint16), fixed by the first block.
        self._lut = np.zeros(_SLOTS_16, dtype=np.uint16)
        self._seen = np.zeros(_SLOTS_16, dtype=bool)
        self._slot_signed: bool | None = None
        self.byte = kind in (np.dtype(np.uint8), np.dtype(np.bool_))
        if self.byte:
            self._slot_signed = False
            for value in range(256):
                self._add(value)

    @property
    def size(self) -> int:
        """Number of codes so far."""
        return len(self._values)

    @property
    def values(self) -> np.ndarray:
        """Raw value of each code, int64, shape (size,)."""
        return np.asarray(self._values, dtype=np.int64)

    def encode(self, block: np.ndarray) -> np.ndarray:
        """Codes of ``block`` (same shape): the block itself (uint8) for uint8 blocks of
        a byte encoder, else uint16."""
        block = np.asarray(block)
        if self.byte and block.dtype in (np.uint8, np.bool_):
            return block.view(np.uint8)
        if block.dtype.kind not in "biu":
            raise InputError(f"Class values must be integers, not {block.dtype.name}.")
        if block.size == 0:
            return np.zeros(block.shape, dtype=np.uint16)
        slots = self._slots(block)
        if slots is None:
            return self._encode_unique(block)
        counts = np.bincount(slots.ravel(), minlength=_SLOTS_16)
        for slot in np.flatnonzero((counts > 0) & ~self._seen):
            value = int(np.int16(np.uint16(slot))) if self._slot_signed else int(slot)
            self._lut[slot] = self._add(value)
            self._seen[slot] = True
        return self._lut[slots]

    def _slots(self, block: np.ndarray) -> np.ndarray | None:
        """``block`` as uint16 slots, or ``None`` when its values do not fit the table."""
        if block.dtype == np.uint16 and self._slot_signed in (None, False):
            self._slot_signed = False
            return block
        if block.dtype == np.int16 and self._slot_signed in (None, True):
            self._slot_signed = True
            return block.view(np.uint16)
        low, high = int(block.min()), int(block.max())
        if self._slot_signed is not True and low >= 0 and high < _SLOTS_16:
            self._slot_signed = False
            return block.astype(np.uint16)
        if self._slot_signed is not False and low >= -(1 << 15) and high < (1 << 15):
            self._slot_signed = True
            return block.astype(np.int16).view(np.uint16)
        return None

    def _encode_unique(self, block: np.ndarray) -> np.ndarray:
        uniques, inverse = np.unique(block, return_inverse=True)
        table = np.fromiter((self._add(int(v)) for v in uniques), np.uint16, len(uniques))
        return table[inverse].reshape(block.shape)

    def _add(self, value: int) -> int:
        code = self._codes.get(value)
        if code is not None:
            return code
        if len(self._values) >= MAX_DISTINCT_VALUES:
            raise InputError(
                f"More than {MAX_DISTINCT_VALUES} distinct values: this looks like continuous "
                "data, not class codes. Choose a classified (integer class) raster or band."
            )
        code = len(self._values)
        self._values.append(value)
        self._codes[value] = code
        if self._slot_signed is not None:
            low = -(1 << 15) if self._slot_signed else 0
            if low <= value < low + _SLOTS_16:
                self._lut[value & 0xFFFF] = code
                self._seen[value & 0xFFFF] = True
        return code
