# SPDX-License-Identifier: GPL-2.0-or-later
"""Windowed raster I/O with GDAL (``osgeo.gdal``), rasterio-style.

Everything reads and writes through windows, so memory depends on the window size and
never on the raster's. Errors from GDAL are turned into :class:`InputError` with a
message that names the file.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np
from osgeo import gdal, osr

from .errors import InputError
from .grid import Grid, Window
from .temporary_files import SIDECARS, registered_temporary, remove_with_sidecars

gdal.UseExceptions()
osr.UseExceptions()

RESAMPLING = {
    "near": gdal.GRA_NearestNeighbour,
    "bilinear": gdal.GRA_Bilinear,
    "cubic": gdal.GRA_Cubic,
    "average": gdal.GRA_Average,
    "mode": gdal.GRA_Mode,
}

DEFAULT_CREATION_OPTIONS = (
    "TILED=YES",
    "BLOCKXSIZE=256",
    "BLOCKYSIZE=256",
    "COMPRESS=DEFLATE",
    "PREDICTOR=2",
    "BIGTIFF=IF_SAFER",
)


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


def check_output_path(destination: str | os.PathLike[str]) -> Path:
    """Raise :class:`InputError` saying why no file can be written at ``destination``
    (it is a folder; its folder is missing, or a file; the folder refuses new files);
    return the folder.

    Permissions alone do not tell: root may write anywhere, and special or read-only
    file systems (``/proc``, a read-only mount) refuse files all the same. So a hidden
    file is created in the folder and deleted at once.
    """
    target = Path(destination)
    if target.is_dir():
        raise InputError(f"The output {target} is a folder: give a file name.")
    directory = target.parent if str(target.parent) else Path(".")
    if not directory.is_dir():
        ancestor = directory
        while not ancestor.exists() and ancestor.parent != ancestor:
            ancestor = ancestor.parent
        if ancestor.exists() and not ancestor.is_dir():
            raise InputError(f"Cannot write {target}: {ancestor} is a file, not a folder.")
        raise InputError(f"The output folder does not exist: {directory}")
    if not os.access(directory, os.W_OK):
        raise InputError(f"The output folder is not writable: {directory}")
    try:
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".landcover-probe-"):
            pass
    except OSError as error:
        raise InputError(
            f"Cannot create files in the output folder {directory} "
            f"({error.strerror or error}): choose another folder."
        ) from error
    return directory


@contextmanager
def atomic_output(destination: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``destination`` (same suffix); on success it is
    renamed onto ``destination``, on any exception it is deleted.

    GDAL side-car files written next to the temporary file (``.aux.xml``, ``.ovr``,
    ``.msk``) are moved or removed with it. The path is created by the writer, named
    ``.<name>.<pid>-<n>.tmp-landcover<suffix>`` and registered in
    :mod:`.temporary_files`: a SIGTERM deletes it, and the next run writing the same
    destination deletes those that a killed process left behind.
    """
    target = Path(destination)
    directory = check_output_path(target)
    with registered_temporary(directory / target.name) as temporary:
        try:
            yield temporary
            if not temporary.exists():
                raise InputError(f"Nothing was written for {target}.")
            os.replace(temporary, target)
            for extension in SIDECARS:
                sidecar = Path(f"{temporary}{extension}")
                if sidecar.exists():
                    os.replace(sidecar, Path(f"{target}{extension}"))
        except BaseException:
            remove_with_sidecars(temporary)
            raise


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
        f'label="{escape(names.get(value, str(value)), {chr(34): "&quot;"})}"/>'
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
