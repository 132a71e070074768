# SPDX-License-Identifier: GPL-2.0-or-later
"""A Processing feedback for the algorithm tests that keeps what an algorithm reports."""

from __future__ import annotations

from qgis.core import QgsProcessingFeedback


class RecordingFeedback(QgsProcessingFeedback):
    """Keeps what the algorithm reports, as QGIS shows it too: ``lines``, the log's
    info and warning lines in order; ``infos`` and ``warnings`` apart; ``errors``
    (``reportError``, which the batch dialog collects); ``texts``, the progress texts."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []
        self.infos: list[str] = []
        self.warnings: list[str] = []
        self.errors: list[str] = []
        self.texts: list[str] = []

    def pushInfo(self, info: str) -> None:
        self.lines.append(info)
        self.infos.append(info)
        super().pushInfo(info)

    def pushWarning(self, warning: str) -> None:
        self.lines.append(warning)
        self.warnings.append(warning)
        super().pushWarning(warning)

    def reportError(self, error: str, fatalError: bool = False) -> None:  # noqa: N803
        self.errors.append(error)
        super().reportError(error, fatalError)

    def setProgressText(self, text: str) -> None:
        self.texts.append(text)
        super().setProgressText(text)
