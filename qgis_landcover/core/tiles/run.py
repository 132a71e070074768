# SPDX-License-Identifier: GPL-2.0-or-later
"""The driver of a many-tiles job: plan, skip what is done, run the rest, record.

:func:`run_tiles_job` plans the chunks, consults the manifest (chunks done with the
same inputs, model and parameters are skipped), hands the others to an executor,
records each result in the manifest as it arrives, and at the end writes the VRT over
all classified chunks and the areas CSV, atomically.

A re-run in the same output folder with another chunk size, extent or mask plans other
chunks: the manifest rows of the chunks no longer planned are removed and their
GeoTIFFs (with the sidecars GDAL and QGIS keep beside them) deleted from the job's
chunks folder, as is the stale GeoTIFF of a planned chunk about to run again, so the
folder, the manifest and the mosaic all describe the current plan
(:func:`remove_unplanned`).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

from osgeo import gdal

from ..errors import CancelledError, InputError
from ..files.atomic import atomic_output
from ..files.inputs import files_read
from ..files.temporary import with_sidecars
from ..inference.classified_output import NODATA, class_palette, qml_path
from ..models.contract import read_contract
from ..progress import NullProgress, Progress, TimeEstimate
from ..raster.writing import write_qml_paletted
from ..units import format_duration
from .areas import add_areas, area_lines, format_areas, write_areas_csv
from .chunk_runner import ChunkResult
from .executor import ChunkExecutor
from .job import Chunk, TilesJob, plan_chunks
from .manifest import ChunkRecord, in_mosaic, is_finished, open_manifest

gdal.UseExceptions()


@dataclass(frozen=True)
class TilesJobResult:
    """What a job run produced.

    Attributes:
        chunks_total: chunks planned; chunks_done: done in this run;
        chunks_skipped: done before (manifest) and skipped; chunks_failed: failed now;
        chunks_pending: never reported (cancelled), redone on resume.
        pixels_classified: classified pixels of all done chunks (this run and before).
        mosaic: the VRT over the classified chunks (``None`` when no chunk is done).
        manifest: the GeoPackage; areas_csv: the areas CSV (``None`` when no chunk is done).
        seconds: wall time of this run.
        cancelled: the run stopped on a cancel request.
    """

    chunks_total: int
    chunks_done: int
    chunks_skipped: int
    chunks_failed: int
    chunks_pending: int
    pixels_classified: int
    mosaic: Path | None
    manifest: Path
    areas_csv: Path | None
    seconds: float
    cancelled: bool = False


def run_tiles_job(
    job: TilesJob, executor: ChunkExecutor, progress: Progress | None = None
) -> TilesJobResult:
    """Run ``job`` with ``executor``.

    Progress goes 0-100 over the chunks to run; each failed chunk is logged as a
    warning with its message; the class areas are logged at the end. A cancel request
    (``progress.is_cancelled()``) stops scheduling: finished chunks are recorded, the
    mosaic and CSV are written over what is done, and :class:`~..errors.CancelledError`
    is raised.

    Raises:
        InputError: nothing to classify (no chunk planned); CancelledError: cancelled.
    """
    progress = progress or NullProgress()
    started = time.perf_counter()
    chunks = plan_chunks(job)
    if not chunks:
        raise InputError("No chunk to classify: the extent or mask leaves nothing.")
    by_id = {chunk.id: chunk for chunk in chunks}
    reported: dict[str, ChunkResult] = {}
    with open_manifest(job.manifest_path, job.crs_wkt) as manifest:
        records = manifest.records()
        todo = [c for c in chunks if not is_finished(records.get(c.id), job, c)]
        skipped = len(chunks) - len(todo)
        unplanned = sorted(set(records) - set(by_id))
        manifest.remove(unplanned)
        manifest.add_pending(job, todo)
        remove_unplanned(job, chunks, todo, unplanned, progress)
        progress.info(
            f"{len(chunks)} chunks of {job.chunk_size} px: {skipped} already done "
            f"(manifest {job.manifest_path.name}), {len(todo)} to run on "
            f"{executor.describe()}."
        )
        estimate = TimeEstimate(len(todo), "chunks", progress)

        def on_result(result: ChunkResult) -> None:
            chunk = by_id.get(result.chunk_id)
            if chunk is None or result.chunk_id in reported:
                return  # a duplicate (a chunk re-run elsewhere) or not this job's
            reported[result.chunk_id] = result
            manifest.record(job, chunk, result)
            if not result.ok:
                progress.warning(f"Chunk {chunk.id} failed: {result.error}")
            progress.set_progress(100.0 * len(reported) / len(todo))
            estimate.update(len(reported))

        if todo:
            executor.run(job, todo, on_result, progress.is_cancelled)
        records = manifest.records()
    done_now = sum(1 for r in reported.values() if r.ok)
    failed = len(reported) - done_now
    pending = len(todo) - len(reported)
    finished = [c for c in chunks if in_mosaic(records.get(c.id), job, c)]
    mosaic = write_output_mosaic(job, finished) if finished else None
    areas_csv = write_job_areas(job, finished, records, progress) if finished else None
    result = TilesJobResult(
        chunks_total=len(chunks),
        chunks_done=done_now,
        chunks_skipped=skipped,
        chunks_failed=failed,
        chunks_pending=pending,
        pixels_classified=sum(records[c.id].pixels for c in finished),
        mosaic=mosaic,
        manifest=job.manifest_path,
        areas_csv=areas_csv,
        seconds=time.perf_counter() - started,
        cancelled=pending > 0 and progress.is_cancelled(),
    )
    progress.info(
        f"Chunks: {done_now} done, {skipped} skipped (done before), {failed} failed, "
        f"{pending} not run; {result.pixels_classified:,} pixels classified in "
        f"{format_duration(result.seconds)}."
    )
    if result.cancelled:
        raise CancelledError(
            f"Cancelled by the user after {done_now} of {len(todo)} chunks; run the same "
            "job again to finish it (done chunks are skipped)."
        )
    return result


CHUNK_FILE = re.compile(r"^(r\d+_c\d+)\.tif$")
"""The name of a chunk's GeoTIFF in the chunks folder (:func:`~.job.plan_chunks`)."""


def remove_unplanned(
    job: TilesJob,
    chunks: Sequence[Chunk],
    todo: Sequence[Chunk],
    unplanned: Sequence[str],
    progress: Progress,
) -> list[Path]:
    """Delete the chunk GeoTIFFs that are not part of the current plan's result, with
    their sidecars (``.aux.xml``, ``.ovr``, ``.msk``, ``.qml``), and log what went.

    They are: the files of the ``unplanned`` chunk ids (rows of an earlier plan), any
    other chunk-named file (``r{row}_c{col}.tif``) of an id not planned now, and the
    existing file of each chunk in ``todo`` (from another plan, model or inputs: it
    is rewritten when the chunk runs, and must not linger if the run is cancelled).
    Only the job's own chunks folder is touched, only chunk-named files and their
    sidecars, and never a file the job's inputs read (its input mosaic, recursively,
    and its model; :func:`~..files.inputs.files_read`). Returns the deleted files.
    """
    if unplanned:
        progress.info(
            f"Removed the manifest rows of {len(unplanned)} chunks no longer planned "
            "(another chunk size, extent or mask)."
        )
    folder = job.chunks_folder
    planned = {chunk.id for chunk in chunks}
    ids = set(unplanned) | {chunk.id for chunk in todo}
    if folder.is_dir():
        for path in folder.iterdir():
            match = CHUNK_FILE.match(path.name)
            if match and match.group(1) not in planned:
                ids.add(match.group(1))
    outputs = [folder / f"{chunk_id}.tif" for chunk_id in sorted(ids)]
    candidates = [
        path
        for output in outputs
        for path in (*with_sidecars(output), qml_path(output))
        if path.is_file() or path.is_symlink()
    ]
    if not candidates:
        return []
    read = {
        os.path.realpath(file.path)
        for source in (job.mosaic, job.model)
        for file in files_read(source)
    }
    removed, kept = [], []
    for path in candidates:
        if os.path.realpath(path) in read:
            kept.append(path)
            continue
        with suppress(OSError):
            path.unlink()
        (kept if os.path.lexists(path) else removed).append(path)
    if removed:
        names = sorted(p.name for p in removed)
        progress.info(
            f"Deleted {len(removed)} stale chunk files (not planned now, or about to be "
            f"redone) from {folder}: {', '.join(names[:10])}{' ...' if len(names) > 10 else ''}."
        )
    if kept:
        progress.warning(
            f"Kept {len(kept)} stale files in {folder} (an input reads them or they could "
            f"not be deleted): {', '.join(p.name for p in kept[:10])}"
        )
    return removed


def write_output_mosaic(job: TilesJob, chunks: Sequence[Chunk]) -> Path:
    """Write the VRT over the classified ``chunks`` (paths relative to it, so the
    output folder can be moved) on the job's whole grid, with the model's style
    (``.qml``) beside it; atomically."""
    target = job.output_mosaic
    bounds = job.grid.bounds
    with atomic_output(target) as temporary:
        vrt = gdal.BuildVRT(
            str(temporary),
            [c.output for c in chunks],
            outputBounds=bounds,
            resolution="user",
            xRes=job.grid.resolution[0],
            yRes=job.grid.resolution[1],
            srcNodata=NODATA,
            VRTNodata=NODATA,
        )
        if vrt is None:
            raise InputError(f"GDAL could not build the mosaic {target}.")
        vrt.FlushCache()
        vrt = None
    colors, names = class_palette(read_contract(job.model))
    write_qml_paletted(qml_path(target), colors, names)
    return target


def write_job_areas(
    job: TilesJob,
    chunks: Sequence[Chunk],
    records: dict[str, ChunkRecord],
    progress: Progress,
) -> Path:
    """Write the areas CSV (each chunk, then the total) and log the total."""
    names = dict(job.class_names)
    lines = []
    total: dict[int, tuple[int, float]] = {}
    for chunk in chunks:
        record = records[chunk.id]
        areas = {
            value: (record.class_counts.get(value, 0), area)
            for value, area in record.class_areas_m2.items()
        }
        add_areas(total, areas)
        lines += area_lines(chunk.id, areas, names)
    totals = area_lines("total", total, names)
    path = write_areas_csv(job.areas_path, [*lines, *totals])
    progress.info("Class areas over the done chunks:\n" + format_areas(totals))
    return path
