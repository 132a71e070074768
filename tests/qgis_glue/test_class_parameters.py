# SPDX-License-Identifier: GPL-2.0-or-later
"""``qgis_glue.class_parameters``: the remap / ignore / class-name parameters of the
accuracy algorithms, declared once and read into the core's arguments."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from qgis.core import (
    QgsApplication,
    QgsProcessingAlgorithm,
    QgsProcessingContext,
    QgsProcessingParameterDefinition,
)

from qgis_landcover.core.errors import InputError
from qgis_landcover.qgis_glue.class_parameters import (
    add_class_parameters,
    class_arguments,
    class_input_files,
)


class ClassesAlgorithm(QgsProcessingAlgorithm):
    def name(self) -> str:
        return "classes"

    def displayName(self) -> str:
        return "Classes"

    def createInstance(self) -> QgsProcessingAlgorithm:
        return ClassesAlgorithm()

    def initAlgorithm(self, configuration: dict[str, Any] | None = None) -> None:
        add_class_parameters(self)

    def processAlgorithm(self, parameters: Any, context: Any, feedback: Any) -> dict[str, Any]:
        return {}


@pytest.fixture
def algorithm() -> ClassesAlgorithm:
    algorithm = ClassesAlgorithm()
    algorithm.initAlgorithm()
    return algorithm


def test_the_parameters_both_accuracy_algorithms_declare(
    algorithm: ClassesAlgorithm, landcover_provider: Any
) -> None:
    names = [d.name() for d in algorithm.parameterDefinitions()]
    assert names == ["CLASSIFIED_REMAP", "REFERENCE_REMAP", "IGNORE_VALUES", "CLASS_NAMES"]
    assert algorithm.parameterDefinition("IGNORE_VALUES").defaultValue() == "0"
    advanced = [
        d.name()
        for d in algorithm.parameterDefinitions()
        if d.flags() & QgsProcessingParameterDefinition.FlagAdvanced
    ]
    assert advanced == ["CLASS_NAMES"]
    for algorithm_id in ("landcover:agreement", "landcover:sample_accuracy"):
        # An instance of our own: the provider's may be replaced when it refreshes.
        instance = QgsApplication.processingRegistry().createAlgorithmById(algorithm_id)
        assert instance is not None, algorithm_id
        declared = [d.name() for d in instance.parameterDefinitions()]
        assert set(names) <= set(declared), algorithm_id


def test_class_arguments(algorithm: ClassesAlgorithm) -> None:
    parameters = {
        "CLASSIFIED_REMAP": "5:4, 6:4",
        "REFERENCE_REMAP": "",
        "IGNORE_VALUES": "0; 15",
        "CLASS_NAMES": "1:Water,2:Tree canopy",
    }
    assert class_arguments(algorithm, parameters, QgsProcessingContext()) == {
        "classified_remap": {5: 4, 6: 4},
        "reference_remap": {},
        "ignore_values": [0, 15],
        "class_names": {1: "Water", 2: "Tree canopy"},
    }
    with pytest.raises(InputError, match="classified remap"):
        class_arguments(algorithm, {"CLASSIFIED_REMAP": "5-4"}, QgsProcessingContext())


def test_class_files_are_inputs(algorithm: ClassesAlgorithm, tmp_path: Path) -> None:
    """Remaps and names given as files are read: no output may overwrite them."""
    parameters = {
        "CLASSIFIED_REMAP": f" {tmp_path / 'remap.CSV'} ",
        "REFERENCE_REMAP": "5:4",
        "IGNORE_VALUES": str(tmp_path / "ignored.json"),  # a list of values, never a file
        "CLASS_NAMES": str(tmp_path / "names.json"),
    }
    assert class_input_files(algorithm, parameters, QgsProcessingContext()) == [
        ("CLASSIFIED_REMAP", str(tmp_path / "remap.CSV")),
        ("CLASS_NAMES", str(tmp_path / "names.json")),
    ]
