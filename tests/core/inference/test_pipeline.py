# SPDX-License-Identifier: GPL-2.0-or-later
"""The threaded pipeline: batches read strip by strip, the model stage, the writer
stage; cancel and failures leave no file."""

from __future__ import annotations

import dataclasses
import platform
import sys
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal

from qgis_landcover.core.errors import CancelledError, InputError
from qgis_landcover.core.inference.classified_output import OutputPaths
from qgis_landcover.core.inference.classify import classify
from qgis_landcover.core.inference.gdal_source import GdalImageSource, GdalReader
from qgis_landcover.core.inference.normalization import Normalizer
from qgis_landcover.core.inference.pipeline import (
    ClassifyOptions,
    iter_batches,
    release_free_memory,
    run_pipeline,
)
from qgis_landcover.core.inference.session import load_session
from qgis_landcover.core.inference.tile_plan import plan_tiles
from qgis_landcover.core.progress import NullProgress
from qgis_landcover.core.raster.grid import Grid, Window

from ...onnx_models import contract_for
from .conftest import read


class CancelAfter(NullProgress):
    def __init__(self, calls: int) -> None:
        super().__init__()
        self.calls = calls

    def is_cancelled(self) -> bool:
        self.calls -= 1
        return self.calls < 0


def test_cancel_leaves_no_file(tmp_path: Path, naip: Path, model: Path) -> None:
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    with pytest.raises(CancelledError):
        classify(
            GdalImageSource(naip),
            model,
            OutputPaths(out_dir / "classes.tif", out_dir / "p.tif", out_dir / "c.tif"),
            progress=CancelAfter(3),
        )
    assert list(out_dir.iterdir()) == []


class FailingReader(GdalReader):
    def __init__(self, *args: object, reads: int) -> None:
        super().__init__(*args)  # type: ignore[arg-type]
        self.reads = reads

    def read(self, window: Window) -> tuple[np.ndarray, np.ndarray]:
        self.reads -= 1
        if self.reads < 0:
            raise InputError("disk unplugged")
        return super().read(window)


def test_failure_midway_leaves_no_file(tmp_path: Path, naip: Path, model: Path) -> None:
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    existing = out_dir / "classes.tif"
    existing.write_bytes(b"previous result")
    reader = FailingReader(gdal.Open(str(naip)), [1, 2, 3, 4], reads=2)
    session = load_session(model, "cpu")
    with pytest.raises(InputError, match="disk unplugged"):
        run_pipeline(reader, reader.grid.full_window, session, OutputPaths(existing))
    reader.dataset = None  # close it now, not in the interpreter's final collection
    # The previous file is untouched and no temporary file is left.
    assert [p.name for p in out_dir.iterdir()] == ["classes.tif"]
    assert existing.read_bytes() == b"previous result"


class ShapeRecorder:
    """Stands in for an ORT session and records the batch shapes it is given."""

    def __init__(self, session: object) -> None:
        self.session = session
        self.shapes: list[tuple[int, ...]] = []

    def run(self, names: list[str], feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        self.shapes.append(next(iter(feed.values())).shape)
        return self.session.run(names, feed)  # type: ignore[attr-defined]


def test_gpu_batches_keep_one_shape(tmp_path: Path, naip: Path, model: Path) -> None:
    session = load_session(model, "cpu")
    recorder = ShapeRecorder(session.session)
    as_gpu = dataclasses.replace(session, provider="CUDAExecutionProvider", session=recorder)
    classify(
        GdalImageSource(naip),
        as_gpu,
        OutputPaths(tmp_path / "gpu.tif"),
        options=ClassifyOptions(batch_size=7),
    )
    classify(
        GdalImageSource(naip),
        session,
        OutputPaths(tmp_path / "cpu.tif"),
        options=ClassifyOptions(batch_size=7),
    )
    assert {shape[0] for shape in recorder.shapes} == {7}  # the short last batch is padded
    np.testing.assert_array_equal(read(tmp_path / "gpu.tif"), read(tmp_path / "cpu.tif"))


class StubReader:
    """A tall, narrow readable grid of ones that counts cache releases."""

    def __init__(self, width: int, height: int) -> None:
        self._grid = Grid("", (0.0, 1.0, 0.0, 0.0, 0.0, -1.0), width, height)
        self.releases = 0

    @property
    def grid(self) -> Grid:
        return self._grid

    def read(self, window: Window) -> tuple[np.ndarray, np.ndarray]:
        return np.ones((4, *window.shape), np.float32), np.ones(window.shape, bool)

    def release(self) -> None:
        self.releases += 1


def test_reader_cache_is_released_every_1024_rows() -> None:
    reader = StubReader(40, 2500)
    plan = plan_tiles(40, 2500, 64, 0, 10.0)
    contract = contract_for(2)
    batches = list(
        iter_batches(
            reader, reader.grid.full_window, plan, plan.stripes(), Normalizer(contract), 4, 4
        )
    )
    assert sum(len(b.jobs) for b in batches) == plan.tile_count
    assert reader.releases == 2  # rows 1024 and 2048


def _resident_mib() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        return next(int(line.split()[1]) // 1024 for line in status if line.startswith("VmRSS"))


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
    reason="malloc_trim is glibc's",
)
def test_free_memory_glibc_keeps_is_given_back() -> None:
    """200 MiB in 64 KiB arrays (below glibc's mmap threshold, so from its heap), freed
    under a live array: glibc keeps those pages resident until trimmed."""
    chunks = [np.ones(64 * 1024 // 8) for _ in range(3200)]
    pinned = np.ones(64 * 1024 // 8)
    del chunks
    held = _resident_mib()
    assert release_free_memory()
    assert _resident_mib() < held - 100
    assert pinned.sum() == 8192
