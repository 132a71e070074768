# SPDX-License-Identifier: GPL-2.0-or-later
"""Large windows aligned to a raster's own blocks, read ahead in threads.

GDAL decodes whole blocks (tiles or strips): windows that start and end on block
boundaries decode each block once. GDAL releases the GIL while it reads, so reading the
next window in a worker thread overlaps the numpy work on the current one.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

from .grid import Window

TARGET_PIXELS = 1 << 20
"""Pixels per window (about a million): large enough to amortise per-window overheads,
small enough that temporaries stay in the tens of megabytes and that windows of one
value throughout (nodata margins) are common enough to skip (see ``ConfusionMatrix``)."""


def _span(offset: int, length: int, block: int, step: int) -> Iterator[tuple[int, int]]:
    """(start, size) pieces of ``[offset, offset + length)`` that end on multiples of
    ``block`` and span ``step`` pixels (a multiple of ``block``), except the first and
    last pieces, which may be shorter."""
    stop = offset + length
    start = offset
    while start < stop:
        # The first piece may be short so that the following ones start on a block edge.
        end = min(stop, (start // block) * block + step)
        yield start, end - start
        start = end


def aligned_windows(
    window: Window, block_size: tuple[int, int], target_pixels: int = TARGET_PIXELS
) -> list[Window]:
    """Cover ``window`` with windows of about ``target_pixels`` whose edges fall on the
    raster's block grid (``block_size`` = (block width, block height) in pixels).

    Full-width strips when a strip of one block row is small enough, else tiles of
    whole blocks. Row-major order.
    """
    block_width, block_height = max(1, block_size[0]), max(1, block_size[1])
    if window.width * block_height <= target_pixels:
        rows = max(block_height, (target_pixels // window.width) // block_height * block_height)
        columns = [(window.col_off, window.width)]
    else:
        rows = block_height
        cols = max(block_width, (target_pixels // block_height) // block_width * block_width)
        columns = list(_span(window.col_off, window.width, block_width, cols))
    return [
        Window(col, row, width, height)
        for row, height in _span(window.row_off, window.height, block_height, rows)
        for col, width in columns
    ]


def read_ahead(
    readers: Sequence[Callable[[Window], np.ndarray]], windows: Sequence[Window]
) -> Iterator[tuple[Window, list[np.ndarray]]]:
    """Yield ``(window, [reader(window) for reader in readers])`` in order, reading the
    next window in worker threads (one per reader) while the caller works on this one.

    Each reader is called from one thread at a time, so a reader may own a GDAL dataset
    (datasets must not be shared between concurrent threads).
    """
    if not windows:
        return
    with ThreadPoolExecutor(max_workers=len(readers), thread_name_prefix="landcover-read") as pool:
        pending: deque[tuple[Window, list[Future[np.ndarray]]]] = deque()

        def submit(window: Window) -> None:
            pending.append((window, [pool.submit(reader, window) for reader in readers]))

        submit(windows[0])
        try:
            for following in [*windows[1:], None]:
                window, futures = pending.popleft()
                arrays = [future.result() for future in futures]
                if following is not None:
                    submit(following)
                yield window, arrays
        finally:
            # Stop early (error, cancel): wait for reads in flight, drop their results.
            for _, futures in pending:
                for future in futures:
                    future.cancel()
                    if not future.cancelled():
                        future.exception()
