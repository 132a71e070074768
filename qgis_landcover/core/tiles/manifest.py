# SPDX-License-Identifier: GPL-2.0-or-later
"""The job's manifest: a GeoPackage with one polygon feature per chunk.

Fields: chunk id, footprint (the chunk's bounds in the mosaic's CRS), status
(``pending`` / ``done`` / ``failed``), pixels, seconds, error, input fingerprint, model
SHA-256, parameters JSON, class counts and areas JSON, the worker and the time. Only
the driver process writes it (workers return results), one transaction per result, so
an interrupted job knows what is done (SQLite keeps each transaction whole). A chunk is
skipped on resume only when it is ``done`` with the same fingerprint, model and
parameters and its GeoTIFF exists (:func:`is_finished`); anything else is redone.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from osgeo import gdal, ogr, osr

from ..errors import InputError
from .chunk_runner import DONE, ChunkResult, input_fingerprint
from .job import Chunk, TilesJob, footprint_polygon

gdal.UseExceptions()
ogr.UseExceptions()
osr.UseExceptions()

PENDING = "pending"
LAYER = "chunks"

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


def is_finished(record: ChunkRecord | None, job: TilesJob, chunk: Chunk) -> bool:
    """True when ``chunk`` need not run again: done, with the same inputs (paths,
    sizes, modification times), model and parameters, and its GeoTIFF still there."""
    return (
        record is not None
        and record.status == DONE
        and record.model_sha256 == job.model_sha256
        and record.parameters == job.parameters_json()
        and record.fingerprint == input_fingerprint(chunk)
        and Path(chunk.output).is_file()
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
        """Record ``chunks`` as ``pending`` (before they run), in one transaction, so
        the manifest shows the whole plan from the start; a chunk already recorded keeps
        its line until its new result replaces it."""
        known = set(self.records())
        self.layer.StartTransaction()
        try:
            for chunk in chunks:
                if chunk.id not in known:
                    self._write(job, chunk, PENDING, {})
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
    )


@contextmanager
def open_manifest(path: str | os.PathLike[str], crs_wkt: str) -> Iterator[Manifest]:
    """The manifest at ``path`` (created when missing), closed at the end of the block."""
    manifest = Manifest(Path(path), crs_wkt)
    try:
        yield manifest
    finally:
        manifest.close()
