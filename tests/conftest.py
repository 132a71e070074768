# SPDX-License-Identifier: GPL-2.0-or-later
"""Shared fixtures: repository paths, the registered provider, and helpers that run
algorithms in-process (``processing.run``) or through ``qgis_process``.

pytest-qgis starts a headless QgsApplication for the session (pyproject.toml sets
``qgis_gui_enabled = false``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data"
TEST_DATA = Path(__file__).resolve().parent / "data"
QGIS_PROCESS = ROOT / "scripts" / "qgis_process"


#: Python references to the providers the fixture registered: the registry owns the C++
#: object, but without a Python reference the subclass's methods are lost with its wrapper.
_REGISTERED_PROVIDERS: list[Any] = []


@pytest.fixture
def landcover_provider(qgis_processing: None) -> Any:
    """The ``landcover`` provider of the session's processing registry, registered again
    when a test removed it (per test, so no test depends on the order the files run in)."""
    from qgis.core import QgsApplication

    from qgis_landcover.provider import LandcoverProvider

    registry = QgsApplication.processingRegistry()
    provider = registry.providerById("landcover")
    if provider is None:
        provider = LandcoverProvider()
        assert registry.addProvider(provider)
        _REGISTERED_PROVIDERS.append(provider)
    return provider


@pytest.fixture
def run_algorithm(landcover_provider: Any) -> Callable[..., dict[str, Any]]:
    """Run ``landcover:<name>`` with ``processing.run`` and return its results dict."""
    import processing
    from qgis.core import QgsProcessingContext, QgsProcessingFeedback

    def run(
        name: str,
        parameters: dict[str, Any],
        feedback: QgsProcessingFeedback | None = None,
        context: QgsProcessingContext | None = None,
    ) -> dict[str, Any]:
        algorithm_id = name if ":" in name else f"landcover:{name}"
        return processing.run(
            algorithm_id,
            parameters,
            feedback=feedback or QgsProcessingFeedback(),
            context=context,
        )

    return run


def run_python(
    script: str,
    *args: str | os.PathLike[str],
    cwd: Path = ROOT,
    env: dict[str, str] | None = None,
    timeout: float = 300,
) -> subprocess.CompletedProcess[str]:
    """Run ``script`` (Python source) with ``args`` in a fresh process of this Python:
    what a separate process sees (its imports, its environment; ``None``: this one's)."""
    command = [sys.executable, "-c", script, *map(str, args)]
    return subprocess.run(
        command, capture_output=True, text=True, cwd=cwd, env=env, timeout=timeout, check=False
    )


def run_qgis_process(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run ``scripts/qgis_process`` (the project's headless wrapper) with ``args``."""
    return subprocess.run(
        [str(QGIS_PROCESS), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "QT_QPA_PLATFORM": "offscreen"},
        check=False,
    )


def qgis_process_json(*args: str, timeout: float = 600) -> dict[str, Any]:
    """``qgis_process --json ARGS``, parsed; fails the test with QGIS's output on error."""
    completed = run_qgis_process("--json", *args, timeout=timeout)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    start = completed.stdout.find("{")
    assert start >= 0, completed.stdout + completed.stderr
    return json.loads(completed.stdout[start:])
