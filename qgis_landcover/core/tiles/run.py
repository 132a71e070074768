# SPDX-License-Identifier: GPL-2.0-or-later
"""The driver of a many-tiles job: plan, skip what is done, run the rest, record.

:func:`run_tiles_job` plans the chunks, consults the manifest (chunks done with the
same inputs, model and parameters are skipped), hands the others to an executor,
records each result in the manifest as it arrives, and at the end writes the VRT over
all classified chunks and the areas CSV, atomically.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..progress import Progress
from .executor import ChunkExecutor
from .job import TilesJob


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
    """
    raise NotImplementedError
