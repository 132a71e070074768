# SPDX-License-Identifier: GPL-2.0-or-later
"""Reading ahead in a thread: the one engine behind every read that overlaps work.

:class:`ReadAhead` produces the items of an iterator (strips read and cut into batches
by the classify pipeline; blocks of a raster) in a worker thread, into a bounded queue,
while the calling thread works on the previous ones. GDAL and ONNX Runtime release the
GIL, so reading and computing overlap. Items come out in order; an error in the worker
is raised in the calling thread; setting the ``stop`` event (another stage failed, the
caller gave up) ends the worker without waiting for the queue to drain.

:func:`read_windows_ahead` reads windows of several rasters at once, each raster in a
:class:`ReadAhead` of its own (agreement, sample accuracy). :class:`Stage` and
:func:`put_unless_stopped` are the thread and the queue step the engine is built on;
the classify pipeline's writer stage uses them too.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import ExitStack
from types import TracebackType
from typing import Any, Generic, TypeVar

import numpy as np

from .grid import Window

T = TypeVar("T")

DEFAULT_DEPTH = 2
"""Items a :class:`ReadAhead` holds ready at most (the one being produced aside)."""
POLL_SECONDS = 0.1
"""How often a waiting thread looks at the ``stop`` event."""
_END = object()


class Stage(threading.Thread):
    """A daemon thread running ``work``; on failure it keeps the exception (for the
    calling thread to raise) and sets ``stop`` so the other stages stop waiting."""

    def __init__(self, name: str, work: Callable[[], None], stop: threading.Event) -> None:
        super().__init__(name=name, daemon=True)
        self._work = work
        self._stop_event = stop
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._work()
        except BaseException as error:  # handed to the calling thread
            self.error = error
            self._stop_event.set()


def put_unless_stopped(channel: queue.Queue[Any], item: Any, *stops: threading.Event) -> bool:
    """Put ``item`` into ``channel``, waiting for room, unless one of ``stops`` is set
    first; False when stopped."""
    while not any(stop.is_set() for stop in stops):
        try:
            channel.put(item, timeout=POLL_SECONDS)
            return True
        except queue.Full:
            continue
    return False


class ReadAhead(Generic[T]):
    """The items of ``items``, produced in a worker thread up to ``depth`` ahead.

    Use it as a context manager and iterate it once::

        with ReadAhead(batches, stop=stop) as ahead:
            for batch in ahead:
                ...

    Leaving the ``with`` block stops the worker and waits for it (an item being
    produced is finished, then dropped); iterating to the end raises the worker's
    error, if any, in the calling thread.

    Args:
        items: produced in the worker thread only (it may own a GDAL dataset: datasets
            must not be used by two threads at once).
        stop: shared with other stages: set when any of them fails or gives up, which
            ends the worker and the iteration. ``None``: an event of its own.
        depth: items held ready at most (memory: ``depth + 1`` items beside the one
            the caller holds).
        name: the worker thread's name.
    """

    def __init__(
        self,
        items: Iterable[T],
        *,
        stop: threading.Event | None = None,
        depth: int = DEFAULT_DEPTH,
        name: str = "landcover-read",
    ) -> None:
        if depth < 1:
            raise ValueError("depth must be at least 1")
        self.stop = stop if stop is not None else threading.Event()
        self._items = items
        self._channel: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self._halt = threading.Event()  # this reader's own end, whatever ``stop`` does
        self._stage = Stage(name, self._produce, self.stop)

    @property
    def error(self) -> BaseException | None:
        """The worker's exception, once it has ended with one."""
        return self._stage.error

    def _produce(self) -> None:
        try:
            for item in self._items:
                if not put_unless_stopped(self._channel, item, self.stop, self._halt):
                    return
        finally:
            put_unless_stopped(self._channel, _END, self.stop, self._halt)

    def __enter__(self) -> ReadAhead[T]:
        self._stage.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop the worker and wait for it."""
        self._halt.set()
        if self._stage.is_alive():
            self._stage.join()

    def __iter__(self) -> Iterator[T]:
        if self._stage.ident is None:
            raise RuntimeError("enter the ReadAhead ('with') before iterating it")
        while True:
            try:
                item = self._channel.get(timeout=POLL_SECONDS)
            except queue.Empty:
                if self._stage.is_alive() and not self.stop.is_set():
                    continue
                # The worker ended or was stopped: what it put is in the queue already.
                try:
                    item = self._channel.get_nowait()
                except queue.Empty:
                    break
            if item is _END:
                break
            yield item
        self._stage.join()  # the error is recorded after the worker's last put
        if self._stage.error is not None:
            raise self._stage.error


def read_windows_ahead(
    readers: Sequence[Callable[[Window], np.ndarray]],
    windows: Sequence[Window],
    depth: int = DEFAULT_DEPTH,
) -> Iterator[tuple[Window, list[np.ndarray]]]:
    """Yield ``(window, [reader(window) for reader in readers])`` in order, each reader
    reading ahead in a :class:`ReadAhead` thread of its own while the caller works on
    the current window.

    Each reader is called from one thread only, so a reader may own a GDAL dataset.
    """
    if not windows:
        return
    with ExitStack() as stack:
        streams = [
            stack.enter_context(ReadAhead(map(reader, windows), depth=depth)) for reader in readers
        ]
        for window, *arrays in zip(windows, *streams, strict=True):
            yield window, list(arrays)
