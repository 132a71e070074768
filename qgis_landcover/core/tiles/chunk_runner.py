# SPDX-License-Identifier: GPL-2.0-or-later
"""One chunk of a many-tiles job, start to finish: the task every executor runs.

:func:`run_chunk` classifies the chunk's window of the job's input mosaic with the core
classify call (which reads the chunk's margin from the neighbouring inputs through the
VRT: no seams), writes a tiled, DEFLATE-compressed GeoTIFF with overviews in COG layout
atomically, counts the pixels of each class and their areas, and returns a
:class:`ChunkResult`. It never raises for bad data: a corrupt input, a read error or an
unusable window is a ``failed`` result with the message, so one bad tile does not stop
the job. The model session is loaded once per process (``inference.session``'s cache,
keyed by path, SHA-256 and device) and reused by every chunk the process runs.

It is a top-level function of plain picklable arguments, so process pools and Dask
ship it by reference.
"""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import dataclass, replace
from pathlib import Path

from osgeo import gdal, ogr

from ..errors import InputError, LandcoverError
from ..files.atomic import atomic_output
from ..files.temporary import registered_temporary, remove_with_sidecars
from ..inference.classified_output import NODATA, OutputPaths, qml_path
from ..inference.classify import classify
from ..inference.gdal_source import GdalImageSource
from ..inference.image_source import Extent
from ..raster.grid import Grid, Window
from ..raster.reading import same_grid
from .areas import add_areas, class_areas
from .job import Chunk, TilesJob

gdal.UseExceptions()
ogr.UseExceptions()

DONE = "done"
FAILED = "failed"


@dataclass(frozen=True)
class ChunkResult:
    """What one chunk produced.

    Attributes:
        chunk_id: :attr:`Chunk.id`.
        status: ``done`` or ``failed``.
        pixels: output pixels that received a class (not nodata).
        seconds: wall time of the chunk in its worker.
        error: why it failed (a message for the user), ``""`` when done.
        class_counts: (class value, pixels) for every class present.
        class_areas_m2: (class value, square metres) for the same classes, computed for
            the CRS (:mod:`.areas`).
        fingerprint: the inputs the chunk read, as JSON (:func:`input_fingerprint`):
            a later run redoes the chunk when it changes.
        output: the chunk's GeoTIFF (``""`` when failed).
        worker: who ran it (host and pid), for the log.
    """

    chunk_id: str
    status: str
    pixels: int = 0
    seconds: float = 0.0
    error: str = ""
    class_counts: tuple[tuple[int, int], ...] = ()
    class_areas_m2: tuple[tuple[int, float], ...] = ()
    fingerprint: str = ""
    output: str = ""
    worker: str = ""

    @property
    def ok(self) -> bool:
        return self.status == DONE


def input_fingerprint(chunk: Chunk) -> str:
    """The inputs ``chunk`` reads as canonical JSON: path, size and modification time
    (ns) of each (``-1`` for a path that cannot be stat'ed, e.g. ``/vsicurl/``)."""
    entries = []
    for path in sorted(chunk.inputs):
        try:
            stat = os.stat(path)
            entries.append([path, stat.st_size, stat.st_mtime_ns])
        except OSError:
            entries.append([path, -1, -1])
    return json.dumps(entries)


def failed_result(job: TilesJob, chunk: Chunk, error: str, seconds: float = 0.0) -> ChunkResult:
    """The result of ``chunk`` failing with ``error`` (a message for the user): for
    executors whose task died outside :func:`run_chunk` (a lost worker, a killed
    process), so the driver records it like any other failure."""
    return ChunkResult(
        chunk_id=chunk.id,
        status=FAILED,
        seconds=seconds,
        error=error,
        fingerprint=input_fingerprint(chunk),
        worker=_worker(),
    )


def _worker() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def run_chunk(job: TilesJob, chunk: Chunk) -> ChunkResult:
    """Classify ``chunk`` of ``job`` into ``chunk.output``; never raises for bad data.

    Idempotent: running a chunk twice (a retry after a lost worker) writes the same
    file, replaced atomically. ``KeyboardInterrupt`` / ``SystemExit`` propagate.
    """
    started = time.perf_counter()
    try:
        # The fingerprint is taken before reading: an input changed during the run
        # makes the next run redo the chunk rather than trust it.
        fingerprint = input_fingerprint(chunk)
        areas = _classify_chunk(job, chunk)
    except Exception as error:  # any failure is this chunk's, reported, not raised
        message = str(error) if isinstance(error, LandcoverError) else _describe(error)
        return failed_result(job, chunk, message, time.perf_counter() - started)
    return ChunkResult(
        chunk_id=chunk.id,
        status=DONE,
        pixels=sum(pixels for pixels, _ in areas.values()),
        seconds=time.perf_counter() - started,
        class_counts=tuple((value, pixels) for value, (pixels, _) in sorted(areas.items())),
        class_areas_m2=tuple((value, area) for value, (_, area) in sorted(areas.items())),
        fingerprint=fingerprint,
        output=chunk.output,
        worker=_worker(),
    )


def _describe(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return f"{type(error).__name__}: {text}" if isinstance(error, RuntimeError) else text


def _classify_chunk(job: TilesJob, chunk: Chunk) -> dict[int, tuple[int, float]]:
    """Classify, mask, count and write ``chunk``; returns its class areas."""
    output = Path(chunk.output)
    expected = job.grid.window_grid(chunk.window)
    scratch = output.with_name(f"{output.stem}.raw{output.suffix}")
    with atomic_output(output) as final, registered_temporary(scratch) as raw:
        try:
            result = classify(
                GdalImageSource(job.mosaic),
                job.model,
                OutputPaths(raw),
                extent=Extent(chunk.bounds, job.crs_wkt),
                bands=job.bands,
                options=replace(job.options, overviews=False),
            )
            if not same_grid(result.grid, expected):
                raise InputError(
                    f"Chunk {chunk.id} came out on another grid than planned "
                    f"({result.grid.width} x {result.grid.height} px); the job's grid and "
                    "the classify grid disagree."
                )
            areas = _mask_and_count(raw, expected, job.mask_wkt)
            _write_cog(raw, final)
        finally:
            remove_with_sidecars(raw)
            qml_path(raw).unlink(missing_ok=True)
    return areas


def _mask_and_count(raw: Path, grid: Grid, mask_wkt: str | None) -> dict[int, tuple[int, float]]:
    """Set pixels outside the mask to nodata (in place) and count the classes, in
    blocks of :data:`COUNT_ROWS` rows."""
    dataset = gdal.Open(str(raw), gdal.GA_Update if mask_wkt else gdal.GA_ReadOnly)
    band = dataset.GetRasterBand(1)
    if mask_wkt:
        _apply_mask(dataset, mask_wkt)
    areas: dict[int, tuple[int, float]] = {}
    for row in range(0, grid.height, COUNT_ROWS):
        rows = min(COUNT_ROWS, grid.height - row)
        block = band.ReadAsArray(0, row, grid.width, rows)
        add_areas(areas, class_areas(block, grid.window_grid(Window(0, row, grid.width, rows))))
    dataset = None
    return areas


def _apply_mask(dataset: gdal.Dataset, mask_wkt: str) -> None:
    """Burn nodata outside the polygon: rasterise the polygon into a memory raster
    (all touched pixels off: a pixel is inside when its centre is) and zero the rest."""
    memory = gdal.GetDriverByName("MEM").Create(
        "", dataset.RasterXSize, dataset.RasterYSize, 1, gdal.GDT_Byte
    )
    memory.SetGeoTransform(dataset.GetGeoTransform())
    memory.SetProjection(dataset.GetProjection())
    vector = ogr.GetDriverByName("Memory").CreateDataSource("")
    layer = vector.CreateLayer("mask", srs=dataset.GetSpatialRef())
    feature = ogr.Feature(layer.GetLayerDefn())
    feature.SetGeometry(ogr.CreateGeometryFromWkt(mask_wkt))
    layer.CreateFeature(feature)
    gdal.RasterizeLayer(memory, [1], layer, burn_values=[1])
    inside = memory.GetRasterBand(1).ReadAsArray().astype(bool)
    band = dataset.GetRasterBand(1)
    classes = band.ReadAsArray()
    classes[~inside] = NODATA
    band.WriteArray(classes)
    dataset.FlushCache()


COUNT_ROWS = 1024
"""Rows of a chunk counted at once (4096 px chunks: 4 MB of uint8 per block)."""

COG_OPTIONS = [
    "COMPRESS=DEFLATE",
    "BLOCKSIZE=512",
    "OVERVIEWS=AUTO",
    "OVERVIEW_RESAMPLING=NEAREST",
    "OVERVIEW_COMPRESS=DEFLATE",
]
"""Tiled, DEFLATE, overviews (nearest: class values stay class values), in the
cloud-optimised layout (overviews and tile index first)."""


def _write_cog(raw: Path, destination: Path) -> None:
    """Copy ``raw`` into ``destination`` as a COG (colour table and nodata kept)."""
    copied = gdal.Translate(str(destination), str(raw), format="COG", creationOptions=COG_OPTIONS)
    if copied is None:
        raise InputError(f"GDAL could not write {destination}.")
    copied = None
