# SPDX-License-Identifier: GPL-2.0-or-later
"""The base class of every ``landcover`` algorithm: grouping, instance creation, and the
checks QGIS runs before ``processAlgorithm`` (number ranges named in messages; no CRS
check, the algorithms reproject). What algorithms share beyond that lives in
:mod:`qgis_landcover.qgis_glue`.
"""

from __future__ import annotations

from typing import Any

from qgis.core import QgsProcessingAlgorithm, QgsProcessingContext, QgsProcessingParameterNumber

from ..qgis_glue.parameters import number_problem, parameter_label


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

    def checkParameterValues(
        self, parameters: dict[str, Any], context: QgsProcessingContext
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

    def validateInputCrs(self, parameters: dict[str, Any], context: QgsProcessingContext) -> bool:
        """Always true: every algorithm here reprojects inputs in other CRSs (and
        QGIS's check would load raster files as layers, see
        :mod:`qgis_landcover.qgis_glue.raster_inputs`)."""
        return True
