# SPDX-License-Identifier: GPL-2.0-or-later
"""Any QGIS raster layer as the core's image source
(:class:`~qgis_landcover.core.inference.image_source.ImageSource`).

Layers GDAL can read (GeoTIFF, VRT mosaics, COGs, ...) are read by the core's
:class:`~qgis_landcover.core.inference.gdal_source.GdalImageSource`, with GDAL windows.
Other layers (WMS / XYZ imagery, ...) are read through their QGIS data provider's block
API at the model's resolution (:class:`ProviderImageSource`): the provider renders or
resamples each window itself. Providers belong to the thread that made them, so their
reads stay on the calling thread. :func:`image_source` picks one of the two.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from qgis.core import (
    Qgis,
    QgsProcessingFeedback,
    QgsRasterBlockFeedback,
    QgsRasterDataProvider,
    QgsRasterLayer,
    QgsRectangle,
)

from ..core.errors import InputError
from ..core.inference.band_mapping import BandInfo
from ..core.inference.gdal_source import GdalImageSource
from ..core.inference.image_source import Extent, ImageSource, validity
from ..core.inference.model_grid import ModelGrid, metres_per_unit
from ..core.raster.grid import Bounds, Grid, Window
from .raster_inputs import RasterInput


def image_source(raster: RasterInput, feedback: QgsProcessingFeedback | None) -> ImageSource:
    """The image source of a raster parameter's value: GDAL's for files GDAL reads
    (and layers of the ``gdal`` provider), else the layer's data provider.

    Raises:
        InputError: the file cannot be opened (call it inside ``core_errors()``).
    """
    if raster.layer is None or raster.provider == "gdal":
        return GdalImageSource(raster.source)
    return ProviderImageSource(raster.layer, feedback)


ARGB_TYPES = (Qgis.DataType.ARGB32, Qgis.DataType.ARGB32_Premultiplied)
NUMPY_TYPES = {
    Qgis.DataType.Byte: np.uint8,
    Qgis.DataType.UInt16: np.uint16,
    Qgis.DataType.Int16: np.int16,
    Qgis.DataType.UInt32: np.uint32,
    Qgis.DataType.Int32: np.int32,
    Qgis.DataType.Float32: np.float32,
    Qgis.DataType.Float64: np.float64,
}
RGBA_BANDS = [
    BandInfo(1, "", "red"),
    BandInfo(2, "", "green"),
    BandInfo(3, "", "blue"),
    BandInfo(4, "", "alpha"),
]
"""How an ARGB32 provider (WMS / XYZ imagery) is presented: four 8-bit bands."""


def is_argb(provider: QgsRasterDataProvider) -> bool:
    """True for providers that deliver rendered RGBA images (WMS, XYZ tiles)."""
    return provider.bandCount() == 1 and provider.dataType(1) in ARGB_TYPES


def describe_provider_bands(provider: QgsRasterDataProvider) -> list[BandInfo]:
    """The layer's bands for band mapping (ARGB images become red, green, blue, alpha)."""
    if is_argb(provider):
        return RGBA_BANDS
    return [
        BandInfo(n, "", (provider.colorInterpretationName(n) or "undefined").lower())
        for n in range(1, provider.bandCount() + 1)
    ]


def provider_grid(layer: QgsRasterLayer, resolution_m: float, bounds: Bounds | None) -> Grid:
    """The layer's pixel grid; for providers without one (WMS / XYZ) a grid over the
    layer's extent at the model's resolution, which the provider renders to."""
    extent = layer.extent()
    crs_wkt = layer.crs().toWkt()
    provider = layer.dataProvider()
    if provider.capabilities() & QgsRasterDataProvider.Capability.Size and provider.xSize() > 0:
        return Grid(
            crs_wkt,
            (
                extent.xMinimum(),
                extent.width() / provider.xSize(),
                0.0,
                extent.yMaximum(),
                0.0,
                -extent.height() / provider.ySize(),
            ),
            provider.xSize(),
            provider.ySize(),
        )
    if bounds is None:
        raise InputError(
            f"{layer.name()} is an online layer without a size of its own "
            f"({layer.providerType()}): choose the extent to classify."
        )
    centre = ((bounds[0] + bounds[2]) / 2, (bounds[1] + bounds[3]) / 2)
    scale = metres_per_unit(crs_wkt, centre) or (1.0, 1.0)
    rx, ry = resolution_m / scale[0], resolution_m / scale[1]
    # Pixel edges on multiples of the pixel size, like resampled GDAL layers.
    col0, col1 = math.floor(extent.xMinimum() / rx), math.ceil(extent.xMaximum() / rx)
    row0, row1 = math.floor(extent.yMinimum() / ry), math.ceil(extent.yMaximum() / ry)
    return Grid(crs_wkt, (col0 * rx, rx, 0.0, row1 * ry, 0.0, -ry), col1 - col0, row1 - row0)


class ProviderReader:
    """:class:`~qgis_landcover.core.inference.image_source.ImageReader` over a QGIS raster
    data provider: each window is requested with ``QgsRasterDataProvider.block`` at the
    grid's resolution (the provider resamples or renders). Use it from one thread."""

    def __init__(
        self,
        provider: QgsRasterDataProvider,
        grid: Grid,
        bands: list[int],
        feedback: QgsProcessingFeedback | None = None,
    ) -> None:
        self.provider = provider
        self._grid = grid
        self.bands = bands
        # Provider requests take a raster-block feedback: cancel it with the algorithm.
        self.block_feedback = QgsRasterBlockFeedback()
        if feedback is not None:
            feedback.canceled.connect(self.block_feedback.cancel)
        self.argb = is_argb(provider)
        # Alpha bands mask pixels (0: transparent) whichever band they are.
        self.alpha_bands = (
            []
            if self.argb
            else [
                n
                for n in range(1, provider.bandCount() + 1)
                if (provider.colorInterpretationName(n) or "").lower() == "alpha"
            ]
        )
        types = {NUMPY_TYPES.get(provider.dataType(b)) for b in bands}
        self.data_type = (
            "uint8"
            if self.argb
            else ",".join(sorted(np.dtype(t).name for t in types if t is not None)) or None
        )

    @property
    def grid(self) -> Grid:
        return self._grid

    def _block(self, band: int, window: Window) -> tuple[np.ndarray, float | None]:
        x0, dx, _, y0, _, dy = self._grid.geotransform
        extent = QgsRectangle(
            x0 + window.col_off * dx,
            y0 + (window.row_off + window.height) * dy,
            x0 + (window.col_off + window.width) * dx,
            y0 + window.row_off * dy,
        )
        block = self.provider.block(band, extent, window.width, window.height, self.block_feedback)
        if block is None or not block.isValid() or block.isEmpty():
            raise InputError(
                f"The layer's data provider returned no data for {extent.toString()} "
                f"(band {band}); check the connection or the layer."
            )
        dtype = np.uint32 if self.argb else NUMPY_TYPES.get(block.dataType())
        if dtype is None:
            raise InputError(f"Unsupported pixel type {block.dataType()} in band {band}.")
        array = np.frombuffer(bytes(block.data()), dtype=dtype).reshape(window.shape)
        return array, block.noDataValue() if block.hasNoDataValue() else None

    def read(self, window: Window) -> tuple[np.ndarray, np.ndarray]:
        if self.argb:
            pixels, _ = self._block(1, window)
            # 0xAARRGGBB words: little-endian bytes are B, G, R, A.
            bgra = pixels.view(np.uint8).reshape(*window.shape, 4)
            rgba = bgra[..., [2, 1, 0, 3]].transpose(2, 0, 1).astype(np.float32)
            if self.provider.dataType(1) == Qgis.DataType.ARGB32_Premultiplied:
                alpha = rgba[3]
                scale = np.where(alpha > 0, 255.0 / np.maximum(alpha, 1.0), 0.0)
                rgba[:3] *= scale
            raw = rgba[[b - 1 for b in self.bands]]
            return raw, validity(raw, [None] * len(self.bands)) & (rgba[3] > 0)
        arrays, nodata = zip(*(self._block(b, window) for b in self.bands), strict=True)
        raw = np.stack(arrays).astype(np.float32)
        valid = validity(raw, list(nodata))
        for band in self.alpha_bands:
            valid &= self._block(band, window)[0] > 0
        return raw, valid


class ProviderImageSource:
    """:class:`~qgis_landcover.core.inference.image_source.ImageSource` over a QGIS raster
    layer's data provider (any provider, e.g. WMS / XYZ imagery).

    Args:
        layer: the layer; its provider is cloned (the layer's own belongs to the main
            thread) and set to resample bilinear (zooming in) and by average (out)
            where the provider can.
        feedback: cancels the provider's block requests with the algorithm.
    """

    thread_safe = False
    """Read on the calling thread: a data provider is not thread-safe."""

    def __init__(self, layer: QgsRasterLayer, feedback: QgsProcessingFeedback | None = None):
        self.layer = layer
        self.feedback = feedback
        self.provider = layer.dataProvider().clone()
        if (
            self.provider.providerCapabilities()
            & QgsRasterDataProvider.ProviderCapability.ProviderHintCanPerformProviderResampling
        ):
            self.provider.enableProviderResampling(True)
            self.provider.setZoomedInResamplingMethod(
                QgsRasterDataProvider.ResamplingMethod.Bilinear
            )
            self.provider.setZoomedOutResamplingMethod(
                QgsRasterDataProvider.ResamplingMethod.Average
            )

    @property
    def data_source(self) -> str:
        return str(self.layer.source())

    def bands(self) -> list[BandInfo]:
        return describe_provider_bands(self.provider)

    def grid(self, resolution_m: float, extent: Extent | None) -> Grid:
        """The layer's pixel grid, or for providers without one (WMS / XYZ) a grid over
        the layer's extent at ``resolution_m``, which the provider renders to."""
        bounds = extent.bounds_in(self.layer.crs().toWkt()) if extent is not None else None
        return provider_grid(self.layer, resolution_m, bounds)

    def reader(self, layout: ModelGrid, bands: Sequence[int]) -> ProviderReader:
        """Blocks of ``layout.read_grid``, requested at its resolution (the provider
        resamples whatever ``layout.resampled`` says)."""
        return ProviderReader(self.provider, layout.read_grid, list(bands), self.feedback)
