# SPDX-License-Identifier: GPL-2.0-or-later
"""The provider registers in a headless QGIS and lists its algorithms."""

from __future__ import annotations

import re
from html import escape
from pathlib import Path
from typing import Any

import pytest
from qgis.core import QgsApplication
from qgis.PyQt.QtCore import QUrl

from qgis_landcover.algorithms import algorithm_classes

from .conftest import ROOT

PLUGIN = ROOT / "qgis_landcover"
MODELER_CHARACTERS = 24


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


# -- what the desktop shows: search, help, icons, modeler names (issue 16) --------------

OWN_ALGORITHMS = tuple(sorted(cls.NAME for cls in algorithm_classes()))
"""Every algorithm of the plugin: each has its help page, its icon and short names."""


def toolbox_search(text: str) -> set[str]:
    """The ``landcover`` algorithms QGIS's Toolbox lists for the search ``text`` (its
    own filter: every typed word inside the name, a tag, the id or the group)."""
    from qgis.gui import QgsProcessingToolboxProxyModel
    from qgis.PyQt.QtCore import QModelIndex

    proxy = QgsProcessingToolboxProxyModel(None, QgsApplication.processingRegistry())
    proxy.setFilters(QgsProcessingToolboxProxyModel.Filter.FilterToolbox)
    proxy.setFilterString(text)
    model = proxy.toolboxModel()
    found: set[str] = set()

    def walk(parent: QModelIndex) -> None:
        for row in range(proxy.rowCount(parent)):
            index = proxy.index(row, 0, parent)
            algorithm = model.algorithmForIndex(proxy.mapToSource(index))
            if algorithm is not None and algorithm.id().startswith("landcover:"):
                found.add(algorithm.name())
            walk(index)

    walk(QModelIndex())
    return found


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("kappa", {"agreement"}),
        ("confusion matrix", {"agreement", "sample_accuracy"}),
        ("accuracy", {"agreement", "sample_accuracy"}),
        ("onnx", {"classify", "download_model"}),
        ("NAIP", {"classify", "download_model"}),
        ("segmentation", {"classify", "download_model"}),
        ("U-Net", set(OWN_ALGORITHMS)),
    ],
)
def test_toolbox_search_finds_the_algorithms(
    landcover_provider: Any, text: str, expected: set[str]
) -> None:
    found = toolbox_search(text)
    assert expected <= found
    if text == "kappa":  # and not everything
        assert "classify" not in found and "download_model" not in found


@pytest.mark.parametrize("name", OWN_ALGORITHMS)
def test_help_is_a_page_shipped_in_the_plugin(landcover_provider: Any, name: str) -> None:
    algorithm = landcover_provider.algorithm(name)
    url = QUrl(algorithm.helpUrl())
    assert url.isLocalFile(), algorithm.helpUrl()
    page = Path(url.toLocalFile())
    assert page == PLUGIN / "help" / f"{name}.html" and page.is_file()
    html = page.read_text(encoding="utf-8")
    # Every parameter and output, by name and label, as the dialog and scripts name them.
    for definition in [*algorithm.parameterDefinitions(), *algorithm.outputDefinitions()]:
        assert f"<code>{definition.name()}</code>" in html, definition.name()
        assert escape(definition.description(), quote=False) in html, definition.description()
    assert "<h2>Examples" in html or "<h2>Example" in html
    for link in re.findall(r'href="([^"#:]+)"', html):
        assert (page.parent / link).is_file(), link
    # No docs.qgis.org page: QGIS builds one from the provider's helpId when not empty.
    assert landcover_provider.helpId() == ""


@pytest.mark.parametrize("name", OWN_ALGORITHMS)
def test_each_algorithm_has_its_own_svg_icon(landcover_provider: Any, name: str) -> None:
    from qgis.PyQt.QtSvg import QSvgRenderer

    algorithm = landcover_provider.algorithm(name)
    assert Path(algorithm.svgIconPath()) == PLUGIN / "icons" / f"{name}.svg"
    assert QSvgRenderer(algorithm.svgIconPath()).isValid()
    assert not algorithm.icon().isNull()


@pytest.mark.parametrize("name", OWN_ALGORITHMS)
def test_names_fit_the_modeler_boxes(landcover_provider: Any, name: str) -> None:
    """The modeler draws parameters and outputs by description in boxes about 24
    characters wide and cuts longer ones ("Bands feeding the mo…")."""
    algorithm = landcover_provider.algorithm(name)
    for definition in [*algorithm.parameterDefinitions(), *algorithm.outputDefinitions()]:
        assert len(definition.description()) <= MODELER_CHARACTERS, definition.description()


def test_agreement_help_says_where_the_remap_example_goes(landcover_provider: Any) -> None:
    text = landcover_provider.algorithm("agreement").shortHelpString()
    assert "type 5:4,6:4,15:0 in 'Remap reference values' (REFERENCE_REMAP)" in text


def test_plugin_class_factory_works_without_iface(qgis_processing: None) -> None:
    # It removes the session's provider; the landcover_provider fixture registers it again.
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
