# SPDX-License-Identifier: GPL-2.0-or-later
"""The provider registers in a headless QGIS and lists its algorithms."""

from __future__ import annotations

from typing import Any

from qgis.core import QgsApplication

from qgis_landcover.algorithms import algorithm_classes


def test_provider_is_registered_with_its_algorithms(landcover_provider: Any) -> None:
    registry = QgsApplication.processingRegistry()
    provider = registry.providerById("landcover")
    assert provider is landcover_provider
    assert provider.name() == "Land cover (U-Net)"
    assert not provider.icon().isNull()
    expected = {cls().name() for cls in algorithm_classes()}
    listed = {algorithm.name() for algorithm in provider.algorithms()}
    assert listed == expected
    for algorithm in provider.algorithms():
        assert algorithm.id() == f"landcover:{algorithm.name()}"
        assert algorithm.displayName() and algorithm.group() and algorithm.shortHelpString()
        for parameter in algorithm.parameterDefinitions():
            assert parameter.description(), f"{algorithm.id()} {parameter.name()}"


def test_plugin_class_factory_works_without_iface(qgis_processing: None) -> None:
    import qgis_landcover

    plugin = qgis_landcover.classFactory(None)
    registry = QgsApplication.processingRegistry()
    before = registry.providerById("landcover")
    if before is not None:
        registry.removeProvider(before)
    try:
        plugin.initProcessing()
        assert registry.providerById("landcover") is plugin.provider
    finally:
        plugin.unload()
        assert registry.providerById("landcover") is None
