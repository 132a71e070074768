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
        self,
        job: TilesJob,
        chunks: Sequence[Chunk],
        on_result: Callable[[ChunkResult], None],
        is_cancelled: Callable[[], bool],
    ) -> None: ...

    def describe(self) -> str:
        """One line for the log: what runs the chunks (e.g. "4 local worker processes")."""
        ...
