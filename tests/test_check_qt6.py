# SPDX-License-Identifier: GPL-2.0-or-later
"""scripts/check_qt6.py: what breaks with PyQt6 (QGIS 4) is reported, what works with
both Qt 5 and Qt 6 is not, and the plugin itself is clean and declares Qt 6 support."""

from __future__ import annotations

import configparser
import importlib.util
import sys
import textwrap
from pathlib import Path

import pytest

from .conftest import ROOT

_spec = importlib.util.spec_from_file_location("check_qt6", ROOT / "scripts" / "check_qt6.py")
assert _spec is not None and _spec.loader is not None
check_qt6 = importlib.util.module_from_spec(_spec)
sys.modules["check_qt6"] = check_qt6
_spec.loader.exec_module(check_qt6)


def findings(source: str) -> list[tuple[int, str, str]]:
    """(line, code, message) of each finding in a snippet."""
    found = check_qt6.check_source(textwrap.dedent(source), Path("snippet.py"))
    return [(f.line, f.code, f.message) for f in found]


def codes(source: str) -> list[tuple[int, str]]:
    return [(line, code) for line, code, _ in findings(source)]


@pytest.mark.parametrize(
    "statement",
    [
        "from PyQt5.QtCore import Qt",
        "from PyQt6 import QtCore",
        "import PyQt5.QtWidgets",
        "import sip",
        "from PySide6.QtCore import Qt",
        "from qgis.PyQt.Qt import Qt",
    ],
)
def test_direct_qt_imports_are_reported(statement: str) -> None:
    assert codes(statement) == [(1, "QT001")]


def test_qgis_pyqt_imports_are_accepted() -> None:
    source = """
        from qgis.PyQt import sip
        from qgis.PyQt.QtCore import Qt, QCoreApplication
        from qgis.PyQt.QtWidgets import QDialog
    """
    assert codes(source) == []


def test_exec_underscore_is_reported_and_exec_accepted() -> None:
    source = """
        from qgis.PyQt.QtWidgets import QDialog
        dialog = QDialog()
        dialog.exec_()
        dialog.exec()
    """
    assert codes(source) == [(4, "QT002")]


def test_unscoped_enums_are_reported_with_their_scoped_spelling() -> None:
    source = """
        from qgis.core import Qgis, QgsProcessing, QgsProcessingParameterNumber
        from qgis.PyQt.QtCore import Qt
        import qgis.core
        a = Qt.AlignLeft
        b = QgsProcessing.TypeVectorPoint
        c = QgsProcessingParameterNumber.Integer
        d = Qgis.Byte
        e = qgis.core.QgsProcessing.TypeRaster
    """
    found = findings(source)
    assert [(line, code) for line, code, _ in found] == [
        (5, "QT003"),
        (6, "QT003"),
        (7, "QT003"),
        (8, "QT003"),
        (9, "QT003"),
    ]
    messages = [message for _, _, message in found]
    assert "write Qt.AlignmentFlag.AlignLeft" in messages[0]
    assert "write QgsProcessing.SourceType.TypeVectorPoint" in messages[1]
    assert "write QgsProcessingParameterNumber.Type.Integer" in messages[2]
    assert "write Qgis.DataType.Byte" in messages[3]
    assert "write qgis.core.QgsProcessing.SourceType.TypeRaster" in messages[4]


def test_suggested_scoped_spellings_exist_in_this_pyqgis() -> None:
    # The plugin supports QGIS 3.22 (PyQt5): the spelling the check asks for must work here.
    from qgis.core import Qgis, QgsProcessing, QgsProcessingParameterNumber
    from qgis.PyQt.QtCore import Qt

    assert Qt.AlignmentFlag.AlignLeft == Qt.AlignLeft
    assert QgsProcessing.SourceType.TypeVectorPoint == QgsProcessing.TypeVectorPoint
    assert QgsProcessingParameterNumber.Type.Integer == QgsProcessingParameterNumber.Integer
    assert Qgis.DataType.Byte == Qgis.Byte


def test_scoped_enums_classes_and_other_attributes_are_accepted() -> None:
    source = """
        from qgis.core import Qgis, QgsProcessing, QgsProcessingParameterDefinition
        from qgis.PyQt.QtCore import Qt
        a = Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop
        b = QgsProcessing.SourceType.TypeVectorPoint
        c = QgsProcessingParameterDefinition.Flag.FlagAdvanced
        d = Qgis.DataType.Byte
        e = Qt.AlignmentFlag
        f = QgsProcessing.TEMPORARY_OUTPUT
        g = QgsProcessingParameterDefinition.flags
        h = Qgis.QGIS_VERSION
    """
    assert codes(source) == []


def test_names_that_are_not_from_qgis_are_not_looked_up() -> None:
    source = """
        import enum
        class Color(enum.Enum):
            RED = 1
        class Qt:
            AlignLeft = Color.RED
        a = Color.RED
        b = Qt.AlignLeft
    """
    assert codes(source) == []


def test_qvariant_type_codes_and_null_values_are_reported() -> None:
    source = """
        from qgis.PyQt.QtCore import QVariant
        kind = QVariant.Int
        null = QVariant()
    """
    assert codes(source) == [(3, "QT004"), (4, "QT004")]


def test_classes_removed_in_qt6_are_reported() -> None:
    assert codes("from qgis.PyQt.QtCore import QRegExp") == [(1, "QT005")]


def test_main_exits_nonzero_on_findings(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("from qgis.PyQt.QtCore import Qt\nx = Qt.AlignLeft\n")
    good = tmp_path / "good.py"
    good.write_text("from qgis.PyQt.QtCore import Qt\nx = Qt.AlignmentFlag.AlignLeft\n")
    assert check_qt6.main([str(bad)]) == 1
    assert f"{bad}:2:5: QT003" in capsys.readouterr().out
    assert check_qt6.main([str(good)]) == 0


def test_the_plugin_has_no_findings() -> None:
    found = check_qt6.check_paths([ROOT / "qgis_landcover"])
    assert found == [], "\n".join(str(f) for f in found)


def test_metadata_declares_qt6_and_qgis4_support() -> None:
    # metadata.txt at the root is the one file (qgis_landcover/metadata.txt links to it,
    # scripts/package.py puts it in the zip).
    parser = configparser.ConfigParser()
    parser.read(ROOT / "metadata.txt", encoding="utf-8")
    general = parser["general"]
    assert general["qgisMinimumVersion"] == "3.22"
    assert general["qgisMaximumVersion"] == "4.99"
    assert general["supportsQt6"] == "True"
