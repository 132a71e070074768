# SPDX-License-Identifier: GPL-2.0-or-later
"""Chunks run by a pool of worker processes on this machine (the default executor).

Each worker process loads the model once (``inference.session``'s cache) and runs
chunks one after another. Workers are started with the ``spawn`` method, on a real
Python interpreter: inside QGIS ``sys.executable`` is the QGIS binary, which cannot
run a worker (:func:`worker_python`). The number of workers is chosen from the
physical cores and the memory one worker needs (:func:`choose_workers`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from .chunk_runner import ChunkResult
from .job import Chunk, TilesJob


def worker_python() -> str:
    """The Python interpreter for worker processes: ``sys.executable`` when it is a
    Python, else ``sys._base_executable``, else ``python3`` beside it or in
    ``sys.prefix``'s ``bin``, else ``python3`` on the PATH.

    Raises:
        LandcoverError: no Python interpreter found.
    """
    raise NotImplementedError


def worker_memory_bytes(job: TilesJob) -> int:
    """Memory one worker needs for ``job`` (bytes, estimated): the pipeline's arrays
    for the model's tile and automatic batch (``inference.planning``), the model
    session, and one chunk's output."""
    raise NotImplementedError


def choose_workers(job: TilesJob, chunks: int, requested: int | None = None) -> int:
    """Workers to start: ``requested`` (at least 1), or as many as there are physical
    cores and memory for (each worker's ONNX Runtime then uses cores / workers
    threads), never more than ``chunks``."""
    raise NotImplementedError


class LocalExecutor:
    """:class:`~.executor.ChunkExecutor` over a process pool on this machine.

    Args:
        workers: worker processes, or ``None`` to choose (:func:`choose_workers`).
    """

    def __init__(self, workers: int | None = None) -> None:
        self.workers = workers

    def describe(self) -> str:
        return f"{self.workers or 'automatic'} local worker processes"

    def run(
        self,
        job: TilesJob,
        chunks: Sequence[Chunk],
        on_result: Callable[[ChunkResult], None],
        is_cancelled: Callable[[], bool],
    ) -> None:
        raise NotImplementedError
