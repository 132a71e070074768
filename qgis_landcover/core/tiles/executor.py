# SPDX-License-Identifier: GPL-2.0-or-later
"""How chunks get run: one protocol, several executors.

An executor runs :func:`~.chunk_runner.run_chunk` for each chunk somewhere (worker
processes on this machine, :class:`~.local_executor.LocalExecutor`; a Dask cluster,
``dask_executor.DaskExecutor``) and hands every :class:`~.chunk_runner.ChunkResult`
back to the driver, on the driver's thread, through ``on_result``. Only the driver
writes the manifest and the job's mosaic; workers only write their chunk's GeoTIFF
(atomically), so a chunk run twice (a lost worker, a retry) writes the same file twice
and is recorded once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from .chunk_runner import ChunkResult
from .job import Chunk, TilesJob

ChunkTask = Callable[[TilesJob, Chunk], ChunkResult]
"""What an executor runs per chunk: :func:`~.chunk_runner.run_chunk`, or in tests a
top-level wrapper of it (importable by the workers)."""

OnResult = Callable[[ChunkResult], None]
"""``on_result``: takes each finished chunk's result, on the driver's thread."""

CancelCheck = Callable[[], bool]
"""``is_cancelled``: true once the user asked to stop (the progress's ``is_cancelled``)."""


class ChunkExecutor(Protocol):
    """Runs chunks of a job and reports each result.

    ``run`` returns when every chunk has a result, or soon after ``is_cancelled()``
    turns true: it then submits nothing more, and either waits for the running chunks
    or abandons them (a worker killed mid-chunk leaves no partial file: outputs are
    written atomically). Results of chunks that finished are still reported; chunks
    never reported stay unfinished in the manifest and run on resume.

    ``on_result`` is called on the thread that called ``run``, once per chunk that
    finished (done or failed). ``run`` raises only for a failure of the executor
    itself (no worker could start, the cluster is unreachable), as a
    :class:`~..errors.LandcoverError` with a message for the user; a chunk's own
    failure is a result with ``status == "failed"``.
    """

    def run(
        self, job: TilesJob, chunks: Sequence[Chunk], on_result: OnResult, is_cancelled: CancelCheck
    ) -> None: ...

    def describe(self) -> str:
        """One line for the log: what runs the chunks (e.g. "4 local worker processes")."""
        ...


LOCAL_SCHEDULERS = ("", "local")
"""Scheduler values naming worker processes here (:class:`~.local_executor.LocalExecutor`)."""


def executor_for(scheduler: str | None, workers: int | None = None) -> ChunkExecutor:
    """The executor a scheduler value names (``SCHEDULER``, ``--scheduler``): empty or
    ``local``: worker processes here; ``local-dask``: a Dask ``LocalCluster`` here; any
    other value: the address of a Dask scheduler (``tcp://host:8786``). Dask is
    imported only when the chunks run (a message says how to install it if missing).

    Args:
        workers: worker processes on this machine, ``None`` to choose from cores and
            memory (a remote Dask cluster has the workers it has).
    """
    text = (scheduler or "").strip()
    if text.lower() in LOCAL_SCHEDULERS:
        from .local_executor import LocalExecutor

        return LocalExecutor(workers)
    from .dask_executor import DaskExecutor

    return DaskExecutor(text, workers)
