# SPDX-License-Identifier: GPL-2.0-or-later
"""Report Python code that works with PyQt5 (QGIS 3) but breaks with PyQt6 (QGIS 4).

The QGIS project's ``scripts/pyqt5_to_pyqt6/pyqt5_to_pyqt6.py`` rewrites code and needs
PyQt6 to look enums up; neither suits a check on Debian's QGIS 3.22. This check reads
each file's syntax tree and reports, without changing anything:

QT001  a direct ``PyQt5``/``PyQt6``/``PySide``/``sip`` import, or ``qgis.PyQt.Qt``
       (only the ``qgis.PyQt`` modules switch between Qt 5 and Qt 6).
QT002  ``exec_()`` (gone in PyQt6: ``exec()``).
QT003  an enum member read from its class, e.g. ``Qt.AlignLeft`` or
       ``QgsProcessing.TypeVectorPoint``: PyQt6 enums are scoped
       (``Qt.AlignmentFlag.AlignLeft``, ``QgsProcessing.SourceType.TypeVectorPoint``).
       The names are looked up in the PyQGIS this runs with, so only real enum members
       are reported, and the scoped spelling suggested exists here (PyQt5 has it too).
QT004  ``QVariant`` type codes or null values (``QVariant.Int``, ``QVariant()``):
       PyQt6 has no QVariant class to use that way (``QMetaType.Type``, ``NULL``/None).
QT005  a Qt 5 class that Qt 6 removed (``QRegExp``, ``QDesktopWidget``, ...).

Usage: ``python scripts/check_qt6.py [paths...]`` (default: ``qgis_landcover``); the exit
status is 1 when anything is found. Run by ``make lint``.
"""

from __future__ import annotations

import argparse
import ast
import enum
import importlib
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

DIRECT_QT_MODULES = ("PyQt5", "PyQt6", "PySide2", "PySide6", "sip")
# Modules whose classes are looked up for enum members (QT003).
QT_MODULE_PREFIXES = ("qgis.",)
REMOVED_IN_QT6 = {
    "QRegExp": "QRegularExpression",
    "QRegExpValidator": "QRegularExpressionValidator",
    "QDesktopWidget": "QScreen (QGuiApplication.screens())",
    "QTextCodec": "Python's str.encode/bytes.decode",
    "QStringRef": "str",
    "QGLWidget": "QOpenGLWidget",
}


@dataclass(frozen=True)
class Finding:
    """One place in a file that breaks with PyQt6."""

    path: Path
    line: int
    column: int
    code: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.column + 1}: {self.code} {self.message}"


def _is_enum_member(value: object) -> bool:
    """A PyQt5 sip enum member (an int whose type is a ``sip.enumtype``) or a Python
    enum member (PyQt6, and QGIS's own scoped enums in both)."""
    return isinstance(value, enum.Enum) or type(type(value)).__name__ == "enumtype"


def _enum_attribute(owner: object, member: object) -> str | None:
    """The name under which ``owner`` holds the enum type of ``member`` (for
    ``QgsMapLayer.RasterLayer`` it is ``LayerType``), or None when it holds none."""
    enum_type = type(member)
    direct = enum_type.__name__
    if getattr(owner, direct, None) is enum_type:
        return direct
    for name in dir(owner):
        if not name.startswith("_") and getattr(owner, name, None) is enum_type:
            return name
    return None


class _Checker(ast.NodeVisitor):
    """Collects findings for one module's syntax tree."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.findings: list[Finding] = []
        # Local name -> dotted path of what it stands for, from the imports.
        self.imported: dict[str, str] = {}
        self._resolved: dict[str, object] = {}

    def report(self, node: ast.AST, code: str, message: str) -> None:
        self.findings.append(
            Finding(self.path, node.lineno, node.col_offset, code, message)  # type: ignore[attr-defined]
        )

    # -- imports -----------------------------------------------------------------------

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._check_module(node, alias.name)
            if alias.asname:
                self.imported[alias.asname] = alias.name
            else:
                top = alias.name.split(".")[0]
                self.imported[top] = top

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        module = node.module or ""
        if node.level == 0:
            self._check_module(node, module)
        for alias in node.names:
            if alias.name in REMOVED_IN_QT6:
                self.report(
                    node,
                    "QT005",
                    f"{alias.name} was removed in Qt 6: use {REMOVED_IN_QT6[alias.name]}",
                )
            if node.level == 0 and alias.name != "*":
                self.imported[alias.asname or alias.name] = f"{module}.{alias.name}"

    def _check_module(self, node: ast.AST, module: str) -> None:
        top = module.split(".")[0]
        if top in DIRECT_QT_MODULES:
            self.report(
                node, "QT001", f"import of {module}: import from qgis.PyQt instead (Qt 5 and 6)"
            )
        elif module == "qgis.PyQt.Qt" or module.startswith("qgis.PyQt.Qt."):
            self.report(node, "QT001", "qgis.PyQt.Qt does not exist with Qt 6: name the module")

    # -- expressions -------------------------------------------------------------------

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if node.attr == "exec_":
            self.report(node, "QT002", "exec_() does not exist in PyQt6: call exec()")
        dotted = _dotted(node.value)
        if dotted is not None:
            self._check_enum(node, dotted)
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        dotted = _dotted(node.func)
        if dotted is not None and self._qualified(dotted).endswith("QtCore.QVariant"):
            self.report(node, "QT004", "QVariant() as a null value breaks in PyQt6: use NULL")
        self.generic_visit(node)

    def _check_enum(self, node: ast.Attribute, dotted: str) -> None:
        qualified = self._qualified(dotted)
        if qualified.endswith("QtCore.QVariant"):
            self.report(
                node,
                "QT004",
                f"QVariant.{node.attr}: PyQt6 has no QVariant type codes "
                "(QMetaType.Type, or NULL for a null value)",
            )
            return
        if not qualified.startswith(QT_MODULE_PREFIXES):
            return
        owner = self._resolve(qualified)
        if owner is None or not isinstance(owner, type):
            return
        member = getattr(owner, node.attr, None)
        if not _is_enum_member(member) or type(member) is owner:
            return  # not an enum member, or already read from its own enum type
        scope = _enum_attribute(owner, member)
        if scope is not None:
            hint = f"{dotted}.{scope}.{node.attr}"
        else:
            hint = f"{type(member).__qualname__}.{node.attr}"
        self.report(
            node, "QT003", f"{dotted}.{node.attr} is not a scoped enum: write {hint} (PyQt6)"
        )

    def _qualified(self, dotted: str) -> str:
        """``Qt.AlignmentFlag`` -> ``qgis.PyQt.QtCore.Qt.AlignmentFlag`` via the imports."""
        head, _, rest = dotted.partition(".")
        base = self.imported.get(head)
        if base is None:
            return dotted
        return f"{base}.{rest}" if rest else base

    def _resolve(self, qualified: str) -> object | None:
        """The object a dotted path names (importing its module), or None."""
        if qualified in self._resolved:
            return self._resolved[qualified]
        parts = qualified.split(".")
        found: object | None = None
        for cut in range(len(parts), 0, -1):
            try:
                found = importlib.import_module(".".join(parts[:cut]))
            except ImportError:
                continue
            for part in parts[cut:]:
                found = getattr(found, part, None)
                if found is None:
                    break
            break
        self._resolved[qualified] = found
        return found


def _dotted(node: ast.expr) -> str | None:
    """``a.b.c`` for a chain of names, None for anything else (calls, subscripts)."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(node.id)
    return ".".join(reversed(parts))


def check_source(source: str, path: Path) -> list[Finding]:
    """Findings for one file's text."""
    checker = _Checker(path)
    checker.visit(ast.parse(source, filename=str(path)))
    return sorted(checker.findings, key=lambda f: (f.line, f.column, f.code))


def python_files(paths: Iterable[Path]) -> Iterator[Path]:
    """The ``.py`` files under the given files and folders, sorted."""
    for path in paths:
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*.py") if "__pycache__" not in p.parts)
        else:
            yield path


def check_paths(paths: Iterable[Path]) -> list[Finding]:
    """Findings for every Python file under ``paths``."""
    findings: list[Finding] = []
    for path in python_files(paths):
        findings.extend(check_source(path.read_text(encoding="utf-8"), path))
    return findings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="*", type=Path, default=[ROOT / "qgis_landcover"])
    args = parser.parse_args(argv)
    findings = check_paths(args.paths)
    for finding in findings:
        print(finding)
    files = sum(1 for _ in python_files(args.paths))
    print(f"check_qt6: {len(findings)} finding(s) in {files} file(s)", file=sys.stderr)
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
