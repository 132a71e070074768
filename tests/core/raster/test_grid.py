# SPDX-License-Identifier: GPL-2.0-or-later
from __future__ import annotations

import numpy as np
import pytest

from qgis_landcover.core.errors import InputError
from qgis_landcover.core.raster.grid import (
    Grid,
    Window,
    aligned_windows,
    intersect_bounds,
    iter_windows,
)

GRID = Grid("", (1000.0, 2.0, 0.0, 5000.0, 0.0, -2.0), 100, 50)


def test_bounds_and_resolution() -> None:
    assert GRID.bounds == (1000.0, 4900.0, 1200.0, 5000.0)
    assert GRID.resolution == (2.0, 2.0)


def test_window_for_bounds_snaps_outward_and_clips() -> None:
    assert GRID.window_for_bounds((1001.0, 4991.0, 1005.0, 4999.0)) == Window(0, 0, 3, 5)
    assert GRID.window_for_bounds((1002.0, 4990.0, 1006.0, 5000.0)) == Window(1, 0, 2, 5)
    assert GRID.window_for_bounds((900.0, 4800.0, 1300.0, 5100.0)) == GRID.full_window
    with pytest.raises(InputError, match="does not overlap"):
        GRID.window_for_bounds((0.0, 0.0, 10.0, 10.0))


def test_window_grid_moves_the_origin() -> None:
    sub = GRID.window_grid(Window(10, 5, 20, 10))
    assert sub.geotransform == (1020.0, 2.0, 0.0, 4990.0, 0.0, -2.0)
    assert (sub.width, sub.height) == (20, 10)
    assert GRID.window_for_bounds(sub.bounds) == Window(10, 5, 20, 10)


def test_iter_windows_covers_every_pixel_once() -> None:
    windows = list(iter_windows(10, 7, 4, 3))
    covered = [
        (r, c)
        for w in windows
        for r in range(w.row_off, w.row_off + w.height)
        for c in range(w.col_off, w.col_off + w.width)
    ]
    assert len(covered) == len(set(covered)) == 70


def test_intersect_bounds() -> None:
    assert intersect_bounds((0, 0, 10, 10), (5, 5, 20, 20)) == (5, 5, 10, 10)
    assert intersect_bounds((0, 0, 10, 10), (10, 0, 20, 10)) is None


def test_rotated_grid_is_refused() -> None:
    with pytest.raises(InputError, match="Rotated"):
        Grid("", (0.0, 1.0, 0.5, 0.0, 0.0, -1.0), 10, 10)


def test_aligned_windows_cover_the_window_on_block_edges() -> None:
    window = Window(100, 70, 1000, 900)
    parts = aligned_windows(window, (256, 256), target_pixels=1000 * 512)
    covered = np.zeros((1200, 1200), dtype=int)
    for part in parts:
        covered[
            part.row_off : part.row_off + part.height, part.col_off : part.col_off + part.width
        ] += 1
    assert covered[70:970, 100:1100].min() == 1 and covered.sum() == 1000 * 900
    # Strips of 512 rows (two block rows) whose edges after the first fall on blocks.
    assert [(p.row_off, p.height) for p in parts] == [(70, 442), (512, 458)]
    assert all(p.col_off == 100 and p.width == 1000 for p in parts)
    # A very wide window is cut into tiles of whole blocks instead.
    wide = aligned_windows(Window(0, 0, 100_000, 600), (512, 512), target_pixels=1 << 20)
    assert all(p.width <= 2048 and p.col_off % 512 == 0 for p in wide)
    assert sum(p.width * p.height for p in wide) == 100_000 * 600
