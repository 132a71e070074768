# SPDX-License-Identifier: GPL-2.0-or-later
"""Chunks run by a pool of worker processes on this machine (the default executor).

Each worker process loads the model once (``inference.session``'s cache) and runs
chunks one after another. Workers are started with the ``spawn`` method (no forked
copy of QGIS's threads and GDAL caches) on a real Python interpreter: inside QGIS
``sys.executable`` is the QGIS binary, which cannot run a worker
(:func:`worker_python`). The number of workers is chosen from the physical cores and
the memory one worker needs (:func:`choose_workers`); on Linux each worker is pinned
to its own share of the cores, so its ONNX Runtime session (one intra-op thread per
physical core it may run on) does not fight the others for them.

A worker that dies (killed, out of memory) breaks the pool, and which running chunk
killed it is unknown: the chunks that were running are run again in a new pool, each
on its own first, and a chunk whose worker dies also then is recorded as failed.

Cancelling stops scheduling and terminates the workers: their temporary files are
deleted by their SIGTERM handler (:mod:`..files.temporary`), and whatever a killed
worker left is deleted once all workers are gone, so no partial output is ever left
under a chunk's name, nor beside it.
"""

from __future__ import annotations

import concurrent.futures as futures
import contextlib
import multiprocessing
import os
import queue
import shutil
import sys
import time
from collections.abc import Sequence
from concurrent.futures.process import BrokenProcessPool
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..errors import LandcoverError
from ..files.temporary import remove_stale_in
from ..inference.planning import (
    CPU_BATCH_SIZE,
    CPU_STRIPE_WIDTH,
    MEMORY_FRACTION,
    physical_memory_bytes,
    pipeline_memory_bytes,
)
from ..inference.session import CPU, available_providers, physical_core_count
from ..models.contract import read_contract
from .chunk_runner import ChunkResult, failed_result, run_chunk
from .executor import CancelCheck, ChunkTask, OnResult
from .job import Chunk, TilesJob

SESSION_OVERHEAD_BYTES = 300 * 1024**2
"""ONNX Runtime, GDAL and Python in a worker before any array (measured: a worker
process with the 2018 U-Net session loaded holds about 250 MB RSS)."""

POLL_SECONDS = 0.2
"""How often the driver looks at the cancel flag while chunks run."""


def _is_python(path: str | os.PathLike[str] | None) -> bool:
    if not path:
        return False
    candidate = Path(path)
    return (
        candidate.name.lower().startswith("python")
        and candidate.is_file()
        and os.access(candidate, os.X_OK)
    )


def worker_python() -> str:
    """The Python interpreter for worker processes: ``sys.executable`` when it is a
    Python, else ``sys._base_executable``, else ``pythonX.Y`` / ``python3`` /
    ``python`` in ``sys.prefix`` (``bin/`` on Unix), else on the PATH. Same version as
    this one: the workers get this process's ``sys.path`` and import the same packages.

    Raises:
        LandcoverError: no Python interpreter found.
    """
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    if _is_python(sys.executable):
        return sys.executable
    base = getattr(sys, "_base_executable", None)
    if _is_python(base):
        return str(base)
    names = (f"python{version}", "python3", "python", "python.exe")
    for prefix in dict.fromkeys((sys.prefix, sys.exec_prefix, sys.base_prefix)):
        for folder in (Path(prefix) / "bin", Path(prefix)):
            for name in names:
                if _is_python(folder / name):
                    return str(folder / name)
    for name in names[:2]:
        found = shutil.which(name)
        if _is_python(found):
            return str(found)
    raise LandcoverError(
        f"No Python {version} interpreter found to start worker processes "
        f"({sys.executable} is not one); give 1 worker or use the command line tool."
    )


def worker_memory_bytes(job: TilesJob) -> int:
    """Memory one worker needs for ``job`` (bytes, estimated): the pipeline's arrays
    for the model's tile and the CPU's automatic batch (``inference.planning``), the
    model (three times its file: the graph, its optimised copy, the weights), the
    session and libraries (:data:`SESSION_OVERHEAD_BYTES`), and one chunk's output
    counted twice (the raw classification and its copy)."""
    contract = read_contract(job.model)
    options = job.options
    tile = options.tile_size or contract.tile_size
    pipeline = pipeline_memory_bytes(
        tile_size=tile,
        margin=contract.output_margin,
        bands=contract.num_bands,
        classes=contract.num_classes,
        batch_size=options.batch_size or CPU_BATCH_SIZE,
        # No stripe width given: the CPU's automatic one is about CPU_STRIPE_WIDTH.
        stripe_width=min(options.stripe_width or CPU_STRIPE_WIDTH, job.chunk_size),
    )
    model = 3 * Path(job.model).stat().st_size
    return pipeline + model + SESSION_OVERHEAD_BYTES + 2 * job.chunk_size**2


def uses_gpu(device: str) -> bool:
    """Whether ``device`` runs the model on a GPU here (``auto`` with a GPU provider)."""
    if device in ("cuda", "tensorrt"):
        return True
    return device == "auto" and any(p != CPU for p in available_providers())


def choose_workers(job: TilesJob, chunks: int, requested: int | None = None) -> int:
    """Workers to start: ``requested`` (at least 1), else one on a GPU (one device
    runs one model at a time), else as many as there are physical cores and memory
    (:data:`~..inference.planning.MEMORY_FRACTION` of it) for; never more than
    ``chunks``."""
    if requested:
        return max(1, min(requested, chunks))
    if uses_gpu(job.device):
        return 1
    cores = physical_core_count()
    memory = physical_memory_bytes()
    need = worker_memory_bytes(job)
    by_memory = cores if memory is None else int(MEMORY_FRACTION * memory // need)
    return max(1, min(cores, by_memory, chunks))


def with_memory_share(job: TilesJob, workers: int) -> TilesJob:
    """``job`` with each of ``workers`` CPU workers on this machine limited to its share
    of the memory, unless a limit was given or the model runs on a GPU."""
    if job.options.memory_limit_bytes is not None or uses_gpu(job.device):
        return job
    memory = physical_memory_bytes()
    if memory is None:
        return job
    share = int(MEMORY_FRACTION * memory / workers)
    return replace(job, options=replace(job.options, memory_limit_bytes=share))


def start_workers(job: TilesJob, chunks: int, requested: int | None) -> tuple[int, TilesJob]:
    """Workers to start for ``chunks`` chunks (:func:`choose_workers`) and ``job`` with
    each one's memory share (:func:`with_memory_share`): what every executor that starts
    worker processes on this machine does first."""
    workers = choose_workers(job, chunks, requested)
    return workers, with_memory_share(job, workers)


def spawn_context() -> multiprocessing.context.SpawnContext:
    """The ``spawn`` start method, its workers run by :func:`worker_python`: inside QGIS
    ``sys.executable`` is the QGIS binary, which cannot run one. (The executable is the
    start method's own setting: Dask's nannies spawn theirs with it too.)"""
    context = multiprocessing.get_context("spawn")
    python = worker_python()
    if python != sys.executable:
        context.set_executable(python)
    return context


def core_groups(workers: int) -> list[list[int]]:
    """The CPUs this process may use, split into ``workers`` groups of whole physical
    cores (hyperthread siblings together), cores dealt round-robin; an empty list where
    affinity cannot be read or set (not Linux) or cores are fewer than workers."""
    try:
        allowed = sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return []
    cores: dict[tuple[str, str], list[int]] = {}
    for cpu in allowed:
        topology = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology")
        try:
            key = (
                (topology / "physical_package_id").read_text().strip(),
                (topology / "core_id").read_text().strip(),
            )
        except OSError:
            key = ("", str(cpu))
        cores.setdefault(key, []).append(cpu)
    if len(cores) < workers:
        return []
    groups: list[list[int]] = [[] for _ in range(workers)]
    for index, cpus in enumerate(cores.values()):
        groups[index % workers].extend(cpus)
    return groups


def _init_worker(groups: Any) -> None:
    """Worker start: take one group of cores (Linux) so this worker's ONNX Runtime
    threads match its share of the machine."""
    try:
        cpus = groups.get_nowait()
    except queue.Empty:  # more workers started than groups (a replaced worker): unpinned
        return
    with contextlib.suppress(AttributeError, OSError):
        os.sched_setaffinity(0, cpus)


class InProcessExecutor:
    """Runs the chunks one after another in this process: tests, debugging, and
    callers that already run in a worker of their own.

    Args:
        task: the function run per chunk (:func:`~.chunk_runner.run_chunk`).
    """

    def __init__(self, task: ChunkTask = run_chunk) -> None:
        self.task = task

    def describe(self) -> str:
        return "this process"

    def run(
        self, job: TilesJob, chunks: Sequence[Chunk], on_result: OnResult, is_cancelled: CancelCheck
    ) -> None:
        for chunk in chunks:
            if is_cancelled():
                return
            on_result(self.task(job, chunk))


class LocalExecutor:
    """:class:`~.executor.ChunkExecutor` over a pool of worker processes here.

    Args:
        workers: worker processes, or ``None`` to choose (:func:`choose_workers`).
        task: the function run per chunk (:func:`~.chunk_runner.run_chunk`; tests pass
            a top-level wrapper, e.g. one that kills its worker).
    """

    def __init__(self, workers: int | None = None, task: ChunkTask = run_chunk) -> None:
        if workers is not None and workers < 0:
            raise LandcoverError(f"The number of workers must be positive, got {workers}.")
        self.workers = workers or None
        self.task = task
        self.started_workers = 0

    def describe(self) -> str:
        count = self.started_workers or self.workers
        return f"{count} local worker processes" if count else "local worker processes"

    def run(
        self, job: TilesJob, chunks: Sequence[Chunk], on_result: OnResult, is_cancelled: CancelCheck
    ) -> None:
        if not chunks:
            return
        workers, job = start_workers(job, len(chunks), self.workers)
        self.started_workers = workers
        todo: list[Chunk] = list(chunks)
        suspects: list[Chunk] = []
        try:
            while (todo or suspects) and not is_cancelled():
                todo, suspects = self._run_pool(
                    job, todo, suspects, workers, on_result, is_cancelled
                )
        finally:
            # Every worker is gone now: what a terminated or killed one was writing
            # (a temporary chunk, its style) is deleted, whatever signal stopped it.
            remove_stale_in(job.chunks_folder)

    def _run_pool(
        self,
        job: TilesJob,
        todo: list[Chunk],
        suspects: list[Chunk],
        workers: int,
        on_result: OnResult,
        is_cancelled: CancelCheck,
    ) -> tuple[list[Chunk], list[Chunk]]:
        """Run ``suspects`` one at a time, then ``todo``, in one pool; return what is
        left for a new pool when a worker died (chunks not started, and the chunks that
        were running then, now suspects), or two empty lists."""
        context = spawn_context()
        groups = context.Queue()
        for group in core_groups(workers):
            groups.put(group)
        pool = futures.ProcessPoolExecutor(
            max_workers=workers, mp_context=context, initializer=_init_worker, initargs=(groups,)
        )
        pending, suspects = list(todo), list(suspects)
        running: dict[futures.Future[ChunkResult], Chunk] = {}
        alone = False  # the one chunk running is a suspect, run on its own
        try:
            while pending or suspects or running:
                if is_cancelled():
                    _terminate(pool)
                    return [], []
                if suspects:
                    if not running:
                        chunk = suspects.pop(0)
                        running[pool.submit(self.task, job, chunk)] = chunk
                        alone = True
                else:
                    # At most two chunks per worker submitted: a cancel stops
                    # scheduling at once, and a lost worker takes few chunks with it.
                    while pending and len(running) < 2 * workers:
                        chunk = pending.pop(0)
                        running[pool.submit(self.task, job, chunk)] = chunk
                        alone = False
                done, _ = futures.wait(
                    running, timeout=POLL_SECONDS, return_when=futures.FIRST_COMPLETED
                )
                lost: list[Chunk] = []
                for future in done:
                    chunk = running.pop(future)
                    try:
                        result = future.result()
                    except BrokenProcessPool:
                        lost.append(chunk)
                        continue
                    on_result(result)
                if not lost:
                    continue
                lost += running.values()
                running.clear()
                if alone and len(lost) == 1:
                    on_result(failed_result(job, lost[0], LOST_ALONE))
                    return pending, suspects
                # A worker died with several chunks running: which one killed it is
                # unknown, so each runs again on its own before the others resume.
                return pending, suspects + lost
            return [], []
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            groups.close()


LOST_ALONE = (
    "The worker process running this chunk died (out of memory, or killed), also when "
    "the chunk ran on its own."
)


def _terminate(pool: futures.ProcessPoolExecutor) -> None:
    """Stop ``pool`` now: queued chunks are dropped, running ones abandoned (their
    workers get SIGTERM, which deletes their temporary files)."""
    processes = list(getattr(pool, "_processes", {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        if process.is_alive():
            process.kill()
    deadline = time.monotonic() + 10.0
    for process in processes:
        process.join(max(0.0, deadline - time.monotonic()))
        if process.is_alive():
            process.kill()
