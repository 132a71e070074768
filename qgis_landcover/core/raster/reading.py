# SPDX-License-Identifier: GPL-2.0-or-later
"""Windowed raster reading with GDAL (``osgeo.gdal``), rasterio-style: opening,
grids, windows, and lazy warping onto another grid.

Everything reads through windows, so memory depends on the window size and never on
the raster's. Errors from GDAL are turned into :class:`InputError` with a message that
names the file. Writing is in :mod:`.writing`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from osgeo import gdal, osr

from ..errors import InputError
from .grid import Bounds, Grid, Window

gdal.UseExceptions()
osr.UseExceptions()

RESAMPLING = {
    "near": gdal.GRA_NearestNeighbour,
    "bilinear": gdal.GRA_Bilinear,
    "cubic": gdal.GRA_Cubic,
    "average": gdal.GRA_Average,
    "mode": gdal.GRA_Mode,
}


def open_raster(path: str | os.PathLike[str]) -> gdal.Dataset:
    """Open a raster read-only, or raise :class:`InputError` saying why not."""
    path_text = os.fspath(path)
    if not path_text:
        raise InputError("No raster given.")
    # GDAL connection strings (GPKG:file:table, NETCDF:"file":var, /vsi..., URLs) are
    # not plain paths: let GDAL judge them.
    is_connection = re.match(r"^[A-Za-z][A-Za-z0-9_]+:", path_text) is not None  # not "C:"
    is_local = "://" not in path_text and not path_text.startswith("/vsi") and not is_connection
    if is_local and not Path(path_text).exists():
        raise InputError(f"Raster not found: {path_text}")
    try:
        dataset = gdal.OpenEx(path_text, gdal.OF_RASTER | gdal.OF_READONLY)
    except RuntimeError as error:
        raise InputError(f"Cannot open raster {path_text}: {error}") from error
    if dataset is None or dataset.RasterCount == 0:
        raise InputError(f"Not a raster (or no bands): {path_text}")
    return dataset


def raster_grid(dataset: gdal.Dataset) -> Grid:
    """The pixel grid of ``dataset``."""
    return Grid(
        crs_wkt=dataset.GetProjection() or "",
        geotransform=tuple(dataset.GetGeoTransform()),  # type: ignore[arg-type]
        width=dataset.RasterXSize,
        height=dataset.RasterYSize,
    )


def band_nodata(dataset: gdal.Dataset, band: int) -> float | None:
    """The nodata value of band ``band`` (1-based), or ``None``."""
    check_band(dataset, band)
    return dataset.GetRasterBand(band).GetNoDataValue()


def check_band(dataset: gdal.Dataset, band: int) -> None:
    """Raise :class:`InputError` unless ``band`` (1-based) exists in ``dataset``."""
    if not 1 <= band <= dataset.RasterCount:
        raise InputError(
            f"Band {band} does not exist in {dataset.GetDescription()} "
            f"(it has {dataset.RasterCount} band{'s' if dataset.RasterCount != 1 else ''})."
        )


def read_window(
    dataset: gdal.Dataset, window: Window, bands: Sequence[int] | int | None = None
) -> np.ndarray:
    """Read ``window`` of ``dataset``.

    Args:
        bands: 1-based band numbers; a single ``int`` returns a 2-D array; ``None``
            reads every band.

    Returns:
        Array of shape (bands, rows, cols), or (rows, cols) for a single ``int`` band,
        in the raster's own data type.
    """
    try:
        if isinstance(bands, int):
            check_band(dataset, bands)
            return dataset.GetRasterBand(bands).ReadAsArray(
                window.col_off, window.row_off, window.width, window.height
            )
        band_list = list(bands) if bands is not None else list(range(1, dataset.RasterCount + 1))
        for band in band_list:
            check_band(dataset, band)
        array = dataset.ReadAsArray(
            window.col_off, window.row_off, window.width, window.height, band_list=band_list
        )
    except RuntimeError as error:
        raise InputError(f"Cannot read {dataset.GetDescription()}: {error}") from error
    if array.ndim == 2:
        array = array[np.newaxis]
    return array


def same_crs(a_wkt: str, b_wkt: str) -> bool:
    """True when both WKT strings describe the same CRS (or both are empty)."""
    if a_wkt == b_wkt:
        return True
    if not a_wkt or not b_wkt:
        return False
    a, b = osr.SpatialReference(), osr.SpatialReference()
    a.ImportFromWkt(a_wkt)
    b.ImportFromWkt(b_wkt)
    return bool(a.IsSame(b))


DENSIFY_POINTS = 21
"""Points added along each edge when reprojecting bounds (curved edges in the target)."""


def transform_bounds(bounds: Bounds, source_wkt: str, target_wkt: str) -> Bounds:
    """``bounds`` (xmin, ymin, xmax, ymax in ``source_wkt``) as the smallest box holding
    them in ``target_wkt``; unchanged when both CRSs are the same or either is unknown.

    Raises:
        InputError: the CRSs cannot be transformed into each other.
    """
    if not source_wkt or not target_wkt or same_crs(source_wkt, target_wkt):
        return bounds
    source, target = osr.SpatialReference(), osr.SpatialReference()
    source.ImportFromWkt(source_wkt)
    target.ImportFromWkt(target_wkt)
    for srs in (source, target):
        srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    try:
        transform = osr.CoordinateTransformation(source, target)
        xmin, ymin, xmax, ymax = transform.TransformBounds(*bounds, DENSIFY_POINTS)
    except RuntimeError as error:
        raise InputError(
            f"Cannot transform the extent {bounds} to the other CRS: {error}"
        ) from error
    return (xmin, ymin, xmax, ymax)


def same_grid(a: Grid, b: Grid, *, tolerance: float = 1e-6) -> bool:
    """True when ``a`` and ``b`` have the same CRS, size, pixel size and alignment
    (to ``tolerance`` of a pixel)."""
    if (a.width, a.height) != (b.width, b.height) or not same_crs(a.crs_wkt, b.crs_wkt):
        return False
    dx, dy = a.resolution
    return all(
        abs(p - q) <= tolerance * scale
        for p, q, scale in zip(
            a.geotransform, b.geotransform, (dx, dx, dx, dy, dy, dy), strict=True
        )
    )


def warp_to_grid(
    dataset: gdal.Dataset,
    grid: Grid,
    resampling: str = "near",
    *,
    source_nodata: float | None = None,
) -> gdal.Dataset:
    """A lazy warped VRT of ``dataset`` on ``grid``: pixels are computed on read,
    block by block, so nothing is loaded whole.

    Args:
        resampling: one of ``near`` (labels), ``bilinear`` (imagery), ``cubic``,
            ``average``, ``mode``.
        source_nodata: nodata of the source when the file does not declare one.
    """
    if resampling not in RESAMPLING:
        raise InputError(f"Unknown resampling {resampling!r}; use one of {sorted(RESAMPLING)}.")
    if not dataset.GetProjection() or not grid.crs_wkt:
        raise InputError(
            f"{dataset.GetDescription()} or the target grid has no CRS; cannot reproject."
        )
    xmin, ymin, xmax, ymax = grid.bounds
    options = gdal.WarpOptions(
        format="VRT",
        outputBounds=(xmin, ymin, xmax, ymax),
        width=grid.width,
        height=grid.height,
        dstSRS=grid.crs_wkt,
        resampleAlg=RESAMPLING[resampling],
        srcNodata=source_nodata,
        multithread=True,
    )
    try:
        # An anonymous in-memory VRT: it lives exactly as long as the returned object.
        warped = gdal.Warp("", dataset, options=options)
    except RuntimeError as error:
        raise InputError(f"Cannot reproject {dataset.GetDescription()}: {error}") from error
    if warped is None:
        raise InputError(f"Cannot reproject {dataset.GetDescription()}.")
    # The VRT reads through the source's GDAL handle: keep the source alive with it,
    # or a caller that drops its own reference would make GDAL read a closed dataset.
    warped._landcover_source = dataset
    return warped
