# SPDX-License-Identifier: GPL-2.0-or-later
"""Blending the overlapping tile outputs of a :class:`~.tile_plan.TilePlan`.

Scores of overlapping tiles are blended with smooth weights (raised-cosine ramps over
each overlap that sum to 1 across it), so there are no seams. Blending is done in the
plan's column stripes, row of tiles by row of tiles (:class:`StripeBlender`), so memory
depends on the stripe and tile sizes only, never on the window's size; the stripes
share the global plan, so the result does not depend on the stripe width.

All offsets are in pixels of the model grid, relative to the window's top-left pixel.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .tile_plan import Stripe, TilePlan


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


def tile_weights(plan: TilePlan, col: int, row: int) -> np.ndarray:
    """Blending weights of tile (col, row), float32 of shape (output_size, output_size)."""
    return np.outer(_weights_1d(plan, plan.ys, row), _weights_1d(plan, plan.xs, col)).astype(
        np.float32
    )


def _weights_1d(plan: TilePlan, offsets: tuple[int, ...], index: int) -> np.ndarray:
    size = plan.output_size
    # The actual overlap with each neighbour (the last tile, aligned to the end, may
    # overlap more than the others).
    before = offsets[index - 1] + size - offsets[index] if index > 0 else 0
    after = offsets[index] + size - offsets[index + 1] if index + 1 < len(offsets) else 0
    return blend_weights_1d(size, max(before, 0), max(after, 0))


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
        weights = tile_weights(plan, col, row)[:rows]
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
