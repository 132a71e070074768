# SPDX-License-Identifier: GPL-2.0-or-later
"""``landcover:download_model``: fetch a model by catalogue name or URL into the cache.

The model is resolved as ``landcover:classify`` resolves it
(:func:`~qgis_landcover.qgis_glue.model_resolution.resolve_model_in_qgis`: QGIS's cache
folder, proxy and catalogue settings).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from qgis.core import (
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProcessingOutputFile,
    QgsProcessingOutputString,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterFile,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterString,
)

from ..core.errors import InputError
from ..core.files.atomic import atomic_output
from ..core.files.checksum import file_sha256
from ..core.models.catalogue import BUILTIN_CATALOGUE, load_catalogue
from ..core.models.download import DownloadOptions
from ..qgis_glue.feedback import core_errors
from ..qgis_glue.model_resolution import resolve_model_in_qgis
from ..qgis_glue.parameters import (
    add_advanced,
    check_no_overwrite,
    number_parameter,
    optional_file_output,
)
from ..qgis_glue.settings import (
    CACHE_DIR_SETTING,
    CATALOGUES_SETTING,
    model_cache_dir,
    model_catalogues,
)
from .base import LandcoverAlgorithm, Parameters, Results


class DownloadModelAlgorithm(LandcoverAlgorithm):
    """Download a model named in a catalogue or by URL, verified, into the cache."""

    NAME = "download_model"
    DISPLAY_NAME = "Download a land-cover model"
    GROUP = "Models"
    GROUP_ID = "models"
    TAGS = (
        "download",
        "model",
        "ONNX",
        "U-Net",
        "UNet",
        "segmentation",
        "deep learning",
        "catalogue",
        "catalog",
        "model zoo",
        "Deepness",
        "cache",
        "checksum",
        "SHA-256",
        "NAIP",
        "land cover",
    )

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
            catalogue = load_catalogue(model_catalogues())
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
            f"Cache folder: {model_cache_dir()} (setting '{CACHE_DIR_SETTING}'). "
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
        model = QgsProcessingParameterString(self.MODEL, "Model name or URL", defaultValue=default)
        model.setHelp(
            "A name from the model catalogue (listed in the help) or the https:// URL of "
            "an ONNX model file."
        )
        self.addParameter(model)
        checksum = QgsProcessingParameterString(self.SHA256, "SHA-256 checksum", optional=True)
        checksum.setHelp(
            "Optional, 64 hexadecimal characters: the downloaded file must have this SHA-256; "
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
            behavior=QgsProcessingParameterFile.Behavior.File,
            fileFilter="Model catalogues (*.json *.md)",
            optional=True,
        )
        catalogue.setHelp(
            "A catalogue file read after the plugin's own: JSON in the plugin's catalogue "
            "format, or the Deepness plugin's MODEL_ZOO.md."
        )
        allow_http = QgsProcessingParameterBoolean(self.ALLOW_HTTP, "Allow plain http://", False)
        allow_http.setHelp(
            "Not recommended: plain http:// can be altered in transit; give a SHA-256 "
            "checksum when you allow it. http:// to this computer (localhost) is always allowed."
        )
        time_limit = number_parameter(
            self.TIME_LIMIT,
            "Time limit (s, 0 = none)",
            "Seconds for the whole download: it stops after this many seconds, retries "
            "included; what was received is kept and a new run resumes it. 0: no limit.",
            integer=False,
            default=DownloadOptions.time_limit,
            optional=True,  # models saved before it existed stay valid
            minimum=0,
        )
        stall_timeout = number_parameter(
            self.STALL_TIMEOUT,
            "Stall timeout (s)",
            "An attempt fails, and is retried where it stopped, when the server sends "
            "nothing for this many seconds.",
            integer=False,
            default=DownloadOptions.read_timeout,
            optional=True,
            minimum=1,
        )
        add_advanced(self, (catalogue, allow_http, time_limit, stall_timeout))
        self.addOutput(QgsProcessingOutputFile(self.MODEL_PATH, "Model file"))
        self.addOutput(QgsProcessingOutputString(self.MODEL_SHA256, "Model SHA-256"))

    def processAlgorithm(
        self, parameters: Parameters, context: QgsProcessingContext, feedback: QgsProcessingFeedback
    ) -> Results:
        spec = self.parameterAsString(parameters, self.MODEL, context)
        sha256 = self.parameterAsString(parameters, self.SHA256, context)
        destination = optional_file_output(self, parameters, self.OUTPUT, context)
        catalogue = self.parameterAsFile(parameters, self.CATALOGUE, context)
        allow_http = self.parameterAsBoolean(parameters, self.ALLOW_HTTP, context)
        time_limit = self.parameterAsDouble(parameters, self.TIME_LIMIT, context)
        stall_timeout = self.parameterAsDouble(parameters, self.STALL_TIMEOUT, context)
        # The model itself may be the destination: then nothing is copied (below).
        check_no_overwrite(
            self,
            [
                ("the plugin's model catalogue", str(BUILTIN_CATALOGUE)),
                *((f"the catalogue setting '{CATALOGUES_SETTING}'", c) for c in model_catalogues()),
                (self.CATALOGUE, catalogue),
            ],
            [(self.OUTPUT, destination, False)],
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
