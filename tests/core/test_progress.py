# SPDX-License-Identifier: GPL-2.0-or-later
"""``core.progress``: the null progress and the cancel check (the QGIS side of the
protocol is tested in tests/qgis_glue/test_feedback.py)."""

from __future__ import annotations

import pytest

from qgis_landcover.core.errors import CancelledError, LandcoverError
from qgis_landcover.core.progress import NullProgress, Progress, TimeEstimate, check_cancelled


class CancelAfter:
    """A :class:`Progress` whose user presses Cancel at the ``n``-th check."""

    def __init__(self, n: int) -> None:
        self.checks = 0
        self.n = n

    def set_progress(self, percent: float) -> None:
        pass

    def is_cancelled(self) -> bool:
        self.checks += 1
        return self.checks >= self.n

    def info(self, message: str) -> None:
        pass

    def warning(self, message: str) -> None:
        pass


def blocks_done(progress: Progress, blocks: int) -> int:
    """A core-style loop: checks for a cancel before each block."""
    done = 0
    for _ in range(blocks):
        check_cancelled(progress)
        done += 1
    return done


def test_null_progress_records_and_never_cancels() -> None:
    progress = NullProgress()
    progress.info("one")
    progress.warning("two")
    progress.set_progress(12.5)
    progress.info("three")
    assert progress.messages == ["one", "three"]
    assert progress.warnings == ["two"]
    assert progress.percent == 12.5
    assert blocks_done(progress, 5) == 5


def test_check_cancelled_stops_at_the_first_check_after_the_cancel() -> None:
    progress = CancelAfter(3)
    with pytest.raises(CancelledError, match=r"^Cancelled by the user\.$"):
        blocks_done(progress, 5)
    assert progress.checks == 3  # blocks 1 and 2 ran, block 3 did not


def test_a_cancel_is_a_core_error() -> None:
    """Algorithms turn core errors into messages: a cancel must be one of them."""
    assert issubclass(CancelledError, LandcoverError)


def test_time_estimate_logs_after_the_first_batch_and_every_tenth() -> None:
    """400 tiles, 2 s per tile on a fake clock: after the first batch of 4 tiles (8 s)
    about 792 s are left; then one line per 10 % crossed, none in between."""
    now = [100.0]
    progress = NullProgress()
    estimate = TimeEstimate(400, "tiles", progress, clock=lambda: now[0])
    for done in range(4, 400, 4):
        now[0] = 100.0 + 2 * done
        estimate.update(done)
    now[0] = 900.0
    estimate.update(400)
    assert progress.messages[0] == "The first 4 of 400 tiles took 8 s: about 13 min 12 s left."
    assert (
        progress.messages[1] == "10 % done (40 of 400 tiles) in 1 min 20 s: about 12 min 00 s left."
    )
    assert (
        progress.messages[-1]
        == "90 % done (360 of 400 tiles) in 12 min 00 s: about 1 min 20 s left."
    )
    assert len(progress.messages) == 10
