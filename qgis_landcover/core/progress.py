# SPDX-License-Identifier: GPL-2.0-or-later
"""How long-running core functions report progress and learn about cancellation.

The core never sees a ``QgsProcessingFeedback``; it talks to a :class:`Progress`.
``qgis_landcover.qgis_glue.feedback.FeedbackProgress`` adapts QGIS feedback to it, and
:class:`NullProgress` serves scripts, training code and tests.
"""

from __future__ import annotations

from typing import Protocol

from .errors import CancelledError


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
