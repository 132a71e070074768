# SPDX-License-Identifier: GPL-2.0-or-later
"""Temporary outputs (``atomic_output``) are removed when the process is killed, and
stale ones are removed by the next run writing the same destination."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import FrameType

import pytest

from qgis_landcover.core.files.atomic import atomic_output
from qgis_landcover.core.files.temporary import STALE_AFTER_SECONDS, remove_stale, remove_stale_in

from ...conftest import DATA, ROOT

NAIP = DATA / "chesapeake_1m_patches" / "m_3708020_sw_17_1_2014_mosaic_naip.tif"

# Classifies with the embedded model and stops, mid-write, in its first progress
# report: the signal then arrives while the outputs' temporary files are open.
CLASSIFY_AND_PAUSE = """
import signal, sys, time
# A shell without job control starts background jobs with SIGINT ignored, and a child
# inherits that: take Ctrl+C back as an interactive Python has it.
signal.signal(signal.SIGINT, signal.default_int_handler)
from pathlib import Path
from qgis_landcover.core.inference.classified_output import OutputPaths
from qgis_landcover.core.inference.classify import classify
from qgis_landcover.core.inference.gdal_source import GdalImageSource
from qgis_landcover.core.models.resolve import resolve_model
from qgis_landcover.core.progress import NullProgress

class PauseAtFirstProgress(NullProgress):
    def set_progress(self, percent):
        print("writing", flush=True)
        while True:
            time.sleep(0.05)

classify(
    GdalImageSource(sys.argv[1]),
    resolve_model(""),
    OutputPaths(Path(sys.argv[2]), confidence=Path(sys.argv[3])),
    progress=PauseAtFirstProgress(),
)
"""


@pytest.mark.parametrize("signal_number", [signal.SIGTERM, signal.SIGINT])
def test_killed_classify_leaves_no_temporary_file(tmp_path: Path, signal_number: int) -> None:
    source = tmp_path / "in" / "naip.tif"
    source.parent.mkdir()
    shutil.copyfile(NAIP, source)
    folder = tmp_path / "out"
    folder.mkdir()
    outputs = [str(folder / "map.tif"), str(folder / "confidence.tif")]
    process = subprocess.Popen(
        [sys.executable, "-c", CLASSIFY_AND_PAUSE, str(source), *outputs],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = process.stdout.readline() if process.stdout else ""
        assert line == "writing\n", process.stderr.read() if process.stderr else ""
        writing = sorted(path.name for path in folder.iterdir())
        assert [name.split(".")[1] for name in writing] == ["confidence", "map"], writing
        process.send_signal(signal_number)
        returncode = process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    # Killed by the signal as without the clean-up (SIGINT: KeyboardInterrupt, which
    # Python re-raises as the signal at exit).
    assert returncode == -signal_number
    assert list(folder.iterdir()) == []


def dead_pid() -> int:
    """The pid of a process that has ended (and been reaped)."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_stale_temporary_files_of_the_destination_are_removed(tmp_path: Path) -> None:
    destination = tmp_path / "map.tif"
    gone = dead_pid()
    running = subprocess.Popen([sys.executable, "-c", "input()"], stdin=subprocess.PIPE)
    try:
        check_stale_removal(tmp_path, destination, gone, running.pid)
    finally:
        running.communicate(b"\n")


def check_stale_removal(tmp_path: Path, destination: Path, gone: int, alive: int) -> None:
    week = STALE_AFTER_SECONDS
    names = {
        "killed": f".map.tif.{gone}-0.tmp-landcover.tif",
        "killed_stats": f".map.tif.{gone}-0.tmp-landcover.tif.aux.xml",
        "running": f".map.tif.{alive}-3.tmp-landcover.tif",
        "abandoned": f".map.tif.{alive}-4.tmp-landcover.tif",  # older than the limit
        "same_pid": f".map.tif.{os.getpid()}-99.tmp-landcover.tif",  # pid reused
        "other_destination": f".map2.tif.{gone}-0.tmp-landcover.tif",
        "other_suffix": f".map.tif.{gone}-0.tmp-landcover.vrt",
        "user_file": f".map.tif.{gone}.tif",
    }
    for name in names.values():
        (tmp_path / name).write_bytes(b"x")
    old = time.time() - week - 60
    os.utime(tmp_path / names["abandoned"], (old, old))
    with atomic_output(destination) as temporary:
        # Removed before the writer starts; this run's own file is not there yet.
        left = {path.name for path in tmp_path.iterdir()}
        assert left == {
            names[key] for key in ("running", "other_destination", "other_suffix", "user_file")
        }
        temporary.write_bytes(b"map")
    assert destination.read_bytes() == b"map"


def test_sigterm_handler_is_installed_only_while_writing_and_chains(tmp_path: Path) -> None:
    calls: list[tuple[int, bool]] = []
    seen: dict[str, Path] = {}

    def previous(number: int, frame: FrameType | None) -> None:
        calls.append((number, seen["temporary"].exists()))

    original = signal.signal(signal.SIGTERM, previous)
    try:
        with pytest.raises(InterruptedError), atomic_output(tmp_path / "map.tif") as temporary:
            seen["temporary"] = temporary
            temporary.write_bytes(b"partial")
            Path(f"{temporary}.aux.xml").write_bytes(b"<PAMDataset/>")
            assert signal.getsignal(signal.SIGTERM) is not previous
            signal.raise_signal(signal.SIGTERM)
            # The previous handler ran after the files were deleted.
            assert calls == [(signal.SIGTERM, False)]
            assert list(tmp_path.iterdir()) == []
            raise InterruptedError
        assert signal.getsignal(signal.SIGTERM) is previous  # restored
    finally:
        signal.signal(signal.SIGTERM, original)


def test_no_handler_from_other_threads_or_over_an_ignored_signal(tmp_path: Path) -> None:
    seen: list[object] = []

    def write() -> None:
        with atomic_output(tmp_path / "map.tif") as temporary:
            seen.append(signal.getsignal(signal.SIGTERM))
            temporary.write_bytes(b"map")

    thread = threading.Thread(target=write)
    thread.start()
    thread.join()
    assert seen == [signal.SIG_DFL]
    original = signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        with atomic_output(tmp_path / "other.tif") as temporary:
            assert signal.getsignal(signal.SIGTERM) == signal.SIG_IGN
            temporary.write_bytes(b"map")
    finally:
        signal.signal(signal.SIGTERM, original)


def test_a_killed_but_unreaped_writer_is_stale(tmp_path: Path) -> None:
    """A worker killed mid-write is a zombie until its parent waits for it; its
    temporary file is stale at once (its chunk may already run again elsewhere)."""
    exited = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        deadline = time.monotonic() + 30
        while Path(f"/proc/{exited.pid}/stat").read_text().split(")")[-1].split()[0] != "Z":
            assert time.monotonic() < deadline
            time.sleep(0.02)
        name = f".map.tif.{exited.pid}-0.tmp-landcover.tif"
        (tmp_path / name).write_bytes(b"x")
        assert remove_stale(tmp_path / "map.tif") == [tmp_path / name]
    finally:
        exited.wait()


def test_remove_stale_in_clears_a_whole_folder_in_one_listing(tmp_path: Path) -> None:
    gone = dead_pid()
    running = subprocess.Popen([sys.executable, "-c", "input()"], stdin=subprocess.PIPE)
    try:
        stale = {
            f".r0_c0.tif.{gone}-0.tmp-landcover.tif",
            f".r0_c0.tif.{gone}-0.tmp-landcover.tif.aux.xml",
            f".r1_c0.raw.tif.{gone}-7.tmp-landcover.tif",
            f".notes.{gone}-1.tmp-landcover.tmp",
        }
        kept = {
            f".r2_c0.tif.{running.pid}-0.tmp-landcover.tif",  # still being written
            "r0_c0.tif",
            f".r0_c0.tif.{gone}.tif",  # not a temporary name
        }
        for name in stale | kept:
            (tmp_path / name).write_bytes(b"x")
        removed = remove_stale_in(tmp_path)
        assert {path.name for path in removed} == stale
        assert {path.name for path in tmp_path.iterdir()} == kept
    finally:
        running.communicate(b"\n")
