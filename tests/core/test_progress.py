# SPDX-License-Identifier: GPL-2.0-or-later
"""``core.progress``: the null progress and the cancel check (the QGIS side of the
protocol is tested in tests/qgis_glue/test_feedback.py)."""

from __future__ import annotations

import pytest

from qgis_landcover.core.errors import CancelledError, LandcoverError
from qgis_landcover.core.progress import NullProgress, Progress, check_cancelled


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
