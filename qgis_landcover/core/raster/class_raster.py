# SPDX-License-Identifier: GPL-2.0-or-later
"""One integer band of a class raster (classification or reference labels): choosing
the band, its nodata value, its category names and colours, and its area units."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np
from osgeo import gdal, osr

from ..errors import InputError
from .grid import Grid, Window
from .packed_tiff import PackedTiffBand
from .reading import open_raster, raster_grid, read_window

INTEGER_TYPES = {
    gdal.GDT_Byte,
    gdal.GDT_UInt16,
    gdal.GDT_Int16,
    gdal.GDT_UInt32,
    gdal.GDT_Int32,
}


@dataclass
class ClassBand:
    """An integer band of an open raster.

    Attributes:
        path: the file, as given.
        dataset: the open GDAL dataset.
        band: 1-based band number.
        role: how messages name it, e.g. ``"classified raster"``.
        packed: the fast reader of 1, 2 or 4-bit GeoTIFF bands, when it applies.
    """

    path: str
    dataset: gdal.Dataset
    band: int
    role: str
    packed: PackedTiffBand | None = None

    @property
    def grid(self) -> Grid:
        return raster_grid(self.dataset)

    @property
    def gdal_band(self) -> gdal.Band:
        return self.dataset.GetRasterBand(self.band)

    @property
    def block_size(self) -> tuple[int, int]:
        """(width, height) of the band's natural blocks in pixels."""
        width, height = self.gdal_band.GetBlockSize()
        return int(width), int(height)

    def nodata_values(self) -> set[int]:
        """The band's nodata value as an integer class value (empty when it has none or
        when it is not a whole number)."""
        nodata = self.gdal_band.GetNoDataValue()
        if nodata is None or not math.isfinite(nodata) or not float(nodata).is_integer():
            return set()
        return {int(nodata)}

    def read(self, window: Window) -> np.ndarray:
        """The band's pixels in ``window``, shape (rows, cols), in the band's data type.

        Meant for streaming: the blocks read are dropped from GDAL's block cache, which
        would otherwise grow to ``GDAL_CACHEMAX`` with blocks that are never read again.
        The array may be read-only (a uniform window of a packed band is a broadcast
        constant, see :meth:`PackedTiffBand.read`).
        """
        if self.packed is not None:
            return self.packed.read(window)
        array = read_window(self.dataset, window, self.band)
        self.gdal_band.FlushCache()
        return array

    def category_names(self) -> dict[int, str]:
        """Value -> name from the band's category names (or raster attribute table)."""
        band = self.gdal_band
        # GDAL (3.6) reads a GeoTIFF's .aux.xml, where the names are, only when asked for
        # something else first: the nodata value loads it.
        band.GetNoDataValue()
        names = band.GetCategoryNames() or []
        result = {value: name.strip() for value, name in enumerate(names) if name and name.strip()}
        if result:
            return result
        table = band.GetDefaultRAT()
        if table is None or table.GetRowCount() == 0:
            return {}
        value_column = name_column = None
        for column in range(table.GetColumnCount()):
            usage = table.GetUsageOfCol(column)
            if usage in (gdal.GFU_MinMax, gdal.GFU_Min) and value_column is None:
                value_column = column
            elif usage == gdal.GFU_Name and name_column is None:
                name_column = column
        if name_column is None:
            return {}
        for row in range(table.GetRowCount()):
            value = table.GetValueAsInt(row, value_column) if value_column is not None else row
            name = table.GetValueAsString(row, name_column).strip()
            if name:
                result[int(value)] = name
        return result

    def category_colors(self) -> dict[int, str]:
        """Value -> ``'#rrggbb'`` from the band's colour table (empty without one)."""
        table = self.gdal_band.GetColorTable()
        if table is None:
            return {}
        colors = {}
        for value in range(table.GetCount()):
            red, green, blue, *_ = table.GetColorEntry(value)
            colors[value] = f"#{red:02x}{green:02x}{blue:02x}"
        return colors

    def describe(self) -> str:
        """``path (band N)`` for reports."""
        return f"{self.path} (band {self.band})"


def open_class_band(path: str | os.PathLike[str], band: int | None, role: str) -> ClassBand:
    """Open ``path`` and pick its class band.

    Args:
        band: 1-based band; ``None`` or 0 picks band 1 of a single-band raster.
        role: how messages name the raster, e.g. ``"classified raster"``.

    Raises:
        InputError: missing or unreadable file; a multi-band raster without a band
            chosen; a band that does not exist; a floating-point band.
    """
    dataset = open_raster(path)
    count = dataset.RasterCount
    if not band:
        if count != 1:
            raise InputError(
                f"The {role} {os.fspath(path)} has {count} bands: choose the band that holds "
                "the class values."
            )
        band = 1
    if not 1 <= band <= count:
        raise InputError(
            f"The {role} {os.fspath(path)} has no band {band} "
            f"(it has {count} band{'s' if count != 1 else ''})."
        )
    data_type = dataset.GetRasterBand(band).DataType
    if data_type not in INTEGER_TYPES:
        raise InputError(
            f"Band {band} of the {role} {os.fspath(path)} holds "
            f"{gdal.GetDataTypeName(data_type)} values; class values must be integers. "
            "Choose an integer band, or convert the raster to an integer type first."
        )
    packed = PackedTiffBand.open(os.fspath(path), dataset, band)
    return ClassBand(os.fspath(path), dataset, band, role, packed)


def crs_name(crs_wkt: str) -> str:
    """Short name of a CRS for messages, e.g. ``EPSG:26917`` or its name."""
    if not crs_wkt:
        return "no CRS"
    srs = osr.SpatialReference()
    srs.ImportFromWkt(crs_wkt)
    authority, code = srs.GetAuthorityName(None), srs.GetAuthorityCode(None)
    if authority and code:
        return f"{authority}:{code}"
    return srs.GetName() or "unnamed CRS"


def area_units(crs_wkt: str) -> tuple[str, float | None]:
    """The unit of pixel areas in ``crs_wkt`` and how many hectares one unit holds
    (``None`` for geographic or unknown CRSs, whose square degrees are not areas)."""
    if not crs_wkt:
        return "map units²", None
    srs = osr.SpatialReference()
    srs.ImportFromWkt(crs_wkt)
    if not srs.IsProjected():
        return "degrees²" if srs.IsGeographic() else "map units²", None
    metres = srs.GetLinearUnits()
    unit = srs.GetLinearUnitsName() or "unit"
    return f"{unit}²", metres * metres / 10_000.0
