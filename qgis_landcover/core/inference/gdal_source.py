# SPDX-License-Identifier: GPL-2.0-or-later
"""Imagery GDAL reads (GeoTIFF, VRT mosaic, COG, ...) as an
:class:`~.image_source.ImageSource`.

The raster is read read-only through windows: the file itself when its pixels already
have the model's size, else a bilinear warped VRT of it on the model grid (nothing is
resampled ahead of time). Besides nodata values, alpha bands (whichever band they are)
and GDAL mask bands (``.msk`` files, internal masks) mark pixels without data.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
from osgeo import gdal, gdal_array

from ..errors import InputError
from ..raster.grid import Grid, Window
from ..raster.reading import band_nodata, open_raster, raster_grid, read_window, warp_to_grid
from .band_mapping import BandInfo
from .image_source import Extent, validity
from .model_grid import ModelGrid

gdal.UseExceptions()


class GdalImageSource:
    """An :class:`~.image_source.ImageSource` over a raster GDAL reads.

    Args:
        source: a path or GDAL connection string (opened read-only), or an open
            dataset; never modified.
    """

    thread_safe = True
    """GDAL datasets may be read from any one thread at a time: the pipeline reads
    ahead in a thread of its own."""

    def __init__(self, source: str | os.PathLike[str] | gdal.Dataset) -> None:
        self.dataset = source if isinstance(source, gdal.Dataset) else open_raster(source)

    @property
    def data_source(self) -> str:
        return str(self.dataset.GetDescription())

    def bands(self) -> list[BandInfo]:
        return describe_gdal_bands(self.dataset)

    def grid(self, resolution_m: float, extent: Extent | None) -> Grid:
        """The raster's own pixel grid (whatever the resolution and extent)."""
        return raster_grid(self.dataset)

    def reader(self, layout: ModelGrid, bands: Sequence[int]) -> GdalReader:
        """A reader of the raster itself, or of a bilinear warped VRT of it on
        ``layout.read_grid`` when it is resampled."""
        if not layout.resampled:
            return GdalReader(self.dataset, bands)
        warped = warp_to_grid(self.dataset, layout.read_grid, "bilinear")
        return GdalReader(warped, bands, [self.dataset])


class GdalReader:
    """:class:`~.image_source.ImageReader` over a GDAL dataset (the layer itself or a
    warped VRT of it).

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


def describe_gdal_bands(dataset: gdal.Dataset) -> list[BandInfo]:
    """The bands of a GDAL dataset, for :func:`~.band_mapping.map_bands`."""
    infos = []
    for number in range(1, dataset.RasterCount + 1):
        band = dataset.GetRasterBand(number)
        color = gdal.GetColorInterpretationName(band.GetColorInterpretation()) or "undefined"
        infos.append(BandInfo(number, band.GetDescription() or "", color.lower()))
    return infos
