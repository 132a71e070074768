# SPDX-License-Identifier: GPL-2.0-or-later
"""Whether QGIS's Python has ONNX Runtime, and if not, how to install it there.

Only ``landcover:classify`` (and algorithms running a model) need it; the plugin loads
and the accuracy and download algorithms run without it. The message is what QGIS shows
(as HTML) when the algorithm's ``canExecute()`` says no, before its dialog opens.
"""

from __future__ import annotations

import importlib
import platform
import sys
from pathlib import Path

INSTALL_COMMANDS = (
    (
        "Linux",
        "in a terminal, for the Python QGIS runs (the system's python3):",
        "python3 -m pip install --user onnxruntime",
        "On Debian 12+ and Ubuntu 23.04+ pip refuses the system Python unless "
        "--break-system-packages is added (or use a distribution package "
        "python3-onnxruntime where there is one).",
    ),
    (
        "Windows (OSGeo4W or the QGIS standalone installer)",
        'open the "OSGeo4W Shell" from the Start menu (as administrator when QGIS was '
        "installed for all users) and run:",
        "python -m pip install onnxruntime",
        "",
    ),
    (
        "macOS (QGIS.app from qgis.org)",
        "in Terminal, with QGIS's own Python (QGIS-LTR.app for the long-term release):",
        "/Applications/QGIS.app/Contents/MacOS/bin/python3 -m pip install onnxruntime",
        "",
    ),
)
"""(platform, where, command, note) for each platform QGIS is installed on."""


def onnxruntime_missing() -> str:
    """``""`` when ONNX Runtime imports in this Python; else what is missing and how
    to install it into the Python QGIS uses, on Linux, Windows (OSGeo4W) and macOS, this
    computer's platform first (HTML, as QGIS displays ``canExecute`` messages)."""
    try:
        importlib.import_module("onnxruntime")
    except (ImportError, OSError) as error:  # OSError: a broken native library
        return install_help(str(error))
    return ""


def install_help(reason: str) -> str:
    """The message of :func:`onnxruntime_missing` for an import that failed with
    ``reason``."""
    system = platform.system()
    first = {"Linux": "Linux", "Windows": "Windows", "Darwin": "macOS"}.get(system, "")
    ordered = sorted(INSTALL_COMMANDS, key=lambda entry: not entry[0].startswith(first))
    steps = "".join(
        f"<li><b>{name}</b>: {where}<br><code>{command}</code>{f'<br>{note}' if note else ''}</li>"
        for name, where, command, note in ordered
    )
    python = Path(sys.exec_prefix)
    return (
        "<p>ONNX Runtime (the Python package <code>onnxruntime</code>), which runs the "
        "land-cover models, is not installed in the Python that QGIS uses "
        f"(Python {platform.python_version()} in {python}; import error: {reason}).</p>"
        f"<p>Install it there, then restart QGIS:</p><ul>{steps}</ul>"
        "<p>For an NVIDIA GPU install <code>onnxruntime-gpu</code> instead (Linux, "
        "Windows). The accuracy assessment and model download algorithms work without "
        "it.</p>"
    )
