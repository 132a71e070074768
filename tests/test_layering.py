# SPDX-License-Identifier: GPL-2.0-or-later
"""The plugin's layers, read from the import statements (every ``import``, also inside
functions): ``core`` imports neither ``qgis_glue`` nor ``algorithms``; ``qgis_glue``
imports no algorithm; no algorithm imports another (``base`` is shared; the package's
``__init__`` registers them all). tests/test_core_isolation.py checks that the core
runs without qgis."""

from __future__ import annotations

import ast
from pathlib import Path

from .conftest import ROOT

PACKAGE = ROOT / "qgis_landcover"


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path) -> set[str]:
    """Absolute names of what ``path`` imports (for ``from X import y``: ``X`` and
    ``X.y``, since ``y`` may be a module)."""
    package = (
        module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    )
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")
            if node.level:
                base = base[: len(base) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def imports_of(folder: str) -> dict[str, set[str]]:
    """Each module under ``qgis_landcover/<folder>`` and the project modules it imports."""
    return {
        module_name(path): {
            name for name in imported_modules(path) if name.startswith("qgis_landcover.")
        }
        for path in sorted((PACKAGE / folder).rglob("*.py"))
    }


def under(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def test_the_import_reader_resolves_relative_imports() -> None:
    """Guards the test itself: it must see the imports it is meant to police."""
    download = imports_of("algorithms")["qgis_landcover.algorithms.download_model"]
    assert "qgis_landcover.algorithms.base" in download  # from .base import ...
    assert "qgis_landcover.qgis_glue.settings" in download  # from ..qgis_glue.settings ...
    registry = imports_of("algorithms")["qgis_landcover.algorithms"]
    assert "qgis_landcover.algorithms.agreement" in registry
    resolution = imports_of("qgis_glue")["qgis_landcover.qgis_glue.model_resolution"]
    assert "qgis_landcover.qgis_glue.settings.model_cache_dir" in resolution
    assert "qgis_landcover.qgis_glue.feedback" in resolution  # from .feedback import ...


def test_no_algorithm_imports_another() -> None:
    def shared(name: str) -> bool:
        return name == "qgis_landcover.algorithms" or under(name, "qgis_landcover.algorithms.base")

    offending = {
        module: sorted(
            name
            for name in imports
            if under(name, "qgis_landcover.algorithms")
            and not under(name, module)
            and not shared(name)
        )
        for module, imports in imports_of("algorithms").items()
        if module != "qgis_landcover.algorithms"  # the registry imports each algorithm
    }
    assert {m: names for m, names in offending.items() if names} == {}


def test_qgis_glue_imports_no_algorithm() -> None:
    offending = {
        module: sorted(
            name
            for name in imports
            if not under(name, "qgis_landcover.core")
            and not under(name, "qgis_landcover.qgis_glue")
        )
        for module, imports in imports_of("qgis_glue").items()
    }
    assert {m: names for m, names in offending.items() if names} == {}


def test_core_imports_only_the_core() -> None:
    offending = {
        module: sorted(name for name in imports if not under(name, "qgis_landcover.core"))
        for module, imports in imports_of("core").items()
    }
    assert {m: names for m, names in offending.items() if names} == {}
