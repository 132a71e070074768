# SPDX-License-Identifier: GPL-2.0-or-later
"""The many-tiles job on Dask distributed: the same chunks as the local executor, each
one task (:func:`~.chunk_runner.run_chunk`) submitted to a Dask scheduler.

``address`` ``None`` (or ``local-dask``) starts a ``LocalCluster`` of worker processes
with one thread each on this machine; any other address (``tcp://host:8786``, a
scheduler started by ``dask-scheduler``, the dask Helm chart, dask-kubernetes or
dask-jobqueue) connects to that cluster, whose workers must see the inputs, the model
and the output folder at the same paths (shared storage).

Why results stay complete and single when a worker dies: the scheduler re-runs a lost
worker's chunk on another worker (and an exception raised by the task ``retries``
times); a chunk's GeoTIFF is renamed into place only when complete (the killed
process's temporary file is removed by the re-run, :mod:`..files.temporary`), and only
this driver records results (``on_result`` -> the manifest), once per chunk: the first
result of a chunk is taken, nothing else is ever recorded for it.

Each worker process loads the model once: :func:`~.chunk_runner.run_chunk` keeps its
ONNX Runtime session per process (:func:`..inference.session.load_session`'s cache).

dask is optional (``pip install "dask[distributed]"``): it is imported only when this
executor runs, with a message saying so when it is missing.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from ..errors import InputError
from ..files.temporary import remove_stale_in
from .chunk_runner import ChunkResult, failed_result, run_chunk
from .executor import CancelCheck, ChunkTask, OnResult
from .job import Chunk, TilesJob
from .local_executor import core_groups, spawn_context, start_workers

LOCAL_DASK = "local-dask"
"""The ``SCHEDULER`` value (and ``address``) for a Dask ``LocalCluster`` on this machine."""

CONNECT_TIMEOUT_SECONDS = 30.0
"""How long to wait for a remote scheduler before giving up with a message."""

RETRIES = 2
"""Extra attempts of a chunk whose task raised (``run_chunk`` itself returns failed
results for bad data; this covers errors around it). A chunk whose worker died is run
again by the scheduler itself, up to ``distributed.scheduler.allowed-failures`` (3)
times, then reported failed (``KilledWorker``)."""

POLL_SECONDS = 0.1
"""How often the driver checks for cancellation while no chunk finishes."""


def _distributed() -> Any:
    """``distributed``, or an :class:`InputError` saying how to install it."""
    try:
        import distributed
    except ImportError as error:
        raise InputError(
            "A Dask scheduler was asked for, but the Python package dask[distributed] is not "
            "installed in this Python: install it (pip install 'dask[distributed]'), or leave "
            "the scheduler empty to use local worker processes."
        ) from error
    return distributed


def is_local(address: str | None) -> bool:
    """Whether ``address`` asks for a ``LocalCluster`` (empty or ``local-dask``)."""
    return address is None or address.strip().lower() in ("", LOCAL_DASK)


def local_cluster_options(workers: int) -> dict[str, Any]:
    """``LocalCluster`` arguments for ``workers`` worker processes x 1 thread: no
    dashboard, and the scheduler's HTTP server on a free port (by default it takes
    8787, or warns when another cluster has it), Dask's own logs at errors only."""
    return {
        "n_workers": workers,
        "threads_per_worker": 1,
        "processes": True,
        "dashboard_address": None,
        "scheduler_kwargs": {"dashboard": False, "dashboard_address": ":0"},
        "silence_logs": logging.ERROR,
    }


def run_in_worker(
    task: ChunkTask, job: TilesJob, chunk: Chunk, groups: Sequence[Sequence[int]]
) -> ChunkResult:
    """The Dask task: pin this worker's thread to its share of the cores (LocalCluster
    on Linux: ``groups[worker name]``), then run ``task``. The model session is created
    on this thread by the first chunk, so its ONNX Runtime threads (one per physical
    core this thread may use) inherit the share and two workers do not fight for cores."""
    if groups:
        from distributed import get_worker

        name = get_worker().name
        index = name if isinstance(name, int) else abs(hash(str(name)))
        with contextlib.suppress(AttributeError, OSError):
            os.sched_setaffinity(0, groups[index % len(groups)])
    return task(job, chunk)


class DaskExecutor:
    """Runs chunks as Dask tasks (the :class:`~.executor.ChunkExecutor` protocol).

    Args:
        address: a scheduler address (``tcp://host:8786``), or ``None`` /
            ``local-dask`` for a ``LocalCluster`` of worker processes x 1 thread.
        workers: the LocalCluster's worker processes; ``None``: chosen from cores and
            memory like the local executor (:func:`~.local_executor.choose_workers`).
            A remote cluster has the workers it has.
        connect_timeout: seconds to wait for a remote scheduler.
        task: the function run per chunk, :func:`~.chunk_runner.run_chunk`; tests pass
            a wrapper (it must be importable by the workers).
    """

    def __init__(
        self,
        address: str | None = None,
        workers: int | None = None,
        *,
        connect_timeout: float = CONNECT_TIMEOUT_SECONDS,
        task: ChunkTask = run_chunk,
    ) -> None:
        self.address = None if is_local(address) else str(address).strip()
        if workers is not None and workers < 0:
            raise InputError(f"The number of Dask workers must be positive, got {workers}.")
        self.workers = workers or None
        self.started_workers = 0
        self.connect_timeout = connect_timeout
        self.task = task

    def describe(self) -> str:
        """The executor in words, for the log."""
        if self.address is None:
            count = self.started_workers or self.workers
            if count:
                return f"a Dask LocalCluster of {count} worker processes x 1 thread"
            return "a Dask LocalCluster (worker processes x 1 thread, from cores and memory)"
        return f"the Dask scheduler {self.address}"

    def run(
        self, job: TilesJob, chunks: Sequence[Chunk], on_result: OnResult, is_cancelled: CancelCheck
    ) -> None:
        """Run ``chunks``; call ``on_result`` here, in the driver, once per chunk as each
        finishes (in any order). When ``is_cancelled()`` turns true, the chunks not yet
        finished are cancelled and the call returns: a LocalCluster is closed (its
        workers stopped) and their temporary files removed; a remote cluster's running
        chunks finish on their own, each writing its file whole or not at all."""
        if not chunks:
            return
        distributed = _distributed()
        if self.address is not None:
            with self._remote_client(distributed) as client:
                self._submit_and_gather(client, job, chunks, (), on_result, is_cancelled)
            return
        workers, job = start_workers(job, len(chunks), self.workers)
        self.started_workers = workers
        spawn_context()  # Dask's nannies spawn their workers: a real Python runs them
        try:
            with (
                distributed.LocalCluster(**local_cluster_options(workers)) as cluster,
                distributed.Client(cluster) as client,
            ):
                self._submit_and_gather(
                    client, job, chunks, core_groups(workers), on_result, is_cancelled
                )
        finally:
            # Every worker process is gone: a file one was writing when it was killed
            # or stopped (cancel) is not a chunk's output.
            remove_stale_in(job.chunks_folder)

    @contextmanager
    def _remote_client(self, distributed: Any) -> Iterator[Any]:
        """A client of the remote scheduler, or an :class:`InputError` when it cannot
        be reached within :attr:`connect_timeout` seconds."""
        try:
            client = distributed.Client(self.address, timeout=self.connect_timeout)
        except (OSError, ValueError, TimeoutError) as error:
            raise InputError(
                f"Cannot reach the Dask scheduler {self.address} within "
                f"{self.connect_timeout:g} s ({error}): check the address (tcp://host:8786) "
                "and that the scheduler runs and is reachable from this machine."
            ) from error
        with client:
            yield client

    def _submit_and_gather(
        self,
        client: Any,
        job: TilesJob,
        chunks: Sequence[Chunk],
        groups: Sequence[Sequence[int]],
        on_result: OnResult,
        is_cancelled: CancelCheck,
    ) -> None:
        distributed = _distributed()
        # The job (its list of inputs can be long) travels once, not with every chunk.
        [shared_job] = client.scatter([job], broadcast=True, hash=False)
        futures = {
            client.submit(
                run_in_worker,
                self.task,
                shared_job,
                chunk,
                [list(group) for group in groups],
                pure=False,
                retries=RETRIES,
                key=f"landcover-chunk-{chunk.id}-{os.urandom(4).hex()}",
            ): chunk
            for chunk in chunks
        }
        finished = distributed.as_completed(list(futures))
        while not finished.is_empty():
            if is_cancelled():
                client.cancel(list(futures))
                return
            batch = finished.next_batch(block=False)
            if not batch:
                time.sleep(POLL_SECONDS)
                continue
            for future in batch:
                on_result(_result(future, futures.pop(future), job))


def _result(future: Any, chunk: Chunk, job: TilesJob) -> ChunkResult:
    """The chunk's result, or a failed result saying why its task failed (its worker
    died too often: ``KilledWorker``; an error around ``run_chunk``)."""
    try:
        result: ChunkResult = future.result()
    except Exception as error:  # any failure of the task is this chunk's
        text = str(error).strip()
        return failed_result(
            job, chunk, f"The Dask task failed: {type(error).__name__}{': ' + text if text else ''}"
        )
    return result
