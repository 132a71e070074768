# SPDX-License-Identifier: GPL-2.0-or-later
"""The many-tiles job on Dask distributed, with real clusters of 2 worker processes:
the mosaic equals the same area classified as one raster (a scheduler given by its
address, as a cluster's would be), a worker killed mid-chunk (after its chunk's file
was written, before it was renamed into place) loses and duplicates nothing and leaves
no partial file, a cancel stops the job cleanly, and an unreachable scheduler or a
missing dask is a message."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path
from typing import Any

import distributed  # a test requirement (requirements-plugin.txt), not the plugin's
import numpy as np
import pytest
from osgeo import ogr

from qgis_landcover.core.errors import CancelledError, InputError
from qgis_landcover.core.tiles.chunk_runner import ChunkResult, run_chunk
from qgis_landcover.core.tiles.dask_executor import DaskExecutor, local_cluster_options
from qgis_landcover.core.tiles.executor import executor_for
from qgis_landcover.core.tiles.job import Chunk, TilesJob, build_job, plan_chunks
from qgis_landcover.core.tiles.local_executor import LocalExecutor
from qgis_landcover.core.tiles.run import run_tiles_job
from qgis_landcover.tiles.__main__ import main

from .conftest import CancelAfter, leftovers, one_raster, read

CHUNK = 100  # rounded down to 90: 4 x 3 chunks over the 320 x 240 px test area
KILLED = "killed-worker-pid"


def manifest_rows(path: Path) -> list[tuple[str, str, str]]:
    """(chunk id, status, worker) of every feature of the manifest."""
    source = ogr.Open(str(path))
    return [
        (f.GetField("chunk_id"), f.GetField("status"), f.GetField("worker"))
        for f in source.GetLayer(0)
    ]


def die_once_before_rename(job: TilesJob, chunk: Chunk) -> ChunkResult:
    """The first chunk run by any worker kills its worker process at the last moment:
    its GeoTIFF is written under its temporary name, not yet renamed into place. Later
    runs (this chunk elsewhere, every other chunk) run normally."""
    marker = Path(job.output_folder).parent / KILLED
    try:
        descriptor = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return run_chunk(job, chunk)
    os.write(descriptor, f"{os.getpid()} {chunk.id}".encode())
    os.close(descriptor)
    rename = os.replace

    def replace_then_die(source: str | os.PathLike[str], target: str | os.PathLike[str]) -> None:
        if Path(target) == Path(chunk.output):
            os._exit(1)
        rename(source, target)

    os.replace = replace_then_die  # this worker process only; it does not survive
    return run_chunk(job, chunk)


def count_model_loads(job: TilesJob, chunk: Chunk) -> ChunkResult:
    """``run_chunk``, with every model load of this worker process appended to
    ``loads-<pid>`` beside the output folder (one line per ONNX Runtime session made)."""
    from qgis_landcover.core.inference import session

    if not getattr(session, "counting_loads", False):
        create = session._create_session
        log = Path(job.output_folder).parent / f"loads-{os.getpid()}"

        def counted(*arguments: Any) -> Any:
            with log.open("a") as stream:
                stream.write("load\n")
            return create(*arguments)

        session._create_session = counted
        session.counting_loads = True
    return run_chunk(job, chunk)


def test_a_dask_scheduler_by_address_gives_the_one_raster_result(
    tmp_path: Path, tiles: list[Path], whole: Path, model: Path
) -> None:
    """The remote path (``tcp://...``), here to a cluster of 2 worker processes started
    by the test: no seams, each chunk recorded once, run by both workers."""
    job = build_job(tiles, model=model, output_folder=tmp_path / "job", chunk_size=CHUNK)
    with distributed.LocalCluster(**local_cluster_options(2)) as cluster:
        executor = DaskExecutor(cluster.scheduler_address, task=count_model_loads)
        assert executor.describe() == f"the Dask scheduler {cluster.scheduler_address}"
        result = run_tiles_job(job, executor)
    assert (result.chunks_done, result.chunks_failed, result.chunks_pending) == (12, 0, 0)
    np.testing.assert_array_equal(read(result.mosaic), one_raster(tmp_path, whole, model))
    rows = manifest_rows(result.manifest)
    assert sorted(r[0] for r in rows) == sorted(c.id for c in plan_chunks(job))
    assert {r[1] for r in rows} == {"done"}
    workers = {r[2] for r in rows}
    assert len(workers) == 2  # both worker processes ran chunks
    # Each loaded the model once for its 6 or so chunks.
    loads = {p.name: p.read_text().split() for p in tmp_path.glob("loads-*")}
    assert loads == {f"loads-{w.rsplit(':', 1)[1]}": ["load"] for w in workers}
    assert leftovers(tmp_path / "job") == []


def test_a_worker_killed_mid_chunk_loses_and_duplicates_nothing(
    tmp_path: Path, tiles: list[Path], whole: Path, model: Path
) -> None:
    """``local-dask``: a LocalCluster of 2 worker processes, one of which dies with a
    written but unrenamed chunk; the scheduler runs that chunk again on a live worker."""
    job = build_job(tiles, model=model, output_folder=tmp_path / "job", chunk_size=CHUNK)
    executor = DaskExecutor("local-dask", 2, task=die_once_before_rename)
    result = run_tiles_job(job, executor)
    assert executor.started_workers == 2
    killed_pid, killed_chunk = (tmp_path / KILLED).read_text().split()
    assert (result.chunks_done, result.chunks_failed, result.chunks_pending) == (12, 0, 0)
    np.testing.assert_array_equal(read(result.mosaic), one_raster(tmp_path, whole, model))
    rows = manifest_rows(result.manifest)
    assert len(rows) == 12 and {r[1] for r in rows} == {"done"}
    assert sorted(r[0] for r in rows) == sorted(c.id for c in plan_chunks(job))
    # The killed chunk was recorded from the worker that re-ran it.
    [worker] = [r[2] for r in rows if r[0] == killed_chunk]
    assert not worker.endswith(f":{killed_pid}")
    assert leftovers(tmp_path / "job") == []


def test_cancel_stops_the_cluster_and_leaves_whole_chunks_only(
    tmp_path: Path, tiles: list[Path], model: Path
) -> None:
    job = build_job(tiles, model=model, output_folder=tmp_path / "job", chunk_size=30)
    total = len(plan_chunks(job))
    with pytest.raises(CancelledError):
        run_tiles_job(job, DaskExecutor(None, 2), CancelAfter(2))
    done = {r[0] for r in manifest_rows(job.manifest_path) if r[1] == "done"}
    assert 2 <= len(done) < total
    # A chunk finishing after the cancel may have its file (whole, not recorded: the
    # next run redoes it); nothing is left half-written.
    assert done <= {p.stem for p in job.chunks_folder.glob("*.tif")}
    assert leftovers(tmp_path / "job") == []
    windows = {c.id: c.window for c in plan_chunks(job)}
    for path in job.chunks_folder.glob("*.tif"):
        classes = read(path)
        assert classes.shape == windows[path.stem].shape and np.all(classes > 0)


def test_an_unreachable_scheduler_is_a_message(
    tmp_path: Path, tiles: list[Path], model: Path
) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    job = build_job(tiles, model=model, output_folder=tmp_path / "job", chunk_size=CHUNK)
    executor = DaskExecutor(f"tcp://127.0.0.1:{port}", connect_timeout=1)
    with pytest.raises(
        InputError, match=rf"Cannot reach the Dask scheduler tcp://127.0.0.1:{port}"
    ):
        executor.run(job, plan_chunks(job), lambda result: None, lambda: False)
    with pytest.raises(InputError, match="must be positive"):
        DaskExecutor(None, -1)


def test_without_dask_the_message_says_what_to_install(
    tmp_path: Path, tiles: list[Path], model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed fails
    job = build_job(tiles, model=model, output_folder=tmp_path / "job", chunk_size=CHUNK)
    with pytest.raises(InputError, match=r"dask\[distributed\] is not installed"):
        DaskExecutor("local-dask").run(job, plan_chunks(job), lambda result: None, lambda: False)


def test_scheduler_values_name_their_executor() -> None:
    for local in (None, "", " local ", "LOCAL"):
        assert isinstance(executor_for(local, 3), LocalExecutor)
    for value in ("local-dask", " Local-Dask "):
        executor = executor_for(value, 2)
        assert isinstance(executor, DaskExecutor) and executor.address is None
        assert executor.workers == 2
    remote = executor_for(" tcp://10.0.0.5:8786 ", None)
    assert isinstance(remote, DaskExecutor) and remote.address == "tcp://10.0.0.5:8786"


def test_command_line_on_local_dask(
    tmp_path: Path,
    tiles: list[Path],
    whole: Path,
    model: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    arguments = ["classify", *map(str, tiles), "--model", str(model)]
    arguments += ["--output", str(tmp_path / "job"), "--chunk-size", "200"]
    assert main([*arguments, "--scheduler", "local-dask", "--workers", "2", "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "chunks: 4 done, 0 skipped, 0 failed" in printed
    np.testing.assert_array_equal(
        read(tmp_path / "job" / "classified.vrt"), one_raster(tmp_path, whole, model)
    )
