# SPDX-License-Identifier: GPL-2.0-or-later
"""What classify reads: an :class:`ImageSource`, and the :class:`ImageReader` it gives.

One classify road serves every kind of imagery: an image source says which bands it
offers, on which grid it is read for an extent, and gives a reader of chosen bands on
the grid the model runs on. :func:`~.classify.classify` does the rest (band mapping,
grid planning, the input check, the pipeline) once for any source. Sources:

- :class:`~.gdal_source.GdalImageSource`: rasters GDAL reads (GeoTIFF, VRT mosaic,
  COG, ...), resampled through a warped VRT; its readers may be used from any thread;
- ``qgis_landcover.qgis_glue.image_source.ProviderImageSource``: any QGIS raster layer
  (WMS / XYZ imagery, ...) through its data provider, which renders or resamples each
  window itself; its readers stay on the calling thread.

A reader returns the raw values of the model's bands in the model's order and the
validity of each pixel. A pixel is valid unless it is nodata in any model band,
transparent (0 in an alpha band), masked (0 in a mask band), not finite, or 0 in every
model band.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from osgeo import osr

from ..raster.grid import Bounds, Grid, Window
from ..raster.reading import transform_bounds
from .band_mapping import BandInfo
from .model_grid import ModelGrid
from .tile_plan import reflect_pad

osr.UseExceptions()


@dataclass(frozen=True)
class Extent:
    """An area to classify: bounds in a CRS.

    Attributes:
        bounds: (xmin, ymin, xmax, ymax) in the units of ``crs_wkt``.
        crs_wkt: the CRS of ``bounds`` as WKT; ``''`` for the source's own CRS.
    """

    bounds: Bounds
    crs_wkt: str = ""

    def bounds_in(self, crs_wkt: str) -> Bounds:
        """The bounds in ``crs_wkt``: as they are when both CRSs are the same or either
        is unknown, else the smallest box holding the reprojected extent."""
        return transform_bounds(self.bounds, self.crs_wkt, crs_wkt)


class ImageReader(Protocol):
    """A source of the model's bands on the model grid.

    ``read`` is only called with windows inside ``grid``; it returns the raw values of
    the model's bands in the model's order, float32 (bands, rows, cols), and the
    validity of each pixel, bool (rows, cols).

    Readers may also have ``data_type`` (numpy name of the layer's data type, for the
    input check of :mod:`.model_input`) and ``release()`` (drop cached blocks).
    """

    @property
    def grid(self) -> Grid: ...

    def read(self, window: Window) -> tuple[np.ndarray, np.ndarray]: ...


class ImageSource(Protocol):
    """Imagery to classify (see the module's docstring for the sources there are)."""

    @property
    def data_source(self) -> str:
        """What it reads (a path, a GDAL connection string, a layer's URI): named in
        messages and checked so that no output overwrites it."""
        ...

    @property
    def thread_safe(self) -> bool:
        """True when its readers may be read from a thread other than the one that made
        them (the pipeline then reads ahead in a thread of its own)."""
        ...

    def bands(self) -> list[BandInfo]:
        """Its bands, for :func:`~.band_mapping.map_bands`."""
        ...

    def grid(self, resolution_m: float, extent: Extent | None) -> Grid:
        """The grid it is read on to classify ``extent`` (``None``: all of it) at the
        model's ``resolution_m`` (metres per pixel): its own pixel grid, or, for
        sources without one (online imagery), a grid over its area at that resolution.

        Raises:
            InputError: the source cannot be classified without an extent.
        """
        ...

    def reader(self, layout: ModelGrid, bands: Sequence[int]) -> ImageReader:
        """A reader of ``bands`` (1-based, in the model's order) on
        ``layout.read_grid``, resampled (bilinear) when ``layout.resampled``."""
        ...


def validity(raw: np.ndarray, nodata: Sequence[float | None]) -> np.ndarray:
    """Validity (rows, cols) of raw (bands, rows, cols) values: not 0 in every band,
    not any band's nodata value, finite."""
    valid = np.any(raw != 0, axis=0)
    for band, value in enumerate(nodata):
        if value is not None:
            valid &= raw[band] != np.float32(value)
    if raw.dtype.kind == "f":
        valid &= np.all(np.isfinite(raw), axis=0)
    return valid


def read_padded(reader: ImageReader, window: Window) -> tuple[np.ndarray, np.ndarray]:
    """Read ``window``, which may reach past ``reader.grid``: the part inside is read,
    the rest filled by reflection. Returns raw (bands, rows, cols) float32 and validity
    (rows, cols) bool."""
    grid = reader.grid
    col0, row0 = max(window.col_off, 0), max(window.row_off, 0)
    col1 = min(window.col_off + window.width, grid.width)
    row1 = min(window.row_off + window.height, grid.height)
    if col1 <= col0 or row1 <= row0:
        raise ValueError(f"window {window} lies outside the readable grid")
    raw, valid = reader.read(Window(col0, row0, col1 - col0, row1 - row0))
    before = (row0 - window.row_off, col0 - window.col_off)
    after = (window.row_off + window.height - row1, window.col_off + window.width - col1)
    return reflect_pad(raw, before, after), reflect_pad(valid, before, after)
