# SPDX-License-Identifier: GPL-2.0-or-later
"""How the plugin resolves a ``MODEL`` value inside QGIS: the core's
:func:`~qgis_landcover.core.models.resolve.resolve_model` with QGIS's cache folder,
catalogue settings and proxy, download progress shown in the feedback. Every algorithm
that takes a model (``landcover:classify``, ``landcover:download_model``) resolves it
here, so URLs and names resolve the same way everywhere."""

from __future__ import annotations

import time
from pathlib import Path

from qgis.core import QgsProcessingFeedback

from ..core.models.download import DownloadOptions
from ..core.models.resolve import resolve_model
from ..core.units import format_bytes
from .feedback import QgisProcessProgress
from .network import requests_proxies
from .settings import model_cache_dir, model_catalogues


def resolve_model_in_qgis(
    spec: str,
    feedback: QgsProcessingFeedback | None,
    *,
    sha256: str = "",
    catalogue: str = "",
    allow_http: bool = False,
    time_limit: float | None = DownloadOptions.time_limit,
    stall_timeout: float = DownloadOptions.read_timeout,
    precision: str | None = None,
    on_gpu: bool = False,
) -> Path:
    """The verified local model file ``spec`` names (``""``: the default model, a
    catalogue name, a file or a URL), with QGIS's settings.

    Args:
        catalogue: an extra catalogue file, read after those of the settings.
        time_limit: seconds for the whole download, ``None`` for no limit.
        stall_timeout: seconds without any byte from the server before an attempt
            fails (and is retried).
        precision: ``None`` resolves ``spec`` as named; ``auto`` / ``fp32`` / ``fp16`` /
            ``int8`` choose among a catalogue model's variants (the choice and its
            reason are logged).
        on_gpu: the model will run on a GPU (``auto`` then prefers fp16).

    Raises the core's errors; call it inside ``core_errors()``.
    """
    progress = QgisProcessProgress(feedback)
    shown = [0.0]  # when the progress text was last set (monotonic seconds)

    def show_bytes(done: int, total: int | None) -> None:
        # Once a second at most: qgis_process prints every progress text on a line.
        now = time.monotonic()
        if now - shown[0] < 1.0 and done != total:
            return
        shown[0] = now
        of_total = f" of {format_bytes(total)} ({100 * done / total:.0f} %)" if total else ""
        progress.feedback.setProgressText(f"Downloaded {format_bytes(done)}{of_total}")

    return resolve_model(
        spec,
        cache_dir=model_cache_dir(),
        catalogues=model_catalogues(catalogue),
        sha256=sha256 or None,
        progress=progress,
        proxies=requests_proxies(),
        options=DownloadOptions(
            allow_http=allow_http, time_limit=time_limit, read_timeout=stall_timeout
        ),
        on_bytes=show_bytes,
        precision=precision,
        on_gpu=on_gpu,
    )
