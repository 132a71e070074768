# SPDX-License-Identifier: GPL-2.0-or-later
"""Areas of classified pixels, right for the CRS.

- projected CRS: every pixel has the same area, |dx * dy| times the square of the
  linear unit in metres;
- geographic CRS (degrees): a pixel row between latitudes phi1 and phi2 has cells of
  ``a^2 (1 - e^2) / 2 * dlambda * [q(phi2) - q(phi1)]`` square metres on the ellipsoid
  (the area between two parallels, the authalic-latitude formula), the same for all
  cells of the row.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..raster.grid import Grid


@dataclass(frozen=True)
class ClassArea:
    """One line of the areas CSV."""

    scope: str  # a chunk id or "total"
    value: int
    name: str
    pixels: int
    area_km2: float
    percent: float


def row_pixel_areas_m2(grid: Grid) -> np.ndarray:
    """Area of one pixel of each row of ``grid`` in square metres, float64 (height,).

    Raises:
        InputError: a grid without a CRS (areas would be meaningless).
    """
    raise NotImplementedError


def class_areas(classes: np.ndarray, grid: Grid, nodata: int = 0) -> dict[int, tuple[int, float]]:
    """Pixels and square metres of each class value in ``classes`` (rows, cols) on
    ``grid`` (the window's grid), without ``nodata``."""
    raise NotImplementedError
