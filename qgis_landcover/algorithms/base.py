# SPDX-License-Identifier: GPL-2.0-or-later
"""What every ``landcover`` algorithm shares: grouping, instance creation, and the
bridge from QGIS feedback to the core's :class:`~qgis_landcover.core.progress.Progress`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from qgis.core import QgsProcessingAlgorithm, QgsProcessingException, QgsProcessingFeedback

from ..core.errors import LandcoverError


@contextmanager
def core_errors() -> Iterator[None]:
    """Re-raise the core's :class:`LandcoverError` as ``QgsProcessingException``.

    The message is kept as it is: core messages are written for the user.
    """
    try:
        yield
    except LandcoverError as error:
        raise QgsProcessingException(str(error)) from error


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


class LandcoverAlgorithm(QgsProcessingAlgorithm):
    """Base class: subclasses set ``NAME``, ``DISPLAY_NAME``, ``GROUP``, ``GROUP_ID``
    and implement ``initAlgorithm``, ``processAlgorithm`` and ``shortHelpString``."""

    NAME = ""
    DISPLAY_NAME = ""
    GROUP = ""
    GROUP_ID = ""

    def name(self) -> str:
        return self.NAME

    def displayName(self) -> str:
        return self.DISPLAY_NAME

    def group(self) -> str:
        return self.GROUP

    def groupId(self) -> str:
        return self.GROUP_ID

    def createInstance(self) -> QgsProcessingAlgorithm:
        return type(self)()
