# SPDX-License-Identifier: GPL-2.0-or-later
"""Areas of classified pixels, right for the CRS, and the areas CSV.

- Projected CRS: every pixel has the same area on the map plane, ``|dx * dy|`` times
  the square of the CRS's linear unit in metres (the projection's own scale error is
  not corrected: an equal-area CRS gives true areas).
- Geographic CRS (degrees): all cells of a pixel row have the same area, that of the
  cell between latitudes phi1 < phi2 and ``dlambda`` radians of longitude on the CRS's
  ellipsoid (semi-major axis ``a``, eccentricity ``e``)::

      A = a^2 / 2 * dlambda * (q(phi2) - q(phi1))
      q(phi) = (1 - e^2) * (sin(phi) / (1 - e^2 sin^2(phi))
                            - 1 / (2 e) * ln((1 - e sin(phi)) / (1 + e sin(phi))))

  (Snyder 1987, *Map Projections: A Working Manual*, eq. 3-12: ``a^2 q / 2`` per radian
  of longitude is the area from the equator to ``phi``, the relation behind the
  authalic latitude; for a sphere ``q = 2 sin(phi)``).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from osgeo import osr

from ..errors import InputError
from ..files.atomic import atomic_output
from ..raster.grid import Grid

osr.UseExceptions()

CSV_FIELDS = ("scope", "value", "class", "pixels", "area_km2", "percent")


@dataclass(frozen=True)
class ClassArea:
    """One line of the areas CSV: one class in one chunk, or in the whole job.

    Attributes:
        scope: a chunk id, or ``total``.
        value: the class value; name: its name.
        pixels: classified pixels of the class.
        area_km2: their area in square kilometres.
        percent: share of the classified area of the scope, 0-100.
    """

    scope: str
    value: int
    name: str
    pixels: int
    area_km2: float
    percent: float


def authalic_q(phi: np.ndarray | float, e: float) -> np.ndarray:
    """Snyder's ``q(phi)`` (eq. 3-12) for latitudes ``phi`` in radians; ``2 sin(phi)``
    on a sphere (``e == 0``)."""
    sin = np.sin(np.asarray(phi, dtype=np.float64))
    if e < 1e-12:
        return 2.0 * sin
    e2 = e * e
    return (1.0 - e2) * (
        sin / (1.0 - e2 * sin * sin) - np.log((1.0 - e * sin) / (1.0 + e * sin)) / (2.0 * e)
    )


def _srs(crs_wkt: str) -> osr.SpatialReference:
    if not crs_wkt:
        raise InputError("The raster has no CRS: its areas cannot be computed.")
    srs = osr.SpatialReference()
    try:
        srs.ImportFromWkt(crs_wkt)
    except RuntimeError as error:
        raise InputError(f"Unreadable CRS, areas cannot be computed: {error}") from error
    return srs


def row_pixel_areas_m2(grid: Grid) -> np.ndarray:
    """Area of one pixel of each row of ``grid`` in square metres, float64 (height,).

    Raises:
        InputError: a grid without a (readable) CRS.
    """
    srs = _srs(grid.crs_wkt)
    dx, dy = grid.resolution
    if srs.IsGeographic():
        a = srs.GetSemiMajor()
        b = srs.GetSemiMinor()
        e = math.sqrt(max(0.0, 1.0 - (b * b) / (a * a)))
        radians = srs.GetAngularUnits()  # radians per CRS unit (degree: pi / 180)
        top = grid.bounds[3]
        edges = top - dy * np.arange(grid.height + 1, dtype=np.float64)
        phi = np.clip(edges * radians, -math.pi / 2, math.pi / 2)
        q = authalic_q(phi, e)
        return a * a / 2.0 * (dx * radians) * np.abs(q[:-1] - q[1:])
    unit = srs.GetLinearUnits() or 1.0
    return np.full(grid.height, dx * dy * unit * unit, dtype=np.float64)


def class_areas(
    classes: np.ndarray, grid: Grid, nodata: int | None = 0
) -> dict[int, tuple[int, float]]:
    """Pixels and square metres of each class value in ``classes`` (rows, cols) on
    ``grid`` (the array's own grid), without ``nodata``."""
    if classes.shape != (grid.height, grid.width):
        raise ValueError(f"classes {classes.shape} do not match the grid {grid.height, grid.width}")
    row_areas = row_pixel_areas_m2(grid)
    values = np.unique(classes)
    result: dict[int, tuple[int, float]] = {}
    for value in values.tolist():
        if nodata is not None and value == nodata:
            continue
        per_row = np.count_nonzero(classes == value, axis=1)
        result[int(value)] = (int(per_row.sum()), float(per_row @ row_areas))
    return result


def add_areas(
    total: dict[int, tuple[int, float]], part: Mapping[int, tuple[int, float]]
) -> dict[int, tuple[int, float]]:
    """``total`` with ``part``'s pixels and areas added, class by class (in place)."""
    for value, (pixels, area) in part.items():
        old_pixels, old_area = total.get(value, (0, 0.0))
        total[value] = (old_pixels + pixels, old_area + area)
    return total


def area_lines(
    scope: str, areas: Mapping[int, tuple[int, float]], names: Mapping[int, str]
) -> list[ClassArea]:
    """The CSV lines of one scope, by class value, with km² and % of the scope."""
    whole = sum(area for _, area in areas.values())
    return [
        ClassArea(
            scope=scope,
            value=value,
            name=names.get(value, str(value)),
            pixels=pixels,
            area_km2=area / 1e6,
            percent=100.0 * area / whole if whole > 0 else 0.0,
        )
        for value, (pixels, area) in sorted(areas.items())
    ]


def write_areas_csv(path: str | Path, lines: Sequence[ClassArea]) -> Path:
    """Write ``lines`` as CSV (:data:`CSV_FIELDS`; km² to 6 decimals, i.e. to the square
    metre) atomically."""
    target = Path(path)
    with atomic_output(target) as temporary, temporary.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(CSV_FIELDS)
        for line in lines:
            area, percent = f"{line.area_km2:.6f}", f"{line.percent:.4f}"
            writer.writerow([line.scope, line.value, line.name, line.pixels, area, percent])
    return target


def format_areas(lines: Sequence[ClassArea]) -> str:
    """Lines for the log: ``name: 12.345 km² (45.6 %)``."""
    return "\n".join(
        f"{line.name} ({line.value}): {line.area_km2:,.3f} km² ({line.percent:.1f} %)"
        for line in lines
    )
