# SPDX-License-Identifier: GPL-2.0-or-later
"""The job's manifest: a GeoPackage with one polygon feature per chunk.

Fields: chunk id, footprint (the chunk's bounds in the mosaic's CRS), status
(``pending`` / ``done`` / ``failed``), pixels, seconds, error, input fingerprint, model
SHA-256, parameters JSON, class counts and areas JSON, the worker and the time. Only
the driver process writes it (workers return results), one transaction per result, so
an interrupted job knows what is done (SQLite keeps each transaction whole). A chunk is
skipped on resume only when it is ``done`` with the same fingerprint, model and
parameters and its GeoTIFF exists (:func:`is_finished`); anything else is redone.

The manifest describes the current plan only: its ``done`` rows are exactly the chunks
the mosaic holds. A re-run with another chunk size, extent or mask plans other chunks,
and the driver then removes the rows of the chunks no longer planned
(:meth:`Manifest.remove`) rather than marking them "superseded": chunk ids are grid
positions (``r{row}_c{col}``), so the new plan reuses many of the old ids and a history
of the old plan could only keep the rows whose id is not reused (a partial, misleading
record); their GeoTIFFs are deleted as well, so a row would point at nothing; and the
layer, loaded in QGIS, then shows the job's layout without stale footprints over it. A
reused id cannot pass for done: its row is compared by parameters (chunk size and grid)
and footprint (:func:`same_chunk`) and reset to ``pending`` before the chunk runs again
(:meth:`Manifest.add_pending`).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from osgeo import gdal, ogr, osr

from ..errors import InputError
from ..raster.grid import Bounds
from .chunk_runner import DONE, ChunkResult, input_fingerprint
from .job import Chunk, TilesJob, footprint_polygon

gdal.UseExceptions()
ogr.UseExceptions()
osr.UseExceptions()

PENDING = "pending"
LAYER = "chunks"
FOOTPRINT_TOLERANCE = 1e-6
"""Footprint edges closer than this many pixels are the same edge (a record's and a
planned chunk's, both computed from the same grid)."""

_FIELDS: tuple[tuple[str, int], ...] = (
    ("chunk_id", ogr.OFTString),
    ("status", ogr.OFTString),
    ("pixels", ogr.OFTInteger64),
    ("seconds", ogr.OFTReal),
    ("error", ogr.OFTString),
    ("fingerprint", ogr.OFTString),
    ("model_sha256", ogr.OFTString),
    ("parameters", ogr.OFTString),
    ("class_counts", ogr.OFTString),
    ("class_areas_m2", ogr.OFTString),
    ("output", ogr.OFTString),
    ("worker", ogr.OFTString),
    ("updated", ogr.OFTString),
)


@dataclass(frozen=True)
class ChunkRecord:
    """One chunk's line in the manifest (see the module's docstring for the fields)."""

    chunk_id: str
    status: str
    pixels: int
    seconds: float
    error: str
    fingerprint: str
    model_sha256: str
    parameters: str
    class_counts: dict[int, int]
    class_areas_m2: dict[int, float]
    output: str
    bounds: Bounds = (0.0, 0.0, 0.0, 0.0)


def same_plan(record: ChunkRecord, job: TilesJob) -> bool:
    """True when ``record`` was written by a run of ``job``'s plan: the same model and
    parameters (chunk size, grid, mask, bands, tiling: :meth:`TilesJob.parameters`).
    Chunk ids are grid positions, so a record of another chunk size or extent can carry
    the id of a chunk of this plan; this tells them apart."""
    return record.model_sha256 == job.model_sha256 and record.parameters == job.parameters_json()


def same_chunk(record: ChunkRecord, job: TilesJob, chunk: Chunk) -> bool:
    """True when ``record`` is ``chunk``'s under ``job``'s plan: :func:`same_plan` and
    the same footprint. The parameters hold the grid's origin and pixel size but not its
    size, so a smaller or larger extent keeps them and the id of the last row or column
    of chunks while the window narrows or widens: the footprint tells them apart."""
    tolerance = FOOTPRINT_TOLERANCE * max(job.grid.resolution)
    return same_plan(record, job) and all(
        abs(a - b) <= tolerance for a, b in zip(record.bounds, chunk.bounds, strict=True)
    )


def in_mosaic(record: ChunkRecord | None, job: TilesJob, chunk: Chunk) -> bool:
    """True when ``chunk``'s GeoTIFF belongs in the job's mosaic: done under this plan
    and still there. Its inputs are not compared: a chunk done in this run from an
    input changed since stays in the mosaic (and in the manifest as done) until the
    next run redoes it."""
    return (
        record is not None
        and record.status == DONE
        and same_chunk(record, job, chunk)
        and Path(chunk.output).is_file()
    )


def is_finished(record: ChunkRecord | None, job: TilesJob, chunk: Chunk) -> bool:
    """True when ``chunk`` need not run again: done, with the same inputs (paths,
    sizes, modification times), model and parameters, and its GeoTIFF still there."""
    return (
        record is not None
        and in_mosaic(record, job, chunk)
        and record.fingerprint == input_fingerprint(chunk)
    )


class Manifest:
    """The manifest GeoPackage of a job, open for reading and writing (driver only).

    Use :func:`open_manifest`; the layer is created when the file is new.
    """

    def __init__(self, path: Path, crs_wkt: str) -> None:
        self.path = path
        try:
            if path.exists():
                self.source = gdal.OpenEx(str(path), gdal.OF_VECTOR | gdal.OF_UPDATE)
            else:
                driver = ogr.GetDriverByName("GPKG")
                self.source = driver.CreateDataSource(str(path))
        except RuntimeError as error:
            raise InputError(f"Cannot open the manifest {path}: {error}") from error
        layer = self.source.GetLayerByName(LAYER)
        if layer is None:
            srs = None
            if crs_wkt:
                srs = osr.SpatialReference()
                srs.ImportFromWkt(crs_wkt)
            layer = self.source.CreateLayer(LAYER, srs=srs, geom_type=ogr.wkbPolygon)
            for name, kind in _FIELDS:
                layer.CreateField(ogr.FieldDefn(name, kind))
        missing = {n for n, _ in _FIELDS} - {
            layer.GetLayerDefn().GetFieldDefn(i).GetName()
            for i in range(layer.GetLayerDefn().GetFieldCount())
        }
        if missing:
            raise InputError(
                f"{path} is not a manifest of this tool (no field {', '.join(sorted(missing))}):"
                " choose another output folder or delete it."
            )
        self.layer = layer

    def close(self) -> None:
        self.layer = None
        if self.source is not None:
            self.source.FlushCache()
        self.source = None

    def records(self) -> dict[str, ChunkRecord]:
        """Every chunk recorded, by id."""
        self.layer.SetAttributeFilter(None)
        self.layer.ResetReading()
        return {record.chunk_id: record for record in map(_record, self.layer)}

    def add_pending(self, job: TilesJob, chunks: Sequence[Chunk]) -> None:
        """Record ``chunks`` (those about to run) as ``pending``, in one transaction, so
        the manifest shows the whole plan from the start. A ``failed`` line of the same
        plan keeps its error until the chunk's new result replaces it; any other line
        (``done`` but stale: other inputs or model, or another plan's chunk with the
        same id) becomes ``pending`` now, so a cancelled run never leaves a ``done``
        line that the mosaic does not hold."""
        known = self.records()
        self.layer.StartTransaction()
        try:
            for chunk in chunks:
                record = known.get(chunk.id)
                keep = (
                    record is not None and record.status != DONE and same_chunk(record, job, chunk)
                )
                if not keep:
                    self._write(job, chunk, PENDING, {})
            self.layer.CommitTransaction()
        except BaseException:
            self.layer.RollbackTransaction()
            raise

    def remove(self, chunk_ids: Iterable[str]) -> None:
        """Delete the lines of ``chunk_ids`` (chunks no longer planned), in one
        transaction (see the module's docstring for why they are not kept)."""
        doomed = set(chunk_ids)
        self.layer.SetAttributeFilter(None)
        self.layer.ResetReading()
        fids = [f.GetFID() for f in self.layer if f.GetFieldAsString("chunk_id") in doomed]
        self.layer.StartTransaction()
        try:
            for fid in fids:
                self.layer.DeleteFeature(fid)
            self.layer.CommitTransaction()
        except BaseException:
            self.layer.RollbackTransaction()
            raise

    def record(self, job: TilesJob, chunk: Chunk, result: ChunkResult) -> None:
        """Record ``result`` of ``chunk``, replacing its line (one transaction)."""
        values = {
            "pixels": result.pixels,
            "seconds": result.seconds,
            "error": result.error,
            "fingerprint": result.fingerprint,
            "class_counts": json.dumps(dict(result.class_counts)),
            "class_areas_m2": json.dumps(dict(result.class_areas_m2)),
            "output": result.output,
            "worker": result.worker,
        }
        self.layer.StartTransaction()
        try:
            self._write(job, chunk, result.status, values)
            self.layer.CommitTransaction()
        except BaseException:
            self.layer.RollbackTransaction()
            raise

    def _write(self, job: TilesJob, chunk: Chunk, status: str, values: dict[str, object]) -> None:
        self.layer.SetAttributeFilter(f"chunk_id = '{chunk.id}'")
        self.layer.ResetReading()
        feature = self.layer.GetNextFeature()
        self.layer.SetAttributeFilter(None)
        new = feature is None
        if new:
            feature = ogr.Feature(self.layer.GetLayerDefn())
        feature.SetGeometry(footprint_polygon(chunk.bounds))
        fields = {
            "chunk_id": chunk.id,
            "status": status,
            "model_sha256": job.model_sha256,
            "parameters": job.parameters_json(),
            "updated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "pixels": 0,
            "seconds": 0.0,
            "error": "",
            "fingerprint": "",
            "class_counts": "{}",
            "class_areas_m2": "{}",
            "output": "",
            "worker": "",
            **values,
        }
        for name, value in fields.items():
            feature.SetField(name, value)
        if new:
            self.layer.CreateFeature(feature)
        else:
            self.layer.SetFeature(feature)


def _record(feature: ogr.Feature) -> ChunkRecord:
    def text(name: str) -> str:
        return feature.GetFieldAsString(name) or ""

    return ChunkRecord(
        chunk_id=text("chunk_id"),
        status=text("status"),
        pixels=feature.GetFieldAsInteger64("pixels"),
        seconds=feature.GetFieldAsDouble("seconds"),
        error=text("error"),
        fingerprint=text("fingerprint"),
        model_sha256=text("model_sha256"),
        parameters=text("parameters"),
        class_counts={int(k): int(v) for k, v in json.loads(text("class_counts") or "{}").items()},
        class_areas_m2={
            int(k): float(v) for k, v in json.loads(text("class_areas_m2") or "{}").items()
        },
        output=text("output"),
        bounds=_bounds(feature.GetGeometryRef()),
    )


def _bounds(geometry: ogr.Geometry | None) -> Bounds:
    """A footprint's (xmin, ymin, xmax, ymax); zeros for a feature without one."""
    if geometry is None or geometry.IsEmpty():
        return (0.0, 0.0, 0.0, 0.0)
    xmin, xmax, ymin, ymax = geometry.GetEnvelope()
    return (xmin, ymin, xmax, ymax)


@contextmanager
def open_manifest(path: str | os.PathLike[str], crs_wkt: str) -> Iterator[Manifest]:
    """The manifest at ``path`` (created when missing), closed at the end of the block."""
    manifest = Manifest(Path(path), crs_wkt)
    try:
        yield manifest
    finally:
        manifest.close()
