# SPDX-License-Identifier: GPL-2.0-or-later
"""Blending overlapping tiles: weights that sum to 1, stripes equal one canvas, no seams."""

from __future__ import annotations

import math

import numpy as np
import pytest

from qgis_landcover.core.inference.blending import (
    StripeBlender,
    blend_weights_1d,
    ramp,
    tile_weights,
)
from qgis_landcover.core.inference.tile_plan import TilePlan, plan_tiles


@pytest.mark.parametrize("length", [1, 2, 7, 26, 64])
def test_ramp_crossfade_sums_to_one(length: int) -> None:
    up = ramp(length)
    assert np.all(up > 0) and np.all(up < 1)
    np.testing.assert_allclose(up + up[::-1], 1.0, atol=1e-6)
    assert np.all(np.diff(up) > 0)


def test_blend_weights_1d_ramps_only_where_neighbours_overlap() -> None:
    w = blend_weights_1d(10, 0, 3)
    np.testing.assert_array_equal(w[:7], 1.0)
    np.testing.assert_allclose(w[7:], ramp(3)[::-1])
    w = blend_weights_1d(10, 4, 0)
    np.testing.assert_allclose(w[:4], ramp(4))
    np.testing.assert_array_equal(w[4:], 1.0)


def brute_force_blend(plan: TilePlan, tile_scores: dict[tuple[int, int], np.ndarray]) -> np.ndarray:
    """Reference: the weighted mean of all tiles over one full-size canvas."""
    size = plan.output_size
    channels = next(iter(tile_scores.values())).shape[0]
    height = max(plan.height, plan.ys[-1] + size)
    width = max(plan.width, plan.xs[-1] + size)
    sums = np.zeros((channels, height, width), dtype=np.float64)
    weights = np.zeros((height, width), dtype=np.float64)
    for (col, row), scores in tile_scores.items():
        y, x = plan.ys[row], plan.xs[col]
        w = tile_weights(plan, col, row).astype(np.float64)
        sums[:, y : y + size, x : x + size] += scores * w
        weights[y : y + size, x : x + size] += w
    return (sums / weights)[:, : plan.height, : plan.width]


def stripe_blend(
    plan: TilePlan, tile_scores: dict[tuple[int, int], np.ndarray], stripe_width: int
) -> tuple[np.ndarray, np.ndarray]:
    channels = next(iter(tile_scores.values())).shape[0]
    out = np.full((channels, plan.height, plan.width), np.nan, dtype=np.float32)
    covered = np.zeros((plan.height, plan.width), dtype=bool)
    size = plan.output_size
    for stripe in plan.stripes(stripe_width):
        blender = StripeBlender(plan, stripe, channels)
        for row in range(len(plan.ys)):
            for col in stripe.tile_cols:
                blender.add(col, row, tile_scores[(col, row)], np.ones((size, size), bool))
            rows = blender.finish_row()
            r0, c0 = rows.row_start, rows.col_start
            n, m = rows.scores.shape[1:]
            assert np.all(np.isnan(out[:, r0 : r0 + n, c0 : c0 + m])), "pixel written twice"
            out[:, r0 : r0 + n, c0 : c0 + m] = rows.scores
            covered[r0 : r0 + n, c0 : c0 + m] = rows.covered
    return out, covered


@pytest.mark.parametrize(
    ("width", "height", "tile", "margin", "overlap", "stripe_width"),
    [
        (700, 530, 64, 0, 25.0, 256),
        (700, 530, 64, 8, 10.0, 512),
        (300, 40, 64, 4, 30.0, 256),  # window lower than a tile
        (20, 20, 64, 0, 10.0, 256),  # window smaller than a tile
        (1100, 90, 100, 10, 0.0, 256),  # no overlap
    ],
)
def test_stripes_blend_exactly_like_one_canvas(
    width: int, height: int, tile: int, margin: int, overlap: float, stripe_width: int
) -> None:
    plan = plan_tiles(width, height, tile, margin, overlap)
    rng = np.random.default_rng(7)
    size = plan.output_size
    tile_scores = {
        (c, r): rng.normal(size=(3, size, size)).astype(np.float32)
        for r in range(len(plan.ys))
        for c in range(len(plan.xs))
    }
    expected = brute_force_blend(plan, tile_scores)
    for width_limit in (stripe_width, 10**6):
        got, covered = stripe_blend(plan, tile_scores, width_limit)
        assert covered.all()
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_identical_tiles_blend_to_themselves() -> None:
    # Every tile predicts the same field: blending must return it unchanged.
    plan = plan_tiles(300, 200, 48, 0, 40.0)
    field = np.random.default_rng(1).normal(size=(2, 200, 300)).astype(np.float32)
    size = plan.output_size
    padded = np.pad(field, ((0, 0), (0, size), (0, size)))
    tiles = {
        (c, r): padded[:, y : y + size, x : x + size]
        for r, y in enumerate(plan.ys)
        for c, x in enumerate(plan.xs)
    }
    got, _ = stripe_blend(plan, tiles, 256)
    np.testing.assert_allclose(got, field, rtol=1e-5, atol=1e-6)


def test_blend_has_no_seams() -> None:
    # Two tiles predicting 0 and 1: across their overlap the blend rises smoothly,
    # never by more than the raised cosine's steepest step, pi / (2 * overlap).
    plan = plan_tiles(100, 10, 64, 0, 40.0)
    assert plan.xs == (0, 36) and plan.ys == (0,)
    overlap = plan.xs[0] + plan.output_size - plan.xs[1]
    tiles = {(0, 0): np.zeros((1, 64, 64), np.float32), (1, 0): np.ones((1, 64, 64), np.float32)}
    got, _ = stripe_blend(plan, tiles, 256)
    profile = got[0, 0]
    steps = np.diff(profile)
    assert np.all(steps >= -1e-7)
    assert steps.max() <= math.pi / (2 * overlap) + 1e-6
    assert profile[0] == 0 and profile[-1] == 1


def test_skipped_tiles_leave_pixels_uncovered() -> None:
    plan = plan_tiles(128, 64, 64, 0, 0.0)
    (stripe,) = plan.stripes()
    blender = StripeBlender(plan, stripe, 2)
    blender.add(0, 0, None, np.zeros((64, 64), bool))
    blender.add(1, 0, np.ones((2, 64, 64), np.float32), np.ones((64, 64), bool))
    rows = blender.finish_row()
    assert not rows.covered[:, :64].any() and rows.covered[:, 64:].all()
    assert not rows.valid[:, :64].any() and rows.valid[:, 64:].all()


def test_blender_memory_does_not_depend_on_height() -> None:
    small = plan_tiles(1000, 300, 256, 0, 10.0)
    tall = plan_tiles(1000, 300_000, 256, 0, 10.0)
    a = StripeBlender(small, small.stripes()[0], 5)
    b = StripeBlender(tall, tall.stripes()[0], 5)
    assert a.sums.nbytes == b.sums.nbytes == 5 * 256 * 1000 * 4
