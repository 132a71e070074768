# SPDX-License-Identifier: GPL-2.0-or-later
"""The grid a model reads and writes on: the layer's CRS at the model's resolution.

When the layer's pixels already have the model's size (within 1 %), the layer's own
grid is used and the output lines up with the input pixel for pixel. Otherwise the
input is resampled (bilinear, through a warped VRT) onto a grid of the model's pixel
size whose origin is a multiple of that size ("target-aligned pixels"), so outputs of
neighbouring tiles classified in a batch line up too. Either way reads may reach
``context`` pixels beyond the requested extent (real data, where the layer has it) so
tiles on the extent's edge still see their surroundings.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from osgeo import osr

from ..errors import InputError
from ..progress import NullProgress, Progress
from ..raster.grid import Bounds, Grid, Window, format_bounds, intersect_bounds

osr.UseExceptions()

RESOLUTION_TOLERANCE = 0.01
"""Relative pixel-size difference below which the layer is read without resampling."""

_EPS = 1e-6


@dataclass(frozen=True)
class ModelGrid:
    """Where the classification happens.

    Attributes:
        read_grid: the grid the input is read on (model resolution, layer CRS): the
            output's pixels plus up to ``context`` pixels around them.
        window: the output's pixels inside ``read_grid``.
        resampled: True when the layer is resampled to the model's resolution.
    """

    read_grid: Grid
    window: Window
    resampled: bool

    @property
    def output_grid(self) -> Grid:
        """The grid of the classified raster."""
        return self.read_grid.window_grid(self.window)


MERCATOR_PROJECTIONS = frozenset(
    {
        "Mercator_1SP",
        "Mercator_2SP",
        "Mercator_Auxiliary_Sphere",
        "Popular_Visualisation_Pseudo_Mercator",
    }
)


def metres_per_unit(
    crs_wkt: str, point: tuple[float, float] = (0.0, 0.0)
) -> tuple[float, float] | None:
    """Ground metres per CRS unit along x and y at ``point`` (CRS coordinates), or
    ``None`` for an unknown CRS.

    - Geographic CRSs (degrees): the lengths of a degree of longitude and latitude at
      the point's latitude on the WGS 84 ellipsoid (pixels square on the ground are not
      square in degrees).
    - Mercator, including Web Mercator (XYZ / WMS imagery): the linear unit times
      cos(latitude), the projection's scale at that latitude (within 0.4 %).
    - Other projected CRSs: their linear unit (metre, US survey foot, ...).
    """
    if not crs_wkt:
        return None
    srs = osr.SpatialReference()
    try:
        srs.ImportFromWkt(crs_wkt)
    except RuntimeError:
        return None
    if srs.IsGeographic():
        return _degree_lengths(point[1])
    unit = srs.GetLinearUnits()
    if unit <= 0:
        return None
    if srs.GetAttrValue("PROJECTION") in MERCATOR_PROJECTIONS:
        scale = unit * math.cos(math.radians(_latitude(srs, point)))
        return (scale, scale)
    return (unit, unit)


def _degree_lengths(latitude: float) -> tuple[float, float]:
    """Metres per degree of longitude and of latitude at ``latitude`` (WGS 84)."""
    phi = math.radians(latitude)
    per_degree_lat = 111132.954 - 559.822 * math.cos(2 * phi) + 1.175 * math.cos(4 * phi)
    per_degree_lon = 111412.84 * math.cos(phi) - 93.5 * math.cos(3 * phi)
    return (max(per_degree_lon, 1e-6), per_degree_lat)


def _latitude(srs: osr.SpatialReference, point: tuple[float, float]) -> float:
    """Latitude in degrees of a projected ``point``."""
    geographic = srs.CloneGeogCS()
    geographic.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    projected = srs.Clone()
    projected.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    _, latitude, _ = osr.CoordinateTransformation(projected, geographic).TransformPoint(*point)
    return max(-89.0, min(89.0, latitude))


def plan_model_grid(
    source: Grid,
    resolution_m: float | None,
    bounds: Bounds | None = None,
    context: int = 0,
    progress: Progress | None = None,
) -> ModelGrid:
    """The grid to classify ``bounds`` (in ``source``'s CRS; ``None``: all of it) on.

    Args:
        source: the layer's grid.
        resolution_m: the model's pixel size in metres, or ``None`` to keep the layer's.
        context: pixels of real data to make readable around the output.

    Raises:
        InputError: the extent does not overlap the layer.
    """
    progress = progress or NullProgress()
    area = source.bounds if bounds is None else intersect_bounds(bounds, source.bounds)
    if area is None:
        raise InputError(
            f"The extent {format_bounds(bounds or source.bounds)} does not overlap the layer "
            f"({format_bounds(source.bounds)}); check the extent and its CRS."
        )
    target = _target_resolution(source, resolution_m, area, progress)
    if target is None:
        return ModelGrid(source, source.window_for_bounds(area), resampled=False)
    rx, ry = target
    # Output: the area snapped outward to multiples of the pixel size.
    out_cols = (math.floor(area[0] / rx + _EPS), math.ceil(area[2] / rx - _EPS))
    out_rows = (math.floor(area[1] / ry + _EPS), math.ceil(area[3] / ry - _EPS))
    # Readable: the output plus context, within the layer (snapped outward likewise).
    xmin, ymin, xmax, ymax = source.bounds
    read_cols = (
        max(out_cols[0] - context, math.floor(xmin / rx + _EPS)),
        min(out_cols[1] + context, math.ceil(xmax / rx - _EPS)),
    )
    read_rows = (
        max(out_rows[0] - context, math.floor(ymin / ry + _EPS)),
        min(out_rows[1] + context, math.ceil(ymax / ry - _EPS)),
    )
    read_grid = Grid(
        source.crs_wkt,
        (read_cols[0] * rx, rx, 0.0, read_rows[1] * ry, 0.0, -ry),
        read_cols[1] - read_cols[0],
        read_rows[1] - read_rows[0],
    )
    window = Window(
        out_cols[0] - read_cols[0],
        read_rows[1] - out_rows[1],
        out_cols[1] - out_cols[0],
        out_rows[1] - out_rows[0],
    )
    return ModelGrid(read_grid, window, resampled=True)


def _target_resolution(
    source: Grid, resolution_m: float | None, area: Bounds, progress: Progress
) -> tuple[float, float] | None:
    """The model's pixel size in CRS units, or ``None`` when the layer's grid will do."""
    if resolution_m is None:
        return None
    centre = ((area[0] + area[2]) / 2, (area[1] + area[3]) / 2)
    scale = metres_per_unit(source.crs_wkt, centre)
    if scale is None:
        progress.warning(
            "The layer has no (known) CRS: it is classified at its own resolution, not "
            f"the model's {resolution_m:g} m."
        )
        return None
    target = (resolution_m / scale[0], resolution_m / scale[1])
    native = source.resolution
    if all(abs(n - t) <= RESOLUTION_TOLERANCE * t for n, t in zip(native, target, strict=True)):
        return None
    native_m = (native[0] * scale[0], native[1] * scale[1])
    progress.info(
        f"The layer's pixels are {native_m[0]:.3g} x {native_m[1]:.3g} m; the model works at "
        f"{resolution_m:g} m, so the input is resampled (bilinear) to that resolution."
    )
    return target
