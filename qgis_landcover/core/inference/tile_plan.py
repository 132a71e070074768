# SPDX-License-Identifier: GPL-2.0-or-later
"""Tile plans: where the model's tiles go over a window.

A segmentation model sees ``tile_size`` x ``tile_size`` pixels and returns scores for
the centre ``output_size = tile_size - 2 * margin`` pixels of them (``margin`` is 0 for
models whose output has the input's size). The plan places *output* tiles over the
requested window with a fixed overlap; each tile's *input* window is its output
window grown by ``margin`` on every side, so every output pixel is predicted with
``margin`` pixels of context. Input pixels outside the raster are filled by reflection
(the caller pads, :func:`reflect_pad`), never by shrinking tiles.

The plan is cut into column stripes of bounded width (:meth:`TilePlan.stripes`), in
which the overlapping tile outputs are blended (:mod:`.blending`), so memory depends
on the stripe and tile sizes only, never on the window's size.

All offsets are in pixels of the model grid, relative to the window's top-left pixel.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from ..raster.grid import Window

STRIPE_ALIGN = 256
"""Stripe boundaries are multiples of this, the output GeoTIFF's block size, so no
output block is written by two stripes."""

DEFAULT_STRIPE_WIDTH = 4096
"""Default maximum stripe width (output pixels): bounds the blending buffers."""


def tile_positions(length: int, size: int, stride: int) -> tuple[int, ...]:
    """Offsets of tiles of ``size`` pixels covering ``length`` pixels, ``stride`` apart.

    The last tile is aligned to the end (it may overlap its neighbour more) so that no
    tile is shrunk; a ``length`` shorter than ``size`` gets one tile at 0 that reaches
    past the end (the caller reads real context or pads there).
    """
    if length <= 0 or size <= 0 or stride <= 0:
        raise ValueError("length, size and stride must be positive")
    if length <= size:
        return (0,)
    positions = list(range(0, length - size, stride))
    positions.append(length - size)
    return tuple(positions)


MAX_OVERLAP_PERCENT = 50.0
"""Largest tile overlap, percent of the output tile's side. At 50 % every pixel is
already predicted by four tiles; beyond, the tile count grows as 1 / (1 - overlap)²
(99 % plans 16,641 tiles for a 256 px image) for no gain in blending."""


def overlap_pixels(output_size: int, overlap_percent: float) -> int:
    """Overlap in pixels between neighbouring output tiles for a percentage of the
    output tile's side (Deepness's ``tiles_overlap`` unit), at most ``output_size - 1``."""
    if not 0 <= overlap_percent <= MAX_OVERLAP_PERCENT:
        raise InputError(
            f"Tile overlap must be 0-{MAX_OVERLAP_PERCENT:g} percent of the tile, got "
            f"{overlap_percent:g}: larger overlaps multiply the tiles to run without "
            "improving the blending."
        )
    return min(round(output_size * overlap_percent / 100.0), output_size - 1)


@dataclass(frozen=True)
class Stripe:
    """A column stripe of the plan.

    Attributes:
        col_start, col_stop: window columns this stripe finalises (its core).
        first_tile_col, last_tile_col: the tile columns (inclusive) whose output
            touches the core; tiles on a boundary belong to both neighbouring stripes.
        span_start, span_stop: window columns covered by those tiles' outputs.
    """

    col_start: int
    col_stop: int
    first_tile_col: int
    last_tile_col: int
    span_start: int
    span_stop: int

    @property
    def tile_cols(self) -> range:
        return range(self.first_tile_col, self.last_tile_col + 1)

    @property
    def width(self) -> int:
        """Core width in pixels."""
        return self.col_stop - self.col_start


@dataclass(frozen=True)
class TilePlan:
    """Where the model's tiles go over a ``width`` x ``height`` window.

    Attributes:
        width, height: the window to classify, pixels.
        tile_size: model input side, pixels.
        margin: pixels the model crops from each side of its input.
        overlap: pixels shared by neighbouring output tiles.
        xs, ys: output-tile offsets (columns, rows) relative to the window.
    """

    width: int
    height: int
    tile_size: int
    margin: int
    overlap: int
    xs: tuple[int, ...]
    ys: tuple[int, ...]

    @property
    def output_size(self) -> int:
        """Side of a tile's output in pixels."""
        return self.tile_size - 2 * self.margin

    @property
    def stride(self) -> int:
        return self.output_size - self.overlap

    @property
    def tile_count(self) -> int:
        return len(self.xs) * len(self.ys)

    def output_window(self, col: int, row: int) -> Window:
        """The window (relative to the classified window) that tile (col, row) predicts."""
        return Window(self.xs[col], self.ys[row], self.output_size, self.output_size)

    def input_window(self, col: int, row: int) -> Window:
        """The window the model reads for tile (col, row); offsets may be negative and
        the window may reach past the classified window (context)."""
        return Window(
            self.xs[col] - self.margin, self.ys[row] - self.margin, self.tile_size, self.tile_size
        )

    def rows_final_after(self, row: int) -> tuple[int, int]:
        """Window rows ``[start, stop)`` that no later tile row touches once tile row
        ``row`` is done (rows are finalised top to bottom)."""
        stop = self.ys[row + 1] if row + 1 < len(self.ys) else self.height
        return self.ys[row], stop

    def stripes(self, max_width: int = DEFAULT_STRIPE_WIDTH) -> list[Stripe]:
        """Column stripes of at most ``max_width`` core pixels (boundaries at multiples
        of :data:`STRIPE_ALIGN`), each with the tile columns it needs."""
        step = max(STRIPE_ALIGN, (max_width // STRIPE_ALIGN) * STRIPE_ALIGN)
        stripes = []
        for start in range(0, self.width, step):
            stop = min(start + step, self.width)
            columns = [
                c for c, x in enumerate(self.xs) if x < stop and x + self.output_size > start
            ]
            stripes.append(
                Stripe(
                    col_start=start,
                    col_stop=stop,
                    first_tile_col=columns[0],
                    last_tile_col=columns[-1],
                    span_start=self.xs[columns[0]],
                    span_stop=self.xs[columns[-1]] + self.output_size,
                )
            )
        return stripes


def plan_tiles(
    width: int, height: int, tile_size: int, margin: int = 0, overlap_percent: float = 10.0
) -> TilePlan:
    """Plan tiles over a ``width`` x ``height`` window (pixels).

    Args:
        tile_size: model input side in pixels.
        margin: pixels the model crops from each side (output side = tile - 2 margin).
        overlap_percent: overlap between neighbouring output tiles, percent of the
            output side (Deepness's ``tiles_overlap``).
    """
    if width <= 0 or height <= 0:
        raise InputError(f"Nothing to classify: the window is {width} x {height} pixels.")
    if tile_size <= 0:
        raise InputError(f"Tile size must be positive, got {tile_size}.")
    output_size = tile_size - 2 * margin
    if margin < 0 or output_size <= 0:
        raise InputError(
            f"A tile of {tile_size} pixels leaves no output after the model's margin of "
            f"{margin} pixels per side; use a tile size above {2 * margin}."
        )
    overlap = overlap_pixels(output_size, overlap_percent)
    stride = output_size - overlap
    return TilePlan(
        width=width,
        height=height,
        tile_size=tile_size,
        margin=margin,
        overlap=overlap,
        xs=tile_positions(width, output_size, stride),
        ys=tile_positions(height, output_size, stride),
    )


def reflect_pad(array: np.ndarray, before: tuple[int, int], after: tuple[int, int]) -> np.ndarray:
    """Pad the last two axes of ``array`` by reflection (``before`` / ``after`` are
    (rows, cols) counts); used for tiles that reach past the raster's edge."""
    if not any(before) and not any(after):
        return array
    pad = [(0, 0)] * (array.ndim - 2) + [(before[0], after[0]), (before[1], after[1])]
    if min(array.shape[-2:]) < 2:
        # Reflection needs two pixels; a one-pixel-wide raster repeats its edge.
        return np.pad(array, pad, mode="edge")
    return np.pad(array, pad, mode="reflect")
