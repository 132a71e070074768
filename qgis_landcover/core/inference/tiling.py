# SPDX-License-Identifier: GPL-2.0-or-later
"""Tile plans over a window and the blending of overlapping tile outputs.

A segmentation model sees ``tile_size`` x ``tile_size`` pixels and returns scores for
the centre ``output_size = tile_size - 2 * margin`` pixels of them (``margin`` is 0 for
models whose output has the input's size). The plan places *output* tiles over the
requested window with a fixed overlap; each tile's *input* window is its output
window grown by ``margin`` on every side, so every output pixel is predicted with
``margin`` pixels of context. Input pixels outside the raster are filled by reflection
(the caller pads), never by shrinking tiles.

Scores of overlapping tiles are blended with smooth weights (raised-cosine ramps over
each overlap that sum to 1 across it), so there are no seams. Blending is done in
column stripes of bounded width, row of tiles by row of tiles, so memory depends on
the stripe and tile sizes only, never on the window's size; the stripes share the
global plan, so the result does not depend on the stripe width.

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


def ramp(length: int) -> np.ndarray:
    """Raised-cosine ramp of ``length`` values rising from near 0 to near 1.

    ``ramp(n) + ramp(n)[::-1] == 1`` element-wise: two tiles crossfading over an
    overlap of ``n`` pixels have weights that sum to exactly 1 there. Every value is
    > 0, so a pixel seen by one tile only keeps that tile's scores after normalising.
    """
    i = np.arange(length, dtype=np.float64)
    return (np.sin(0.5 * np.pi * (i + 0.5) / length) ** 2).astype(np.float32)


def blend_weights_1d(size: int, overlap_before: int, overlap_after: int) -> np.ndarray:
    """1-D weights (float32, shape (size,)) of a tile: ramps up over the pixels shared
    with the previous tile, down over those shared with the next one, 1 elsewhere."""
    weights = np.ones(size, dtype=np.float32)
    if overlap_before > 0:
        weights[:overlap_before] *= ramp(overlap_before)
    if overlap_after > 0:
        weights[size - overlap_after :] *= ramp(overlap_after)[::-1]
    return weights


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

    def tile_weights(self, col: int, row: int) -> np.ndarray:
        """Blending weights of tile (col, row), float32 of shape (output_size, output_size)."""
        return np.outer(self._weights_1d(self.ys, row), self._weights_1d(self.xs, col)).astype(
            np.float32
        )

    def _weights_1d(self, offsets: tuple[int, ...], index: int) -> np.ndarray:
        size = self.output_size
        # The actual overlap with each neighbour (the last tile, aligned to the end,
        # may overlap more than the others).
        before = offsets[index - 1] + size - offsets[index] if index > 0 else 0
        after = offsets[index] + size - offsets[index + 1] if index + 1 < len(offsets) else 0
        return blend_weights_1d(size, max(before, 0), max(after, 0))

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


@dataclass
class FinishedRows:
    """Blended rows of one stripe, ready to write.

    Attributes:
        row_start: first window row.
        col_start: first window column (the stripe's core start).
        scores: blended scores, float32 (channels, rows, cols).
        covered: pixels some tile predicted, bool (rows, cols); False only where every
            covering tile was skipped (no valid input).
        valid: input validity of the pixels, bool (rows, cols).
    """

    row_start: int
    col_start: int
    scores: np.ndarray
    covered: np.ndarray
    valid: np.ndarray


class StripeBlender:
    """Accumulates weighted tile scores of one stripe, one row of tiles at a time.

    Memory: ``channels x output_size x span`` float32 plus two planes, whatever the
    window's height.
    """

    def __init__(self, plan: TilePlan, stripe: Stripe, channels: int) -> None:
        self.plan = plan
        self.stripe = stripe
        size = plan.output_size
        span = stripe.span_stop - stripe.span_start
        self.sums = np.zeros((channels, size, span), dtype=np.float32)
        self.weights = np.zeros((size, span), dtype=np.float32)
        self.valid = np.zeros((size, span), dtype=bool)
        self.row = 0  # the tile row the buffers start at

    def add(self, col: int, row: int, scores: np.ndarray | None, valid: np.ndarray) -> None:
        """Add tile (col, row): ``scores`` (channels, size, size) or ``None`` for a
        skipped tile, ``valid`` (size, size) the input validity of its output pixels."""
        if row != self.row:
            raise ValueError(f"tile row {row} added while blending row {self.row}")
        plan = self.plan
        size = plan.output_size
        x = plan.xs[col] - self.stripe.span_start
        # Tiles reaching below the window (window shorter than a tile) are cut here.
        rows = min(size, plan.height - plan.ys[row])
        self.valid[:rows, x : x + size] = valid[:rows]
        if scores is None:
            return
        weights = plan.tile_weights(col, row)[:rows]
        self.sums[:, :rows, x : x + size] += scores[:, :rows] * weights
        self.weights[:rows, x : x + size] += weights

    def finish_row(self) -> FinishedRows:
        """Close the current tile row: return the rows no later tile touches (blended,
        core columns only) and shift the buffers up to the next tile row."""
        start, stop = self.plan.rows_final_after(self.row)
        count = stop - start
        left = self.stripe.col_start - self.stripe.span_start
        right = left + self.stripe.width
        weights = self.weights[:count, left:right]
        covered = weights > 0
        scores = self.sums[:, :count, left:right] / np.where(covered, weights, 1.0)
        finished = FinishedRows(
            row_start=start,
            col_start=self.stripe.col_start,
            scores=scores,
            covered=covered,
            valid=self.valid[:count, left:right].copy(),
        )
        keep = self.plan.output_size - count
        for buffer in (self.sums, self.weights, self.valid):
            view = buffer if buffer.ndim == 2 else buffer.transpose(1, 0, 2)
            view[:keep] = view[count : count + keep]
            view[keep:] = 0
        self.row += 1
        return finished


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
