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

from dataclasses import dataclass

from .job import Chunk, TilesJob

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
    raise NotImplementedError


def failed_result(job: TilesJob, chunk: Chunk, error: str, seconds: float = 0.0) -> ChunkResult:
    """The result of ``chunk`` failing with ``error`` (a message for the user): for
    executors whose task died outside :func:`run_chunk` (a lost worker, a killed
    process), so the driver records it like any other failure."""
    raise NotImplementedError


def run_chunk(job: TilesJob, chunk: Chunk) -> ChunkResult:
    """Classify ``chunk`` of ``job`` into ``chunk.output``; never raises for bad data.

    Idempotent: running a chunk twice (a retry after a lost worker) writes the same
    file, replaced atomically. ``KeyboardInterrupt`` / ``SystemExit`` propagate.
    """
    raise NotImplementedError
