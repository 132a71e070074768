# SPDX-License-Identifier: GPL-2.0-or-later
"""Readers that deliver model-ready pixels on the model grid, with their validity.

The classify pipeline reads through the :class:`ImageReader` protocol: GDAL-readable
layers through :class:`GdalReader` (the file itself, or a warped VRT of it on the
model grid), other QGIS layers (WMS / XYZ) through an adapter in the algorithm layer.
A pixel is valid unless it is nodata in any model band, transparent (0 in an alpha
band, whichever band that is) or masked (0 in a GDAL mask band of a model band or of
the dataset), not finite, or 0 in every model band.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np
from osgeo import gdal, gdal_array

from ..errors import InputError
from ..raster.grid import Grid, Window
from ..raster.reading import band_nodata, raster_grid, read_window
from .band_mapping import BandInfo
from .tile_plan import reflect_pad

gdal.UseExceptions()


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


class GdalReader:
    """:class:`ImageReader` over a GDAL dataset (the layer itself or a warped VRT).

    Args:
        dataset: the raster on the model grid.
        bands: 1-based bands feeding the model, in the model's order.
        sources: datasets ``dataset`` reads from (a warped VRT's source), whose cached
            blocks :meth:`release` drops too.
    """

    def __init__(
        self,
        dataset: gdal.Dataset,
        bands: Sequence[int],
        sources: Sequence[gdal.Dataset] = (),
    ) -> None:
        self.dataset = dataset
        self.sources = list(sources)
        self.bands = list(bands)
        self._grid = raster_grid(dataset)
        self.nodata = [band_nodata(dataset, b) for b in self.bands]
        self.masks = mask_bands(dataset, self.bands)
        types = {
            np.dtype(gdal_array.GDALTypeCodeToNumericTypeCode(dataset.GetRasterBand(b).DataType))
            for b in self.bands
        }
        self.data_type = ",".join(sorted(t.name for t in types))

    @property
    def grid(self) -> Grid:
        return self._grid

    def release(self) -> None:
        """Drop the blocks GDAL cached for these datasets, so the cache does not fill
        up with rows already classified (reads stay correct; they decode again)."""
        for dataset in (self.dataset, *self.sources):
            dataset.FlushCache()

    def read(self, window: Window) -> tuple[np.ndarray, np.ndarray]:
        raw = read_window(self.dataset, window, self.bands).astype(np.float32, copy=False)
        valid = validity(raw, self.nodata)
        for mask_band in self.masks:
            try:
                mask = mask_band.ReadAsArray(
                    window.col_off, window.row_off, window.width, window.height
                )
            except RuntimeError as error:
                raise InputError(f"Cannot read the layer's mask: {error}") from error
            valid &= mask > 0
        return raw, valid


def mask_bands(dataset: gdal.Dataset, bands: Sequence[int]) -> list[gdal.Band]:
    """The bands whose 0 marks pixels without data for the model bands ``bands``:
    every alpha band of the dataset (GDAL itself reports an alpha band as the mask only
    when it is band 2 of 2 or band 4 of 4, so RGB + NIR + alpha would be classified
    where transparent), the dataset's mask (a ``.msk`` file or internal mask) and the
    model bands' own masks. Nodata values are not among them: they are compared
    directly, which is cheaper than reading GDAL's nodata mask."""
    masks: list[gdal.Band] = []
    for number in range(1, dataset.RasterCount + 1):
        band = dataset.GetRasterBand(number)
        if band.GetColorInterpretation() == gdal.GCI_AlphaBand:
            masks.append(band)
    has_alpha = bool(masks)
    per_dataset = False
    for number in bands:
        band = dataset.GetRasterBand(number)
        flags = band.GetMaskFlags()
        if flags & (gdal.GMF_ALL_VALID | gdal.GMF_NODATA):
            continue
        if flags & gdal.GMF_ALPHA and has_alpha:
            continue  # the alpha band, already taken
        if flags & gdal.GMF_PER_DATASET:
            if per_dataset:
                continue
            per_dataset = True
        masks.append(band.GetMaskBand())
    return masks


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


def describe_gdal_bands(dataset: gdal.Dataset) -> list[BandInfo]:
    """The bands of a GDAL dataset, for :func:`~.band_mapping.map_bands`."""
    infos = []
    for number in range(1, dataset.RasterCount + 1):
        band = dataset.GetRasterBand(number)
        color = gdal.GetColorInterpretationName(band.GetColorInterpretation()) or "undefined"
        infos.append(BandInfo(number, band.GetDescription() or "", color.lower()))
    return infos
