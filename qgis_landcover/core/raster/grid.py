# SPDX-License-Identifier: GPL-2.0-or-later
"""Pixel grids and windows: the geometry shared by every windowed read and write.

A :class:`Grid` is a north-up raster grid (CRS, affine geotransform, size in pixels);
a :class:`Window` is a rectangle of pixels on it, like rasterio's windows. Windows
cover a raster in blocks (:func:`iter_windows`) or in large windows whose edges fall on
the raster's own blocks, so GDAL decodes each block once (:func:`aligned_windows`).
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


TARGET_PIXELS = 1 << 20
"""Pixels per window (about a million): large enough to amortise per-window overheads,
small enough that temporaries stay in the tens of megabytes and that windows of one
value throughout (nodata margins) are common enough to skip (see ``ConfusionMatrix``)."""


def _span(offset: int, length: int, block: int, step: int) -> Iterator[tuple[int, int]]:
    """(start, size) pieces of ``[offset, offset + length)`` that end on multiples of
    ``block`` and span ``step`` pixels (a multiple of ``block``), except the first and
    last pieces, which may be shorter."""
    stop = offset + length
    start = offset
    while start < stop:
        # The first piece may be short so that the following ones start on a block edge.
        end = min(stop, (start // block) * block + step)
        yield start, end - start
        start = end


def aligned_windows(
    window: Window, block_size: tuple[int, int], target_pixels: int = TARGET_PIXELS
) -> list[Window]:
    """Cover ``window`` with windows of about ``target_pixels`` whose edges fall on the
    raster's block grid (``block_size`` = (block width, block height) in pixels).

    Full-width strips when a strip of one block row is small enough, else tiles of
    whole blocks. Row-major order.
    """
    block_width, block_height = max(1, block_size[0]), max(1, block_size[1])
    if window.width * block_height <= target_pixels:
        rows = max(block_height, (target_pixels // window.width) // block_height * block_height)
        columns = [(window.col_off, window.width)]
    else:
        rows = block_height
        cols = max(block_width, (target_pixels // block_height) // block_width * block_width)
        columns = list(_span(window.col_off, window.width, block_width, cols))
    return [
        Window(col, row, width, height)
        for row, height in _span(window.row_off, window.height, block_height, rows)
        for col, width in columns
    ]


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
