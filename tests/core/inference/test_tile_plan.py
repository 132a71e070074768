# SPDX-License-Identifier: GPL-2.0-or-later
"""Tile plans: positions, overlap, stripes, input windows, edge padding."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from qgis_landcover.core.errors import InputError
from qgis_landcover.core.inference.tile_plan import (
    STRIPE_ALIGN,
    overlap_pixels,
    plan_tiles,
    reflect_pad,
    tile_positions,
)


@pytest.mark.parametrize(
    ("length", "size", "stride"),
    [(100, 32, 24), (32, 32, 24), (33, 32, 24), (1000, 256, 230), (5, 32, 24), (97, 10, 10)],
)
def test_tile_positions_cover_without_shrinking(length: int, size: int, stride: int) -> None:
    positions = tile_positions(length, size, stride)
    covered = np.zeros(max(length, size), dtype=int)
    for p in positions:
        covered[p : p + size] += 1
    assert covered[:length].min() >= 1
    assert positions[0] == 0
    assert positions[-1] == max(length - size, 0)  # last tile aligned to the end
    assert all(b - a <= stride for a, b in itertools.pairwise(positions))
    assert list(positions) == sorted(set(positions))


def test_overlap_is_a_percentage_of_the_output_tile() -> None:
    assert overlap_pixels(256, 10) == 26
    assert overlap_pixels(128, 25) == 32
    assert overlap_pixels(1, 50) == 0  # stride stays >= 1
    assert overlap_pixels(256, 50) == 128


@pytest.mark.parametrize("percent", [-1.0, 50.5, 99.0, 100.0])
def test_overlap_beyond_half_the_tile_is_refused(percent: float) -> None:
    # 99 % planned 16,641 tiles for a 256 px image with the 2018 model (output 128 px).
    with pytest.raises(InputError, match="0-50 percent"):
        overlap_pixels(128, percent)
    with pytest.raises(InputError, match="0-50 percent"):
        plan_tiles(256, 256, 256, 64, percent)


def test_half_overlap_plans_three_tiles_a_side_for_two_outputs() -> None:
    # Output 128 px, overlap 64 px, stride 64 over 256 px: offsets 0, 64, 128.
    plan = plan_tiles(256, 256, 256, 64, 50.0)
    assert plan.xs == plan.ys == (0, 64, 128)
    assert plan.tile_count == 9


def test_stripes_are_block_aligned_and_minimal() -> None:
    plan = plan_tiles(5000, 100, 256, 16, 12.5)
    stripes = plan.stripes(1000)
    assert [s.col_start for s in stripes] == list(range(0, 5000, 768))
    assert all(s.col_start % STRIPE_ALIGN == 0 for s in stripes)
    assert stripes[-1].col_stop == 5000
    size = plan.output_size
    for stripe in stripes:
        needed = [
            c for c, x in enumerate(plan.xs) if x < stripe.col_stop and x + size > stripe.col_start
        ]
        assert list(stripe.tile_cols) == needed
        assert stripe.span_start <= stripe.col_start and stripe.span_stop >= stripe.col_stop


def test_input_windows_add_the_margin_as_context() -> None:
    plan = plan_tiles(500, 500, 256, 64, 0.0)
    assert plan.output_size == 128
    window = plan.input_window(1, 2)
    assert (window.col_off, window.row_off) == (plan.xs[1] - 64, plan.ys[2] - 64)
    assert window.width == window.height == 256
    out = plan.output_window(1, 2)
    assert out.col_off - window.col_off == 64 and out.width == 128


def test_bad_plans_are_clear_errors() -> None:
    with pytest.raises(InputError, match="margin"):
        plan_tiles(100, 100, 128, 64, 10.0)
    with pytest.raises(InputError, match="Nothing to classify"):
        plan_tiles(0, 100, 128, 0, 10.0)


def test_reflect_pad_matches_numpy() -> None:
    array = np.arange(2 * 5 * 6, dtype=np.float32).reshape(2, 5, 6)
    got = reflect_pad(array, (2, 0), (1, 3))
    expected = np.pad(array, ((0, 0), (2, 1), (0, 3)), mode="reflect")
    np.testing.assert_array_equal(got, expected)
    assert reflect_pad(array, (0, 0), (0, 0)) is array
    one = np.array([[7.0]])
    np.testing.assert_array_equal(reflect_pad(one, (1, 1), (1, 1)), np.full((3, 3), 7.0))
