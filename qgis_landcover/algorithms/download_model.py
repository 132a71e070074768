# SPDX-License-Identifier: GPL-2.0-or-later
"""``landcover:download_model``: fetch a model by catalogue name or URL into the cache.

The module also holds how the plugin resolves a ``MODEL`` string inside QGIS
(:func:`resolve_model_in_qgis`: QGIS's cache folder, proxy and catalogue settings), so
``landcover:classify`` resolves URLs and names exactly as this algorithm does.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from qgis.core import (
    QgsApplication,
    QgsNetworkAccessManager,
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProcessingOutputFile,
    QgsProcessingOutputString,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterFile,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterString,
    QgsSettings,
)
from qgis.PyQt.QtCore import QCoreApplication, QEventLoop, QThread
from qgis.PyQt.QtNetwork import QNetworkProxy

from ..core.errors import InputError
from ..core.files.atomic import atomic_output
from ..core.files.checksum import file_sha256
from ..core.models.catalogue import BUILTIN_CATALOGUE, load_catalogue, resolve_model
from ..core.models.download import DownloadOptions
from ..core.units import format_bytes
from .base import FeedbackProgress, LandcoverAlgorithm, core_errors

CACHE_DIR_SETTING = "landcover/model_cache_dir"
"""QgsSettings key: folder for downloaded models (default: see :func:`qgis_model_cache_dir`)."""
CATALOGUES_SETTING = "landcover/model_catalogues"
"""QgsSettings key: extra catalogue files (a list, or one string separated by ';')."""


def qgis_model_cache_dir() -> Path:
    """The cache folder inside QGIS: the ``landcover/model_cache_dir`` setting, else
    ``<QGIS settings folder>/landcover/models`` (per user profile)."""
    configured = str(QgsSettings().value(CACHE_DIR_SETTING, "") or "").strip()
    if configured:
        return Path(configured).expanduser()
    return Path(QgsApplication.qgisSettingsDirPath()) / "landcover" / "models"


def qgis_catalogues(extra: str = "") -> list[str]:
    """Catalogue files from the ``landcover/model_catalogues`` setting, then ``extra``."""
    value = QgsSettings().value(CATALOGUES_SETTING, [])
    items = value.split(";") if isinstance(value, str) else list(value or [])
    return [str(item).strip() for item in [*items, extra] if str(item or "").strip()]


def qgis_proxies() -> dict[str, str] | None:
    """QGIS's configured proxy (Settings > Options > Network) as a ``requests`` mapping.

    ``None`` when QGIS uses no explicit proxy or the system's: ``requests`` then
    follows the ``HTTPS_PROXY`` / ``HTTP_PROXY`` / ``NO_PROXY`` environment variables.
    QGIS's excluded URLs become ``no_proxy`` host names.
    """
    manager = QgsNetworkAccessManager.instance()
    if manager.useSystemProxy():
        return None
    proxy = manager.fallbackProxy()
    scheme = {
        QNetworkProxy.HttpProxy: "http",
        QNetworkProxy.HttpCachingProxy: "http",
        # socks5h: the proxy resolves host names (needs PySocks for requests).
        QNetworkProxy.Socks5Proxy: "socks5h",
    }.get(proxy.type())
    if scheme is None or not proxy.hostName():
        return None
    credentials = ""
    if proxy.user():
        credentials = quote(proxy.user(), safe="")
        if proxy.password():
            credentials += ":" + quote(proxy.password(), safe="")
        credentials += "@"
    url = f"{scheme}://{credentials}{proxy.hostName()}:{proxy.port()}"
    proxies = {"http": url, "https": url}
    excluded = [*manager.excludeList(), *manager.noProxyList()]
    hosts = [urlsplit(item).hostname or item.strip() for item in excluded if item.strip()]
    if hosts:
        proxies["no_proxy"] = ",".join(dict.fromkeys(hosts))
    return proxies


def resolve_model_in_qgis(
    spec: str,
    feedback: QgsProcessingFeedback | None,
    *,
    sha256: str = "",
    catalogue: str = "",
    allow_http: bool = False,
    time_limit: float | None = DownloadOptions.time_limit,
    stall_timeout: float = DownloadOptions.read_timeout,
) -> Path:
    """:func:`~qgis_landcover.core.models.catalogue.resolve_model` with QGIS's settings:
    cache folder, proxy and catalogues; download progress drives ``feedback``.

    Args:
        time_limit: seconds for the whole download, ``None`` for no limit.
        stall_timeout: seconds without any byte from the server before an attempt
            fails (and is retried).

    Raises the core's errors; call it inside ``core_errors()``.
    """
    progress = _QgisProcessProgress(feedback)
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
        cache_dir=qgis_model_cache_dir(),
        catalogues=qgis_catalogues(catalogue),
        sha256=sha256 or None,
        progress=progress,
        proxies=qgis_proxies(),
        options=DownloadOptions(
            allow_http=allow_http, time_limit=time_limit, read_timeout=stall_timeout
        ),
        on_bytes=show_bytes,
    )


class _QgisProcessProgress(FeedbackProgress):
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
            QCoreApplication.processEvents(QEventLoop.ExcludeUserInputEvents)
        return super().is_cancelled()


class DownloadModelAlgorithm(LandcoverAlgorithm):
    """Download a model named in a catalogue or by URL, verified, into the cache."""

    NAME = "download_model"
    DISPLAY_NAME = "Download a land-cover model"
    GROUP = "Models"
    GROUP_ID = "models"

    MODEL = "MODEL"
    SHA256 = "SHA256"
    OUTPUT = "OUTPUT"
    CATALOGUE = "CATALOGUE"
    ALLOW_HTTP = "ALLOW_HTTP"
    TIME_LIMIT = "TIME_LIMIT"
    STALL_TIMEOUT = "STALL_TIMEOUT"
    MODEL_PATH = "MODEL_PATH"
    MODEL_SHA256 = "MODEL_SHA256"

    def shortHelpString(self) -> str:
        try:
            catalogue = load_catalogue(qgis_catalogues())
            known = ", ".join(catalogue.names())
        except InputError as error:  # a broken user catalogue must not break the help
            known = f"(catalogue unreadable: {error})"
        return (
            "Downloads a land-cover model (ONNX) given by a catalogue name or an https:// "
            "URL, checks it and keeps it in the model cache, so later runs and "
            "'Classify land cover' use the same verified file without downloading again.\n\n"
            "The download is streamed to a temporary file, resumed after an interrupted "
            "connection, checked against the SHA-256 checksum (from the catalogue or the "
            "SHA256 parameter) and against the model contract (its ONNX metadata), and only "
            "then moved into place. Without a checksum, the file's SHA-256 is recorded at "
            "the first download and a changed cached file is downloaded again.\n\n"
            "QGIS's proxy (Settings > Options > Network) is used, otherwise the "
            "HTTPS_PROXY / NO_PROXY environment variables. Plain http:// is refused "
            "except to this computer (localhost, 127.x.x.x, ::1), unless allowed in the "
            "advanced parameters.\n\n"
            "A download that gets no data for the stall timeout (default 60 s) is retried "
            "where it stopped; one that takes longer than the time limit (default 1 hour) "
            "stops. A stopped or cancelled download keeps what it received in a '.part' "
            "file in the cache, and running the algorithm again resumes it; parts left "
            "for 7 days are deleted.\n\n"
            f"Catalogue models: {known}.\n\n"
            f"Cache folder: {qgis_model_cache_dir()} (setting '{CACHE_DIR_SETTING}'). "
            f"Extra catalogue files: setting '{CATALOGUES_SETTING}' or the Catalogue "
            "parameter (JSON, or the Deepness plugin's MODEL_ZOO.md).\n\n"
            "Outputs MODEL_PATH, the local model file: connect it to the Model parameter "
            "of 'Classify land cover' in the graphical modeler."
        )

    def initAlgorithm(self, configuration: dict[str, Any] | None = None) -> None:
        try:
            default = load_catalogue().default or ""
        except InputError:
            default = ""
        model = QgsProcessingParameterString(
            self.MODEL, "Model (catalogue name or https:// URL)", defaultValue=default
        )
        model.setHelp(
            "A name from the model catalogue (listed in the help) or the https:// URL of "
            "an ONNX model file."
        )
        self.addParameter(model)
        checksum = QgsProcessingParameterString(
            self.SHA256, "Expected SHA-256 checksum", optional=True
        )
        checksum.setHelp(
            "64 hexadecimal characters. The downloaded file must have this SHA-256; "
            "leave empty to use the catalogue's checksum, if any."
        )
        self.addParameter(checksum)
        output = QgsProcessingParameterFileDestination(
            self.OUTPUT,
            "Copy the model to",
            "ONNX models (*.onnx)",
            optional=True,
            createByDefault=False,
        )
        output.setHelp(
            "Optional: also copy the verified model to this file. Leave empty to use the "
            "copy in the model cache."
        )
        self.addParameter(output)
        catalogue = QgsProcessingParameterFile(
            self.CATALOGUE,
            "Extra model catalogue",
            behavior=QgsProcessingParameterFile.File,
            fileFilter="Model catalogues (*.json *.md)",
            optional=True,
        )
        catalogue.setHelp(
            "A catalogue file read after the plugin's own: JSON in the plugin's catalogue "
            "format, or the Deepness plugin's MODEL_ZOO.md."
        )
        allow_http = QgsProcessingParameterBoolean(
            self.ALLOW_HTTP, "Allow plain http:// downloads (not recommended)", False
        )
        allow_http.setHelp(
            "Plain http:// can be altered in transit; give a SHA-256 checksum when you "
            "allow it. http:// to this computer (localhost) is always allowed."
        )
        time_limit = QgsProcessingParameterNumber(
            self.TIME_LIMIT,
            "Time limit for the whole download (seconds, 0 = none)",
            QgsProcessingParameterNumber.Double,
            defaultValue=DownloadOptions.time_limit,
            optional=True,  # models saved before it existed stay valid
            minValue=0,
        )
        time_limit.setHelp(
            "The download stops after this many seconds, retries included; what was "
            "received is kept and a new run resumes it. 0: no limit."
        )
        stall_timeout = QgsProcessingParameterNumber(
            self.STALL_TIMEOUT,
            "Stall timeout (seconds without data)",
            QgsProcessingParameterNumber.Double,
            defaultValue=DownloadOptions.read_timeout,
            optional=True,
            minValue=1,
        )
        stall_timeout.setHelp(
            "An attempt fails, and is retried where it stopped, when the server sends "
            "nothing for this many seconds."
        )
        for parameter in (catalogue, allow_http, time_limit, stall_timeout):
            parameter.setFlags(parameter.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
            self.addParameter(parameter)
        self.addOutput(QgsProcessingOutputFile(self.MODEL_PATH, "Model file"))
        self.addOutput(QgsProcessingOutputString(self.MODEL_SHA256, "Model SHA-256"))

    def processAlgorithm(
        self,
        parameters: dict[str, Any],
        context: QgsProcessingContext,
        feedback: QgsProcessingFeedback,
    ) -> dict[str, Any]:
        spec = self.parameterAsString(parameters, self.MODEL, context)
        sha256 = self.parameterAsString(parameters, self.SHA256, context)
        destination = self.parameterAsFileOutput(parameters, self.OUTPUT, context)
        catalogue = self.parameterAsFile(parameters, self.CATALOGUE, context)
        allow_http = self.parameterAsBoolean(parameters, self.ALLOW_HTTP, context)
        time_limit = self.parameterAsDouble(parameters, self.TIME_LIMIT, context)
        stall_timeout = self.parameterAsDouble(parameters, self.STALL_TIMEOUT, context)
        # The model itself may be the destination: then nothing is copied (below).
        self.check_outputs(
            [
                ("the plugin's model catalogue", str(BUILTIN_CATALOGUE)),
                *((f"the catalogue setting '{CATALOGUES_SETTING}'", c) for c in qgis_catalogues()),
                (self.CATALOGUE, catalogue),
            ],
            [(self.OUTPUT, destination or None, False)],
        )
        with core_errors():
            if not spec.strip():
                raise InputError("Give a model: a catalogue name or an https:// URL.")
            path = resolve_model_in_qgis(
                spec,
                feedback,
                sha256=sha256,
                catalogue=catalogue,
                allow_http=allow_http,
                time_limit=time_limit or None,
                stall_timeout=stall_timeout,
            )
            digest = file_sha256(path)
            if destination and not _same_file(path, destination):
                with atomic_output(destination) as temporary:
                    shutil.copyfile(path, temporary)
                path = Path(destination)
        feedback.pushInfo(f"Model file: {path} (SHA-256 {digest})")
        results: dict[str, Any] = {self.MODEL_PATH: str(path), self.MODEL_SHA256: digest}
        if destination:
            results[self.OUTPUT] = destination
        return results


def _same_file(a: Path, b: str) -> bool:
    return os.path.exists(b) and os.path.samefile(a, b)
