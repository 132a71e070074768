# SPDX-License-Identifier: GPL-2.0-or-later
"""Writing rasters with GDAL: tiled, compressed GeoTIFFs with a colour table and
category names, and the QGIS style (``.qml``) that opens a class raster with a legend.

Errors from GDAL are turned into :class:`InputError` with a message that names the file.
"""

from __future__ import annotations

import html
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from osgeo import gdal

from ..errors import InputError
from .grid import Grid

gdal.UseExceptions()

DEFAULT_CREATION_OPTIONS = (
    "TILED=YES",
    "BLOCKXSIZE=256",
    "BLOCKYSIZE=256",
    "COMPRESS=DEFLATE",
    "PREDICTOR=2",
    "BIGTIFF=IF_SAFER",
)


def create_geotiff(
    path: str | os.PathLike[str],
    grid: Grid,
    band_count: int,
    gdal_type: int,
    nodata: float | None = None,
    options: Sequence[str] = DEFAULT_CREATION_OPTIONS,
    *,
    colors: Mapping[int, tuple[int, int, int]] | None = None,
    names: Mapping[int, str] | None = None,
) -> gdal.Dataset:
    """Create a tiled, compressed GeoTIFF on ``grid``; close it (``None`` it) to flush.

    ``colors`` / ``names`` (value -> (r, g, b) / category name; one-band rasters only)
    give it a colour table here, before any pixel is written: GDAL 3.10's GTiff
    refuses to change the photometric interpretation of a file whose blocks are
    written ("Cannot modify tag PhotometricInterpretation while writing").
    """
    if colors is not None and band_count != 1:
        raise ValueError("A colour table needs a one-band raster.")
    block_options = list(options)
    if grid.width < 256 or grid.height < 256:
        # TIFF tiles must be multiples of 16; small rasters get small tiles.
        side = max(16, min(256, 16 * ((min(grid.width, grid.height) + 15) // 16)))
        block_options = [
            o for o in block_options if not o.startswith(("BLOCKXSIZE", "BLOCKYSIZE"))
        ] + [f"BLOCKXSIZE={side}", f"BLOCKYSIZE={side}"]
    if gdal_type in (gdal.GDT_Float32, gdal.GDT_Float64):
        block_options = [o if o != "PREDICTOR=2" else "PREDICTOR=3" for o in block_options]
    try:
        driver = gdal.GetDriverByName("GTiff")
        dataset = driver.Create(
            os.fspath(path), grid.width, grid.height, band_count, gdal_type, block_options
        )
    except RuntimeError as error:
        raise InputError(f"Cannot create {path}: {error}") from error
    dataset.SetGeoTransform(grid.geotransform)
    if grid.crs_wkt:
        dataset.SetProjection(grid.crs_wkt)
    if nodata is not None:
        for band in range(1, band_count + 1):
            dataset.GetRasterBand(band).SetNoDataValue(nodata)
    if colors is not None:
        set_category_table(dataset.GetRasterBand(1), colors, names or {})
    return dataset


def hex_to_rgb(color: str) -> tuple[int, int, int]:
    """``'#rrggbb'`` to an (r, g, b) tuple of 0-255 ints."""
    text = color.lstrip("#")
    if len(text) != 6:
        raise InputError(f"Not a '#rrggbb' colour: {color!r}")
    try:
        return (int(text[0:2], 16), int(text[2:4], 16), int(text[4:6], 16))
    except ValueError as error:
        raise InputError(f"Not a '#rrggbb' colour: {color!r}") from error


def set_category_table(
    band: gdal.Band,
    colors: Mapping[int, tuple[int, int, int]],
    names: Mapping[int, str],
) -> None:
    """Give ``band`` a colour table and category names (value -> colour / name).

    Call it before any pixel of ``band``'s file is written (GDAL >= 3.10 refuses the
    palette afterwards); :func:`create_geotiff` does, given ``colors``."""
    table = gdal.ColorTable()
    for value, (red, green, blue) in sorted(colors.items()):
        table.SetColorEntry(int(value), (int(red), int(green), int(blue), 255))
    band.SetRasterColorTable(table)
    band.SetRasterColorInterpretation(gdal.GCI_PaletteIndex)
    if names:
        highest = max(max(names), max(colors, default=0))
        band.SetRasterCategoryNames([names.get(value, "") for value in range(highest + 1)])


def write_qml_paletted(
    path: str | os.PathLike[str],
    colors: Mapping[int, tuple[int, int, int]],
    names: Mapping[int, str],
    band: int = 1,
) -> Path:
    """Write a QGIS paletted-renderer style (``.qml``) so the raster opens styled with
    a legend; values without a colour are not drawn."""
    entries = "\n".join(
        f'        <paletteEntry value="{value}" color="#{r:02x}{g:02x}{b:02x}" alpha="255" '
        f'label="{html.escape(names.get(value, str(value)), quote=True)}"/>'
        for value, (r, g, b) in sorted(colors.items())
    )
    qml = f"""<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>
<qgis version="3.22" styleCategories="Symbology">
  <pipe>
    <rasterrenderer type="paletted" band="{band}" opacity="1" alphaBand="-1" nodataColor="">
      <rasterTransparency/>
      <colorPalette>
{entries}
      </colorPalette>
    </rasterrenderer>
  </pipe>
  <blendMode>0</blendMode>
</qgis>
"""
    target = Path(path)
    target.write_text(qml, encoding="utf-8")
    return target
