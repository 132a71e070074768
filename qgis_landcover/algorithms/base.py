# SPDX-License-Identifier: GPL-2.0-or-later
"""The base class of every ``landcover`` algorithm: grouping, instance creation, search
tags, the help page and icon shipped with the plugin, and the checks QGIS runs before
``processAlgorithm`` (number ranges named in messages; no CRS check, the algorithms
reproject). What algorithms share beyond that lives in :mod:`qgis_landcover.qgis_glue`.
"""

from __future__ import annotations

from pathlib import Path

from qgis.core import QgsProcessingAlgorithm, QgsProcessingContext, QgsProcessingParameterNumber
from qgis.PyQt.QtCore import QUrl
from qgis.PyQt.QtGui import QIcon

from ..qgis_glue.onnxruntime_check import onnxruntime_missing
from ..qgis_glue.parameters import Parameters as Parameters  # re-exported: processAlgorithm's
from ..qgis_glue.parameters import Results as Results  # parameter values and results
from ..qgis_glue.parameters import number_problem, parameter_label

PLUGIN_DIR = Path(__file__).resolve().parent.parent
HELP_DIR = PLUGIN_DIR / "help"
"""Help pages shipped in the plugin: ``help/<algorithm name>.html``."""
ICON_DIR = PLUGIN_DIR / "icons"
"""Algorithm icons shipped in the plugin: ``icons/<algorithm name>.svg``."""
PROVIDER_ICON = PLUGIN_DIR / "icon.svg"


class LandcoverAlgorithm(QgsProcessingAlgorithm):
    """Base class: subclasses set ``NAME``, ``DISPLAY_NAME``, ``GROUP``, ``GROUP_ID``,
    ``TAGS`` (and ``NEEDS_ONNXRUNTIME`` when they run a model), and implement
    ``initAlgorithm``, ``processAlgorithm`` and ``shortHelpString``. A page
    ``help/<NAME>.html`` and an icon ``icons/<NAME>.svg`` in the plugin are picked up by
    name."""

    NAME = ""
    DISPLAY_NAME = ""
    GROUP = ""
    GROUP_ID = ""
    TAGS: tuple[str, ...] = ()
    """Words the Toolbox search finds the algorithm by (it matches each typed word
    inside the name, the tags, the id and the group, ignoring case)."""
    NEEDS_ONNXRUNTIME = False
    """True for algorithms that run a model: without ONNX Runtime they cannot run."""

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

    def tags(self) -> list[str]:
        return list(self.TAGS)

    def canExecute(self) -> tuple[bool, str]:
        """False, with how to install it, when the algorithm runs a model
        (``NEEDS_ONNXRUNTIME``) and QGIS's Python has no ONNX Runtime: the Toolbox shows
        the message instead of opening the dialog."""
        missing = onnxruntime_missing() if self.NEEDS_ONNXRUNTIME else ""
        return (not missing, missing)

    def helpUrl(self) -> str:
        """The help page shipped in the plugin as a ``file://`` URL, opened by the
        dialogs' Help button; ``""`` when there is none (and the provider's empty
        ``helpId`` keeps QGIS from building a docs.qgis.org address)."""
        page = HELP_DIR / f"{self.name()}.html"
        return QUrl.fromLocalFile(str(page)).toString() if page.is_file() else ""

    def svgIconPath(self) -> str:
        icon = ICON_DIR / f"{self.name()}.svg"
        return str(icon if icon.is_file() else PROVIDER_ICON)

    def icon(self) -> QIcon:
        return QIcon(self.svgIconPath())

    def checkParameterValues(
        self, parameters: Parameters, context: QgsProcessingContext
    ) -> tuple[bool, str]:
        """QGIS's checks, with a message naming the allowed range for a number out of
        range (QGIS says only "Incorrect parameter value for OVERLAP"), and text that is
        no number refused (QGIS lets it pass as "not set" for optional numbers)."""
        for definition in self.parameterDefinitions():
            if isinstance(definition, QgsProcessingParameterNumber):
                problem = number_problem(definition, parameters.get(definition.name()))
                if problem:
                    return False, f"{parameter_label(self, definition.name())} {problem}"
        return super().checkParameterValues(parameters, context)

    def validateInputCrs(self, parameters: Parameters, context: QgsProcessingContext) -> bool:
        """Always true: every algorithm here reprojects inputs in other CRSs (and
        QGIS's check would load raster files as layers, see
        :mod:`qgis_landcover.qgis_glue.raster_inputs`)."""
        return True
