# SPDX-License-Identifier: GPL-2.0-or-later
"""``qgis_glue.feedback``: QGIS feedback as the core's ``Progress`` protocol, and the
core's errors as ``QgsProcessingException``."""

from __future__ import annotations

import pytest
from qgis.core import QgsProcessingException, QgsProcessingFeedback

from qgis_landcover.core.errors import InputError
from qgis_landcover.core.progress import Progress, check_cancelled
from qgis_landcover.qgis_glue.feedback import FeedbackProgress, QgisProcessProgress, core_errors

from ..feedback import RecordingFeedback


def report(progress: Progress) -> None:
    """What a core function does with its ``progress`` (typed as the protocol)."""
    progress.info("Reading 4 blocks.")
    progress.set_progress(37.5)
    progress.warning("Band 4 has no colour interpretation.")
    check_cancelled(progress)


def test_the_progress_protocol_reaches_the_feedback() -> None:
    feedback = RecordingFeedback()
    report(FeedbackProgress(feedback))
    assert feedback.infos == ["Reading 4 blocks."]
    assert feedback.warnings == ["Band 4 has no colour interpretation."]
    assert feedback.progress() == 37.5


def test_a_cancel_in_qgis_stops_the_core_with_a_message() -> None:
    feedback = QgsProcessingFeedback()
    progress = FeedbackProgress(feedback)
    assert not progress.is_cancelled()
    feedback.cancel()
    assert progress.is_cancelled()
    with pytest.raises(QgsProcessingException, match=r"^Cancelled by the user\.$"), core_errors():
        report(progress)


def test_without_feedback_a_private_one_is_used() -> None:
    progress = FeedbackProgress(None)
    report(progress)
    assert progress.feedback.progress() == 37.5


def test_outside_qgis_process_no_events_are_pumped() -> None:
    """Only qgis_process's main thread processes events on each cancel check (for its
    Ctrl+C, tested in tests/algorithms/test_download_model.py); pytest is not it."""
    feedback = QgsProcessingFeedback()
    progress = QgisProcessProgress(feedback)
    assert progress.pump_events is False
    feedback.cancel()
    assert progress.is_cancelled()


def test_core_errors_keep_the_core_message() -> None:
    message = "The extent 1,2,3,4 does not overlap the layer."
    with pytest.raises(QgsProcessingException) as raised, core_errors():
        raise InputError(message)
    assert str(raised.value) == message
    assert isinstance(raised.value.__cause__, InputError)


def test_memory_errors_become_messages() -> None:
    with (
        pytest.raises(QgsProcessingException, match=r"^Not enough memory \(Unable to allocate"),
        core_errors(),
    ):
        raise MemoryError("Unable to allocate 596. GiB for an array")
    with (
        pytest.raises(QgsProcessingException, match=r"^Not enough memory \(allocation failed\)"),
        core_errors(),
    ):
        raise MemoryError()


def test_other_exceptions_are_not_disguised() -> None:
    """A bug (not a core error) stays what it is: QGIS shows its traceback."""
    with pytest.raises(ZeroDivisionError), core_errors():
        _ = 1 / 0
