# SPDX-License-Identifier: GPL-2.0-or-later
"""How long-running core functions report progress and learn about cancellation.

The core never sees a ``QgsProcessingFeedback``; it talks to a :class:`Progress`.
``qgis_landcover.qgis_glue.feedback.FeedbackProgress`` adapts QGIS feedback to it, and
:class:`NullProgress` serves scripts, training code and tests.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

from .errors import CancelledError
from .units import format_duration


class Progress(Protocol):
    """Receiver of progress, log messages and cancel requests."""

    def set_progress(self, percent: float) -> None:
        """Report overall progress, 0-100."""

    def is_cancelled(self) -> bool:
        """True once the user asked to stop; checked between blocks / batches."""

    def info(self, message: str) -> None:
        """Log an informational line."""

    def warning(self, message: str) -> None:
        """Log a warning the user should see (e.g. a fallback that was taken)."""


class NullProgress:
    """A :class:`Progress` that records warnings and never cancels."""

    def __init__(self) -> None:
        self.warnings: list[str] = []
        self.messages: list[str] = []
        self.percent = 0.0

    def set_progress(self, percent: float) -> None:
        self.percent = percent

    def is_cancelled(self) -> bool:
        return False

    def info(self, message: str) -> None:
        self.messages.append(message)

    def warning(self, message: str) -> None:
        self.warnings.append(message)


def check_cancelled(progress: Progress) -> None:
    """Raise :class:`CancelledError` when ``progress`` reports a cancel request."""
    if progress.is_cancelled():
        raise CancelledError("Cancelled by the user.")


class TimeEstimate:
    """The time a run has left, estimated from the rate so far and logged as info lines:
    once after the first step (e.g. the first batch of tiles, measured), then each time
    another ``every_percent`` of the work is done.

    Args:
        total: units of work in the run (e.g. tiles).
        unit: their name, plural, for messages.
        clock: seconds, monotonic (tests pass their own).
    """

    def __init__(
        self,
        total: int,
        unit: str,
        progress: Progress,
        every_percent: float = 10.0,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.total = total
        self.unit = unit
        self.progress = progress
        self.every_percent = every_percent
        self.clock = clock
        self.started = clock()
        self.next_percent = every_percent
        self.first_done = False

    def update(self, done: int) -> None:
        """Record that ``done`` units of the total are finished."""
        if done <= 0 or self.total <= 0 or done >= self.total:
            return
        elapsed = self.clock() - self.started
        left = format_duration(elapsed / done * (self.total - done))
        if not self.first_done:
            self.first_done = True
            self.progress.info(
                f"The first {done} of {self.total} {self.unit} took {format_duration(elapsed)}: "
                f"about {left} left."
            )
            return
        percent = 100.0 * done / self.total
        if percent < self.next_percent:
            return
        while self.next_percent <= percent:
            self.next_percent += self.every_percent
        self.progress.info(
            f"{percent:.0f} % done ({done} of {self.total} {self.unit}) in "
            f"{format_duration(elapsed)}: about {left} left."
        )
