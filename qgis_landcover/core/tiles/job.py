# SPDX-License-Identifier: GPL-2.0-or-later
"""A many-tiles job: the inputs as one virtual mosaic, the model, the chunk grid.

Many input rasters (files, a folder and a pattern, or a tile-index vector layer with a
path field, like the NAIP index) become one GDAL VRT, so a chunk classified on its own
still reads its margin from the neighbouring input tiles: no seams at input-tile
boundaries. The output grid (the mosaic at the model's resolution, clipped to the
extent) is cut into square chunks whose side is a multiple of the model's output tile;
each chunk is one task (:func:`~.chunk_runner.run_chunk`) that writes its own GeoTIFF.

:class:`TilesJob` and :class:`Chunk` are frozen and picklable: they travel to worker
processes and Dask workers as they are, and hold only paths (shared by every worker)
and numbers.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from osgeo import gdal, ogr, osr

from ..errors import InputError
from ..files.atomic import atomic_output
from ..inference.classified_output import class_palette
from ..inference.image_source import Extent
from ..inference.model_grid import RESOLUTION_TOLERANCE, metres_per_unit, plan_model_grid
from ..inference.pipeline import ClassifyOptions
from ..inference.session import model_digest
from ..models.contract import ModelContract, read_contract
from ..models.validation import check_model_file
from ..progress import NullProgress, Progress
from ..raster.grid import Bounds, Grid, Window, format_bounds, intersect_bounds
from ..raster.reading import open_raster, raster_grid, same_crs, warp_to_grid

gdal.UseExceptions()
ogr.UseExceptions()
osr.UseExceptions()

DEFAULT_CHUNK_SIZE = 4096
"""Chunk side in output pixels: 16.8 Mpx, a few minutes of CPU or seconds of GPU."""

MOSAIC_INPUT_NAME = "inputs.vrt"
"""The virtual mosaic of the inputs, in the output folder."""
MODEL_GRID_NAME = "inputs_model_grid.vrt"
"""The mosaic resampled (bilinear, on read) to the model's resolution, when the inputs
have another one: every chunk then reads one grid."""
MOSAIC_OUTPUT_NAME = "classified.vrt"
"""The virtual mosaic of the classified chunks, in the output folder."""
MANIFEST_NAME = "manifest.gpkg"
AREAS_NAME = "areas.csv"
CHUNKS_FOLDER = "chunks"

SAME_PIXEL_SIZE = 1e-6
"""Relative pixel-size difference below which two inputs share a resolution."""


@dataclass(frozen=True)
class InputTile:
    """One input raster of the mosaic.

    Attributes:
        path: as GDAL opens it (an absolute local path, or a ``/vsi...`` name).
        bounds: its outer pixel edges in the mosaic's CRS.
    """

    path: str
    bounds: Bounds


@dataclass(frozen=True)
class TilesJob:
    """Everything a worker needs to classify any chunk, and the driver to record it.

    Attributes:
        mosaic: the VRT the chunks read: over the inputs (``<output_folder>/inputs.vrt``),
            or that resampled to the model's resolution (``inputs_model_grid.vrt``).
        inputs: the input rasters with their bounds (for each chunk's fingerprint).
        model: the local ONNX file (resolved before: catalogue names, URLs and downloads
            are the caller's business, e.g. ``models.resolve.resolve_model``).
        model_sha256: its SHA-256 (hex), recorded in the manifest: another model
            redoes every chunk.
        output_folder: where the chunks, the mosaic of the outputs, the manifest and
            the areas CSV go.
        chunk_size: chunk side in output pixels (a multiple of the model's output tile).
        grid: the output grid: the mosaic at the model's resolution over the union of
            the inputs, clipped to ``extent``; chunk windows are windows of it.
        extent: the area asked for, in the mosaic's CRS, or ``None`` for all of it.
        mask_wkt: a polygon (WKT, mosaic CRS): chunks outside it are not planned and
            pixels outside it are nodata; ``None`` for no mask.
        bands: 1-based mosaic bands feeding the model in its order, or ``None`` to
            match them by name / colour interpretation.
        options: how the model runs (device, batch and tile size, overlap, ...).
        class_names: output class value -> name, from the model's contract.
    """

    mosaic: str
    inputs: tuple[InputTile, ...]
    model: str
    model_sha256: str
    output_folder: str
    chunk_size: int
    grid: Grid
    extent: Bounds | None = None
    mask_wkt: str | None = None
    bands: tuple[int, ...] | None = None
    options: ClassifyOptions = field(default_factory=ClassifyOptions)
    class_names: tuple[tuple[int, str], ...] = ()

    @property
    def device(self) -> str:
        """``auto``, ``cpu``, ``cuda`` or ``tensorrt`` (:attr:`options` ``.device``)."""
        return self.options.device

    @property
    def crs_wkt(self) -> str:
        """The mosaic's (and every output's) CRS."""
        return self.grid.crs_wkt

    @property
    def chunks_folder(self) -> Path:
        return Path(self.output_folder) / CHUNKS_FOLDER

    @property
    def output_mosaic(self) -> Path:
        """The VRT over all classified chunks."""
        return Path(self.output_folder) / MOSAIC_OUTPUT_NAME

    @property
    def manifest_path(self) -> Path:
        return Path(self.output_folder) / MANIFEST_NAME

    @property
    def areas_path(self) -> Path:
        return Path(self.output_folder) / AREAS_NAME

    def parameters(self) -> dict[str, Any]:
        """What decides a chunk's output besides its inputs and the model (recorded in
        the manifest; a chunk done with other parameters is redone). Not the device,
        batch size or memory limit: they change the speed, not the classes."""
        options = self.options
        return {
            "chunk_size": self.chunk_size,
            "grid": [self.grid.crs_wkt, list(self.grid.geotransform)],
            "mask_wkt": self.mask_wkt,
            "bands": list(self.bands) if self.bands is not None else None,
            "tile_size": options.tile_size,
            "overlap_percent": options.overlap_percent,
            "input_range": list(options.input_range) if options.input_range else None,
        }

    def parameters_json(self) -> str:
        """:meth:`parameters` as canonical JSON (sorted keys), compared on resume."""
        return json.dumps(self.parameters(), sort_keys=True)


@dataclass(frozen=True)
class Chunk:
    """One task: a window of the job's output grid.

    Attributes:
        id: ``r{row}_c{col}`` (row and column in the chunk grid).
        row, col: position in the chunk grid.
        window: pixels of :attr:`TilesJob.grid`.
        bounds: the window's footprint (xmin, ymin, xmax, ymax) in the mosaic's CRS.
        output: the classified GeoTIFF of this chunk (``<output>/chunks/<id>.tif``).
        inputs: paths of the input rasters the chunk reads, its margin included.
    """

    id: str
    row: int
    col: int
    window: Window
    bounds: Bounds
    output: str
    inputs: tuple[str, ...]


def list_inputs(
    inputs: Sequence[str | os.PathLike[str]] = (),
    *,
    folder: str | os.PathLike[str] | None = None,
    pattern: str = "*.tif",
    tile_index: str | os.PathLike[str] | None = None,
    path_field: str | None = None,
) -> list[str]:
    """The input rasters, from any mix of a list, a folder + glob ``pattern`` (``**``
    recurses) and a tile-index vector layer whose ``path_field`` holds the paths
    (relative paths are relative to the index's folder). Duplicates are dropped, order
    kept.

    Raises:
        InputError: no input at all, a missing folder / index / field, a missing file.
    """
    paths: list[str] = [_raster_name(p) for p in inputs]
    if folder is not None:
        base = Path(folder)
        if not base.is_dir():
            raise InputError(f"The input folder does not exist: {base}")
        found = sorted(p for p in base.glob(pattern) if p.is_file())
        if not found:
            raise InputError(f"No file in {base} matches the pattern {pattern!r}.")
        paths += [str(p.resolve()) for p in found]
    if tile_index is not None:
        paths += _tile_index_paths(Path(tile_index), path_field)
    unique = list(dict.fromkeys(paths))
    if not unique:
        raise InputError("No input rasters: give rasters, a folder and a pattern, or a tile index.")
    return unique


def _raster_name(path: str | os.PathLike[str]) -> str:
    text = os.fspath(path)
    if text.startswith("/vsi") or "://" in text:
        return text
    return str(Path(text).expanduser().resolve())


def _first_layer(path: Path, role: str) -> tuple[ogr.DataSource, ogr.Layer]:
    """The vector file ``path`` and its first layer (keep both: the layer dies with its
    source), or :class:`InputError` naming ``role`` (e.g. "tile index")."""
    if not path.exists():
        raise InputError(f"The {role} does not exist: {path}")
    try:
        source = ogr.Open(str(path))
    except RuntimeError as error:
        raise InputError(f"Cannot open the {role} {path}: {error}") from error
    if source is None or source.GetLayerCount() == 0:
        raise InputError(f"The {role} {path.name} has no vector layer.")
    return source, source.GetLayer(0)


def _tile_index_paths(index: Path, path_field: str | None) -> list[str]:
    _source, layer = _first_layer(index, "tile index")
    definition = layer.GetLayerDefn()
    names = [definition.GetFieldDefn(i).GetName() for i in range(definition.GetFieldCount())]
    field_name = path_field or ("location" if "location" in names else None)
    if field_name is None or field_name not in names:
        raise InputError(
            f"The tile index {index.name} has no field {field_name or 'location'!r} "
            f"holding the raster paths; its fields: {', '.join(names) or 'none'}."
        )
    paths = []
    for feature in layer:
        value = feature.GetField(field_name)
        if not value:
            continue
        text = str(value)
        if not (text.startswith("/vsi") or "://" in text or Path(text).is_absolute()):
            text = str((index.parent / text).resolve())
        paths.append(_raster_name(text))
    if not paths:
        raise InputError(f"The tile index {index.name} lists no raster in {field_name!r}.")
    return paths


@dataclass(frozen=True)
class _Layout:
    """What inputs of one mosaic must share (besides north-up grids)."""

    name: str
    crs_wkt: str
    bands: int
    data_type: str
    resolution: tuple[float, float]


def check_compatible(paths: Sequence[str]) -> list[InputTile]:
    """Open every input and check that they can form one mosaic: same CRS, band count,
    data type and pixel size, north-up. Returns them with their bounds.

    Raises:
        InputError: naming the first input that differs from the first one, and how.
    """
    tiles: list[InputTile] = []
    first: _Layout | None = None
    for path in paths:
        dataset = open_raster(path)
        grid = raster_grid(dataset)
        layout = _Layout(
            Path(path).name,
            grid.crs_wkt,
            dataset.RasterCount,
            gdal.GetDataTypeName(dataset.GetRasterBand(1).DataType),
            grid.resolution,
        )
        first = first or layout
        _check_same(first, layout)
        tiles.append(InputTile(path, grid.bounds))
    return tiles


def _check_same(first: _Layout, other: _Layout) -> None:
    name0, name = first.name, other.name
    if not same_crs(first.crs_wkt, other.crs_wkt):
        raise InputError(
            f"The inputs must share one CRS: {name} differs from {name0}; reproject it first."
        )
    if first.bands != other.bands:
        raise InputError(
            f"The inputs must have the same bands: {name} has {other.bands}, {name0} has "
            f"{first.bands}."
        )
    if first.data_type != other.data_type:
        raise InputError(
            f"The inputs must share one data type: {name} is {other.data_type}, {name0} is "
            f"{first.data_type}."
        )
    (x0, y0), (x, y) = first.resolution, other.resolution
    if any(abs(a - b) > SAME_PIXEL_SIZE * max(a, b) for a, b in ((x0, x), (y0, y))):
        raise InputError(
            f"The inputs must share one pixel size: {name} has {x:g} x {y:g}, {name0} has "
            f"{x0:g} x {y0:g}."
        )


def build_mosaic(paths: Sequence[str], destination: Path) -> None:
    """Write the VRT over ``paths`` atomically (absolute source paths: workers on other
    machines open the same names on the shared file system)."""
    with atomic_output(destination) as temporary:
        vrt = gdal.BuildVRT(str(temporary), list(paths), resolution="highest")
        if vrt is None:
            raise InputError(f"GDAL could not build a mosaic of {len(paths)} inputs.")
        vrt.FlushCache()
        vrt = None
        # BuildVRT writes the sources relative to the VRT's folder when they are below
        # it; a rename keeps them valid as the temporary file sits beside the target.


def build_job(
    inputs: Sequence[str | os.PathLike[str]] = (),
    *,
    model: str | os.PathLike[str],
    output_folder: str | os.PathLike[str],
    folder: str | os.PathLike[str] | None = None,
    pattern: str = "*.tif",
    tile_index: str | os.PathLike[str] | None = None,
    path_field: str | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    extent: Extent | None = None,
    mask: str | os.PathLike[str] | None = None,
    bands: Sequence[int] | None = None,
    options: ClassifyOptions | None = None,
    progress: Progress | None = None,
) -> TilesJob:
    """Describe a many-tiles job and write its input mosaic (``inputs.vrt``).

    Args:
        inputs, folder, pattern, tile_index, path_field: the input rasters
            (:func:`list_inputs`); they must share CRS, bands, data type and pixel size.
        model: a local ONNX file with the model contract.
        output_folder: created if missing (its parent must exist).
        chunk_size: chunk side in output pixels, rounded down to a multiple of the
            model's output tile (at least one tile).
        extent: classify only this area (any CRS); ``None`` for the union of the inputs.
        mask: a polygon vector layer (any CRS): only chunks touching it are planned,
            pixels outside it are nodata.
        bands: 1-based input bands feeding the model, or ``None`` to match by name.
        options: how to run the model (``options.device`` included).

    Raises:
        InputError: no inputs, incompatible inputs, a bad model, an extent or mask
            outside the inputs, an output folder that cannot be made.
    """
    progress = progress or NullProgress()
    options = options or ClassifyOptions()
    if chunk_size <= 0:
        raise InputError(f"The chunk size must be positive, got {chunk_size}.")
    model_path = Path(model).expanduser().resolve()
    check_model_file(model_path)
    contract = read_contract(model_path)
    paths = list_inputs(
        inputs, folder=folder, pattern=pattern, tile_index=tile_index, path_field=path_field
    )
    tiles = check_compatible(paths)
    out = Path(output_folder).expanduser().resolve()
    if not out.parent.is_dir():
        raise InputError(f"The folder above the output folder does not exist: {out.parent}")
    try:
        (out / CHUNKS_FOLDER).mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise InputError(f"Cannot create the output folder {out}: {error}") from error
    if any(_inside(tile.path, out) for tile in tiles):
        raise InputError(
            f"The output folder {out} holds input rasters: choose another output folder."
        )
    mosaic = out / MOSAIC_INPUT_NAME
    build_mosaic(paths, mosaic)
    mosaic_grid = raster_grid(open_raster(mosaic))
    crs_wkt = mosaic_grid.crs_wkt
    bounds = extent.bounds_in(crs_wkt) if extent is not None else None
    mask_wkt = _mask_wkt(Path(mask), crs_wkt) if mask is not None else None
    if mask_wkt is not None:
        envelope = ogr.CreateGeometryFromWkt(mask_wkt).GetEnvelope()
        mask_bounds = (envelope[0], envelope[2], envelope[1], envelope[3])
        clipped = mask_bounds if bounds is None else intersect_bounds(bounds, mask_bounds)
        if clipped is None:
            raise InputError("The mask does not overlap the extent.")
        bounds = clipped
    layout = plan_model_grid(mosaic_grid, contract.resolution_m, bounds, progress=progress)
    grid = layout.output_grid
    if layout.resampled:
        check_one_resolution(grid, contract.resolution_m)
        source = out / MODEL_GRID_NAME
        write_model_grid(mosaic, mosaic_grid, grid, source)
    else:
        source = mosaic
    job = TilesJob(
        mosaic=str(source),
        inputs=tuple(tiles),
        model=str(model_path),
        model_sha256=model_digest(model_path),
        output_folder=str(out),
        chunk_size=aligned_chunk_size(chunk_size, contract, options),
        grid=grid,
        extent=bounds,
        mask_wkt=mask_wkt,
        bands=tuple(bands) if bands is not None else None,
        options=options,
        class_names=tuple(sorted(class_palette(contract)[1].items())),
    )
    progress.info(
        f"{len(tiles)} input rasters; output {grid.width} x {grid.height} px over "
        f"{format_bounds(grid.bounds)}; chunks of {job.chunk_size} px."
    )
    return job


def check_one_resolution(grid: Grid, resolution_m: float) -> None:
    """Refuse a geographic or Mercator grid whose ground pixel size changes by more
    than the model grid's tolerance between its centre and its northern or southern
    edge: one grid of the job could not give every chunk the model's resolution.

    Raises:
        InputError: saying to reproject the inputs (UTM, an equal-area CRS) or split
            the job.
    """
    xmin, ymin, xmax, ymax = grid.bounds
    centre_x = (xmin + xmax) / 2
    scales = [metres_per_unit(grid.crs_wkt, (centre_x, y)) for y in (ymin, (ymin + ymax) / 2, ymax)]
    if any(scale is None for scale in scales):
        return
    middle = scales[1][0]  # type: ignore[index]
    spread = max(abs(s[0] - middle) / middle for s in scales)  # type: ignore[index]
    if spread > RESOLUTION_TOLERANCE:
        raise InputError(
            f"The inputs span too many latitudes for one grid at the model's "
            f"{resolution_m:g} m in their CRS (pixel width varies by {100 * spread:.1f} %): "
            "reproject them to a projected CRS (UTM, an equal-area CRS) or split the job."
        )


def write_model_grid(mosaic: Path, mosaic_grid: Grid, grid: Grid, destination: Path) -> None:
    """Write a warped VRT of ``mosaic`` (bilinear) on the model's grid over all of the
    mosaic: ``grid``'s pixel size and alignment, the mosaic's extent (chunks read their
    margins beyond ``grid`` from it)."""
    rx, ry = grid.resolution
    xmin, ymin, xmax, ymax = mosaic_grid.bounds
    gx, gy = grid.geotransform[0], grid.geotransform[3]
    cols = (math.floor((xmin - gx) / rx + 1e-6), math.ceil((xmax - gx) / rx - 1e-6))
    rows = (math.floor((gy - ymax) / ry + 1e-6), math.ceil((gy - ymin) / ry - 1e-6))
    full = Grid(
        grid.crs_wkt,
        (gx + cols[0] * rx, rx, 0.0, gy - rows[0] * ry, 0.0, -ry),
        cols[1] - cols[0],
        rows[1] - rows[0],
    )
    warped = warp_to_grid(open_raster(mosaic), full, "bilinear")
    with atomic_output(destination) as temporary:
        copy = gdal.GetDriverByName("VRT").CreateCopy(str(temporary), warped)
        if copy is None:
            raise InputError(f"GDAL could not write {destination}.")
        copy = None


def _inside(path: str, folder: Path) -> bool:
    if path.startswith("/vsi") or "://" in path:
        return False
    return Path(path).resolve().is_relative_to(folder)


def _mask_wkt(path: Path, crs_wkt: str) -> str:
    """The union of the polygons of the first layer of ``path`` in ``crs_wkt``, as WKT."""
    _source, layer = _first_layer(path, "mask layer")
    target = osr.SpatialReference()
    target.ImportFromWkt(crs_wkt)
    target.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    layer_srs = layer.GetSpatialRef()
    transform = None
    if layer_srs is not None and not layer_srs.IsSame(target):
        layer_srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
        transform = osr.CoordinateTransformation(layer_srs, target)
    union = ogr.Geometry(ogr.wkbMultiPolygon)
    for feature in layer:
        geometry = feature.GetGeometryRef()
        if geometry is None or ogr.GT_Flatten(geometry.GetGeometryType()) not in (
            ogr.wkbPolygon,
            ogr.wkbMultiPolygon,
        ):
            continue
        geometry = geometry.Clone()
        if transform is not None:
            geometry.Transform(transform)
        union = union.Union(geometry)
    if union.IsEmpty():
        raise InputError(f"The mask {path.name} holds no polygon.")
    return str(union.ExportToWkt())


def output_tile_size(contract: ModelContract, options: ClassifyOptions) -> int:
    """The side of one output tile of the model (tile minus twice its margin)."""
    tile = options.tile_size or contract.tile_size
    return max(1, tile - 2 * contract.output_margin)


def aligned_chunk_size(chunk_size: int, contract: ModelContract, options: ClassifyOptions) -> int:
    """``chunk_size`` rounded down to a multiple of the model's output tile (at least
    one tile), so chunk edges fall on tile edges of a plan started at the grid's corner."""
    tile = output_tile_size(contract, options)
    return max(1, chunk_size // tile) * tile


def plan_chunks(job: TilesJob) -> list[Chunk]:
    """The chunks of ``job``: a grid of ``chunk_size`` squares from the output grid's
    top-left corner (the last row and column narrower), without those outside the mask.
    Each lists the inputs it reads, a margin of one model tile included."""
    grid = job.grid
    contract = read_contract(job.model)
    context = (job.options.tile_size or contract.tile_size) * max(grid.resolution)
    mask = ogr.CreateGeometryFromWkt(job.mask_wkt) if job.mask_wkt else None
    chunks: list[Chunk] = []
    size = job.chunk_size
    for row in range(math.ceil(grid.height / size)):
        for col in range(math.ceil(grid.width / size)):
            window = Window(
                col * size,
                row * size,
                min(size, grid.width - col * size),
                min(size, grid.height - row * size),
            )
            bounds = grid.window_grid(window).bounds
            if mask is not None and not mask.Intersects(footprint_polygon(bounds)):
                continue
            reach = (
                bounds[0] - context,
                bounds[1] - context,
                bounds[2] + context,
                bounds[3] + context,
            )
            chunk_id = f"r{row}_c{col}"
            chunks.append(
                Chunk(
                    id=chunk_id,
                    row=row,
                    col=col,
                    window=window,
                    bounds=bounds,
                    output=str(job.chunks_folder / f"{chunk_id}.tif"),
                    inputs=tuple(
                        t.path for t in job.inputs if intersect_bounds(t.bounds, reach) is not None
                    ),
                )
            )
    return chunks


def footprint_polygon(bounds: Bounds) -> ogr.Geometry:
    """``bounds`` as an OGR polygon (chunk footprints in the manifest, mask tests)."""
    xmin, ymin, xmax, ymax = bounds
    ring = ogr.Geometry(ogr.wkbLinearRing)
    for x, y in ((xmin, ymin), (xmax, ymin), (xmax, ymax), (xmin, ymax), (xmin, ymin)):
        ring.AddPoint_2D(x, y)
    polygon = ogr.Geometry(ogr.wkbPolygon)
    polygon.AddGeometry(ring)
    return polygon
