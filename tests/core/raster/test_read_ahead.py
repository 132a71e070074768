# SPDX-License-Identifier: GPL-2.0-or-later
"""The read-ahead engine: order, errors, stop, bounded depth, one thread per reader."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import numpy as np
import pytest

from qgis_landcover.core.errors import InputError
from qgis_landcover.core.raster.grid import Window
from qgis_landcover.core.raster.read_ahead import ReadAhead, read_windows_ahead


def test_items_come_out_in_order_from_another_thread() -> None:
    threads: set[str] = set()

    def produce() -> Iterator[int]:
        for item in range(50):
            threads.add(threading.current_thread().name)
            yield item

    with ReadAhead(produce(), name="test-reader") as ahead:
        assert list(ahead) == list(range(50))
    assert threads == {"test-reader"}


def test_a_worker_error_is_raised_in_the_caller_after_the_items_before_it() -> None:
    def produce() -> Iterator[int]:
        yield 1
        yield 2
        raise InputError("disk unplugged")

    seen = []
    with ReadAhead(produce()) as ahead, pytest.raises(InputError, match="disk unplugged"):
        for item in ahead:
            seen.append(item)
    assert seen == [1, 2]
    assert isinstance(ahead.error, InputError)


def test_setting_stop_ends_the_worker_and_the_iteration() -> None:
    produced: list[int] = []
    stop = threading.Event()

    def produce() -> Iterator[int]:
        for item in range(1000):
            produced.append(item)
            yield item

    seen = []
    with ReadAhead(produce(), stop=stop, depth=2, name="stopped-reader") as ahead:
        for item in ahead:
            seen.append(item)
            if item == 3:
                stop.set()  # e.g. the writer stage failed
    # The items queued when stop was set still come out, in order; the worker stops
    # with at most the one in hand: it never runs through the 1000 items.
    assert seen == list(range(len(seen))) and 4 <= len(seen) <= 6
    assert len(produced) <= len(seen) + 1
    assert not any(t.name == "stopped-reader" for t in threading.enumerate())


def test_leaving_early_stops_the_worker_and_holds_at_most_depth_items() -> None:
    produced: list[int] = []
    ready = threading.Event()

    def produce() -> Iterator[int]:
        for item in range(1000):
            produced.append(item)
            if item == 3:
                ready.set()  # 0-2 fill the queue: 3 waits for room
            yield item

    with ReadAhead(produce(), depth=3, name="early-reader") as ahead:
        assert ready.wait(10)
        first = next(iter(ahead))
    assert first == 0
    # Taking 0 let 3 into the queue and 4 be produced, no more: 4 waits for room.
    assert len(produced) <= 5
    assert not any(t.name == "early-reader" for t in threading.enumerate())


def test_iterating_without_entering_is_refused() -> None:
    with pytest.raises(RuntimeError, match="enter the ReadAhead"):
        list(ReadAhead(iter([1, 2])))


def test_read_windows_ahead_keeps_order_and_reads_each_raster_in_its_own_thread() -> None:
    windows = [Window(0, row, 1, 1) for row in range(10)]
    threads: dict[str, set[str]] = {"a": set(), "b": set()}

    def reader(name: str, sign: int) -> Callable[[Window], np.ndarray]:
        def read(window: Window) -> np.ndarray:
            threads[name].add(threading.current_thread().name)
            return np.array([sign * window.row_off])

        return read

    seen = [
        (w.row_off, int(a[0]), int(b[0]))
        for w, (a, b) in read_windows_ahead([reader("a", 1), reader("b", -1)], windows)
    ]
    assert seen == [(r, r, -r) for r in range(10)]
    # One thread per reader, and never the caller's.
    assert len(threads["a"]) == len(threads["b"]) == 1
    assert threading.current_thread().name not in threads["a"] | threads["b"]
    assert list(read_windows_ahead([reader("a", 1)], [])) == []


def test_read_windows_ahead_raises_a_reader_error() -> None:
    def read(window: Window) -> np.ndarray:
        if window.row_off == 2:
            raise InputError("cannot read row 2")
        return np.zeros(1)

    windows = [Window(0, row, 1, 1) for row in range(5)]
    rows = []
    with pytest.raises(InputError, match="cannot read row 2"):
        for window, _ in read_windows_ahead([read], windows):
            rows.append(window.row_off)
    assert rows == [0, 1]
