# SPDX-License-Identifier: GPL-2.0-or-later
"""QGIS feedback as the core's :class:`~qgis_landcover.core.progress.Progress`, and the
core's errors as ``QgsProcessingException``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from qgis.core import QgsApplication, QgsProcessingException, QgsProcessingFeedback
from qgis.PyQt.QtCore import QCoreApplication, QEventLoop, QThread

from ..core.errors import LandcoverError


@contextmanager
def core_errors() -> Iterator[None]:
    """Re-raise the core's :class:`LandcoverError` as ``QgsProcessingException``.

    The message is kept as it is: core messages are written for the user. A
    ``MemoryError`` the core's bounds did not foresee (they estimate, they cannot know)
    becomes a message too, never a traceback.
    """
    try:
        yield
    except LandcoverError as error:
        raise QgsProcessingException(str(error)) from error
    except MemoryError as error:
        raise QgsProcessingException(
            f"Not enough memory ({str(error) or 'allocation failed'}): free memory, or process a "
            "smaller extent (classify: a smaller BATCH_SIZE or TILE_SIZE)."
        ) from error


class FeedbackProgress:
    """Adapts ``QgsProcessingFeedback`` to the core's ``Progress`` protocol."""

    def __init__(self, feedback: QgsProcessingFeedback | None) -> None:
        self.feedback = feedback if feedback is not None else QgsProcessingFeedback()

    def set_progress(self, percent: float) -> None:
        self.feedback.setProgress(percent)

    def is_cancelled(self) -> bool:
        return self.feedback.isCanceled()

    def info(self, message: str) -> None:
        self.feedback.pushInfo(message)

    def warning(self, message: str) -> None:
        self.feedback.pushWarning(message)


class QgisProcessProgress(FeedbackProgress):
    """:class:`FeedbackProgress` that, in ``qgis_process``, lets Ctrl+C cancel.

    ``qgis_process`` turns SIGINT into a cancel of the feedback through Qt's event
    loop (a socket notifier), which runs only when the main thread processes events;
    a download waiting for bytes never would. So, on ``qgis_process``'s main thread
    only, each cancel check first processes pending events (no user input: there is
    no window). QGIS desktop runs the algorithm in a task thread and is left alone.
    """

    def __init__(self, feedback: QgsProcessingFeedback | None) -> None:
        super().__init__(feedback)
        application = QCoreApplication.instance()
        self.pump_events = (
            QgsApplication.platform() == "qgis_process"
            and application is not None
            and QThread.currentThread() == application.thread()
        )

    def is_cancelled(self) -> bool:
        if self.pump_events:
            QCoreApplication.processEvents(QEventLoop.ProcessEventsFlag.ExcludeUserInputEvents)
        return super().is_cancelled()
