# SPDX-License-Identifier: GPL-2.0-or-later
"""Processing algorithms of the ``landcover`` provider, one per module.

Each module defines one ``QgsProcessingAlgorithm`` subclass whose
``processAlgorithm`` converts parameters and delegates to :mod:`qgis_landcover.core`.
"""

from __future__ import annotations

from qgis.core import QgsProcessingAlgorithm


def algorithm_classes() -> list[type[QgsProcessingAlgorithm]]:
    """The algorithm classes the provider registers, in Toolbox order."""
    # Imported here so that importing the package does not import every algorithm.
    classes: list[type[QgsProcessingAlgorithm]] = []
    # <algorithm registrations: keep one import + append per algorithm module>
    from .classify import ClassifyAlgorithm

    classes.append(ClassifyAlgorithm)
    from .classify_tiles import ClassifyTilesAlgorithm

    classes.append(ClassifyTilesAlgorithm)
    from .download_model import DownloadModelAlgorithm

    classes.append(DownloadModelAlgorithm)
    from .agreement import AgreementAlgorithm

    classes.append(AgreementAlgorithm)
    from .sample_accuracy import SampleAccuracyAlgorithm

    classes.append(SampleAccuracyAlgorithm)
    from .sample_design import SampleDesignAlgorithm

    classes.append(SampleDesignAlgorithm)
    from .suggest_points import SuggestPointsAlgorithm

    classes.append(SuggestPointsAlgorithm)
    from .adapt_model import AdaptModelAlgorithm

    classes.append(AdaptModelAlgorithm)
    return classes
