# SPDX-License-Identifier: GPL-2.0-or-later
"""The zip from ``make package`` installs into a fresh plugin folder and loads."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

from .conftest import ROOT, run_python


def test_package_zip_unpacks_and_loads_in_headless_qgis(tmp_path: Path) -> None:
    zip_path = tmp_path / "qgis_landcover.zip"
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "package.py"), "--output", str(zip_path)],
        check=True,
        capture_output=True,
    )
    with zipfile.ZipFile(zip_path) as archive:
        names = archive.namelist()
        assert all(name.startswith("qgis_landcover/") for name in names)
        assert "qgis_landcover/metadata.txt" in names
        assert not any("__pycache__" in name or name.endswith(".pyc") for name in names)
        # What the dialogs show: each algorithm's help page and icon (issue 16).
        for algorithm in ("classify", "agreement", "sample_accuracy", "download_model"):
            assert f"qgis_landcover/help/{algorithm}.html" in names
            assert f"qgis_landcover/icons/{algorithm}.svg" in names
        assert "qgis_landcover/help/style.css" in names
        metadata = archive.read("qgis_landcover/metadata.txt").decode()
        assert "hasProcessingProvider=yes" in metadata
        plugins = tmp_path / "plugins"
        archive.extractall(plugins)

    # A fresh interpreter that can only find the plugin in the unpacked folder.
    script = (
        "import sys\n"
        "from qgis.core import QgsApplication\n"
        "app = QgsApplication([], False); app.initQgis()\n"
        f"sys.path.insert(0, {str(plugins)!r})\n"
        "import qgis_landcover\n"
        f"assert qgis_landcover.__file__.startswith({str(plugins)!r}), qgis_landcover.__file__\n"
        "plugin = qgis_landcover.classFactory(None)\n"
        "plugin.initProcessing()\n"
        "provider = QgsApplication.processingRegistry().providerById('landcover')\n"
        "print('ALGORITHMS', sorted(a.id() for a in provider.algorithms()))\n"
        "plugin.unload()\n"
        "app.exitQgis()\n"
    )
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "PYTHONPATH": ""}
    completed = run_python(script, cwd=tmp_path, env=env)
    assert completed.returncode == 0, completed.stderr
    assert "ALGORITHMS" in completed.stdout
