# SPDX-License-Identifier: GPL-2.0-or-later
"""``qgis_landcover.core`` imports without ``qgis`` and without ``torch``."""

from __future__ import annotations

import pkgutil

import qgis_landcover.core

from .conftest import run_python


def core_modules() -> list[str]:
    return [
        info.name
        for info in pkgutil.walk_packages(qgis_landcover.core.__path__, "qgis_landcover.core.")
    ]


def test_core_never_imports_qgis_or_torch() -> None:
    modules = ["qgis_landcover.core", *core_modules()]
    # The walk goes down into the sub-packages (files/, raster/, inference/, ...).
    assert "qgis_landcover.core.inference.classify" in modules
    # Block the forbidden packages outright, so an import anywhere fails loudly.
    script = (
        "import sys, importlib\n"
        "for forbidden in ('qgis', 'torch', 'PyQt5'):\n"
        "    sys.modules[forbidden] = None\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "leaked = [m for m in sys.modules if m.split('.')[0] in ('qgis', 'torch', 'PyQt5')"
        " and sys.modules[m] is not None]\n"
        "assert not leaked, leaked\n"
        "print('OK', len(" + repr(modules) + "))\n"
    )
    completed = run_python(script)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.startswith("OK")
