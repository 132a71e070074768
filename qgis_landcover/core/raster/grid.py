# SPDX-License-Identifier: GPL-2.0-or-later
"""Pixel grids and windows: the geometry shared by every windowed read and write.

A :class:`Grid` is a north-up raster grid (CRS, affine geotransform, size in pixels);
a :class:`Window` is a rectangle of pixels on it, like rasterio's windows.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

from ..errors import InputError

Bounds = tuple[float, float, float, float]
"""(xmin, ymin, xmax, ymax) in CRS units."""

GeoTransform = tuple[float, float, float, float, float, float]
"""GDAL geotransform: (x origin, pixel width, row rotation, y origin, col rotation, -height)."""


@dataclass(frozen=True)
class Window:
    """A rectangle of pixels: offsets and size in pixels (columns, rows)."""

    col_off: int
    row_off: int
    width: int
    height: int

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, cols), the shape of a single-band array read through this window."""
        return (self.height, self.width)

    @property
    def size(self) -> int:
        """Number of pixels."""
        return self.width * self.height


@dataclass(frozen=True)
class Grid:
    """A north-up raster grid.

    Attributes:
        crs_wkt: coordinate reference system as WKT ('' when unknown).
        geotransform: GDAL geotransform; rotation terms must be 0.
        width: columns.
        height: rows.
    """

    crs_wkt: str
    geotransform: GeoTransform
    width: int
    height: int

    def __post_init__(self) -> None:
        if self.geotransform[2] != 0 or self.geotransform[4] != 0:
            raise InputError("Rotated rasters are not supported; warp the raster north-up first.")
        if self.width <= 0 or self.height <= 0:
            raise InputError(f"Empty raster grid ({self.width} x {self.height} pixels).")

    @property
    def resolution(self) -> tuple[float, float]:
        """Pixel size (x, y) in CRS units, both positive."""
        return (abs(self.geotransform[1]), abs(self.geotransform[5]))

    @property
    def bounds(self) -> Bounds:
        """(xmin, ymin, xmax, ymax) of the grid's outer pixel edges."""
        x0, dx, _, y0, _, dy = self.geotransform
        xs = (x0, x0 + dx * self.width)
        ys = (y0, y0 + dy * self.height)
        return (min(xs), min(ys), max(xs), max(ys))

    @property
    def full_window(self) -> Window:
        return Window(0, 0, self.width, self.height)

    def window_grid(self, window: Window) -> Grid:
        """The grid of the pixels inside ``window`` (same CRS and pixel size)."""
        x0, dx, rx, y0, ry, dy = self.geotransform
        origin_x = x0 + window.col_off * dx
        origin_y = y0 + window.row_off * dy
        return Grid(self.crs_wkt, (origin_x, dx, rx, origin_y, ry, dy), window.width, window.height)

    def window_for_bounds(self, bounds: Bounds, *, clip: bool = True) -> Window:
        """Smallest window whose pixels cover ``bounds`` (snapped outward to pixel edges).

        With ``clip`` the window is clipped to the grid; an empty result raises
        :class:`InputError`.
        """
        x0, dx, _, y0, _, dy = self.geotransform
        xmin, ymin, xmax, ymax = bounds
        # A small tolerance keeps bounds that sit on pixel edges (up to float noise)
        # from growing by a whole pixel.
        eps = 1e-6
        cols = sorted(((xmin - x0) / dx, (xmax - x0) / dx))
        rows = sorted(((ymax - y0) / dy, (ymin - y0) / dy))
        col_start = math.floor(cols[0] + eps)
        col_stop = math.ceil(cols[1] - eps)
        row_start = math.floor(rows[0] + eps)
        row_stop = math.ceil(rows[1] - eps)
        if clip:
            col_start, row_start = max(col_start, 0), max(row_start, 0)
            col_stop, row_stop = min(col_stop, self.width), min(row_stop, self.height)
        if col_stop <= col_start or row_stop <= row_start:
            raise InputError(
                f"The extent {format_bounds(bounds)} does not overlap the raster "
                f"({format_bounds(self.bounds)})."
            )
        return Window(col_start, row_start, col_stop - col_start, row_stop - row_start)


def iter_windows(width: int, height: int, block_width: int, block_height: int) -> Iterator[Window]:
    """Windows of at most ``block_width`` x ``block_height`` pixels covering a
    ``width`` x ``height`` raster, row by row (the last row / column may be smaller)."""
    if block_width <= 0 or block_height <= 0:
        raise ValueError("block size must be positive")
    for row in range(0, height, block_height):
        for col in range(0, width, block_width):
            yield Window(col, row, min(block_width, width - col), min(block_height, height - row))


def intersect_bounds(a: Bounds, b: Bounds) -> Bounds | None:
    """Intersection of two bounds in the same CRS, or ``None`` when they do not overlap."""
    xmin, ymin = max(a[0], b[0]), max(a[1], b[1])
    xmax, ymax = min(a[2], b[2]), min(a[3], b[3])
    if xmax <= xmin or ymax <= ymin:
        return None
    return (xmin, ymin, xmax, ymax)


def format_bounds(bounds: Bounds) -> str:
    """Bounds as text for messages: ``xmin,xmax,ymin,ymax`` (QGIS's extent order)."""
    xmin, ymin, xmax, ymax = bounds
    return f"{xmin:.10g},{xmax:.10g},{ymin:.10g},{ymax:.10g}"
