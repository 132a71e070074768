# SPDX-License-Identifier: GPL-2.0-or-later
"""A QGIS whose Python has no ONNX Runtime: the plugin loads with every algorithm,
classify says before it runs what is missing and how to install it, and the accuracy
and download algorithms work (a fresh interpreter where ``import onnxruntime`` fails)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from qgis_landcover.algorithms import algorithm_classes

from .conftest import DATA, ROOT, run_python

SCRIPT = """
import json, sys
sys.modules["onnxruntime"] = None  # as if not installed: every import of it fails
from pathlib import Path
from qgis.core import QgsApplication, QgsSettings
app = QgsApplication([], False)
app.initQgis()
sys.path.insert(0, "/usr/share/qgis/python/plugins")
from processing.core.Processing import Processing
Processing.initialize()
import processing
import qgis_landcover
from qgis_landcover.qgis_glue.settings import CACHE_DIR_SETTING
from tests.core.models.test_download import ModelServer, sha
from tests.core.models.test_resolve import contract_model

plugin = qgis_landcover.classFactory(None)
plugin.initProcessing()
provider = QgsApplication.processingRegistry().providerById("landcover")
out = Path(sys.argv[1])
found = {"algorithms": sorted(a.name() for a in provider.algorithms())}
found["can_execute"] = {a.name(): list(a.canExecute()) for a in provider.algorithms()}
lc = sys.argv[2]
agreement = processing.run("landcover:agreement", {
    "CLASSIFIED": lc, "REFERENCE": lc, "OUTPUT_HTML": str(out / "report.html")})
found["agreement"] = agreement["OVERALL_ACCURACY"]
QgsSettings().setValue(CACHE_DIR_SETTING, str(out / "cache"))
data = contract_model(out / "src.onnx")
with ModelServer() as server:
    url = server.add("/unet.onnx", data)
    download = processing.run("landcover:download_model", {"MODEL": url, "SHA256": sha(data)})
QgsSettings().remove(CACHE_DIR_SETTING)
found["downloaded"] = Path(download["MODEL_PATH"]).read_bytes() == data
found["onnxruntime"] = sys.modules["onnxruntime"] is None
print("RESULT " + json.dumps(found))
plugin.unload()
"""


def test_plugin_works_without_onnx_runtime(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "QT_QPA_PLATFORM": "offscreen",
        "PYTHONPATH": str(ROOT),
        "NO_PROXY": "*",
    }
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY"):
        env.pop(name, None)
    lc = DATA / "chesapeake_lowres_tile" / "m_3907833_nw_17_1_lc.tif"
    completed = run_python(SCRIPT, tmp_path, lc, env=env)
    lines = [line for line in completed.stdout.splitlines() if line.startswith("RESULT ")]
    assert completed.returncode == 0 and lines, completed.stdout + completed.stderr
    found = json.loads(lines[0].removeprefix("RESULT "))
    assert found["onnxruntime"]  # it stayed unimportable throughout
    assert found["algorithms"] == sorted(cls().name() for cls in algorithm_classes())
    # every algorithm that runs a model says so before its dialog opens
    for name in ("classify_tiles", "adapt_model", "suggest_points"):
        ok, other_message = found["can_execute"][name]
        assert not ok and "onnxruntime" in other_message, name
    ok, message = found["can_execute"]["classify"]
    assert not ok
    for expected in (
        "onnxruntime",
        "python3 -m pip install --user onnxruntime",  # Linux
        "OSGeo4W Shell",  # Windows
        "python -m pip install onnxruntime",
        "/Applications/QGIS.app/Contents/MacOS/bin/python3 -m pip install onnxruntime",
        "restart QGIS",
    ):
        assert expected in message, expected
    for name in ("agreement", "sample_accuracy", "download_model", "sample_design"):
        assert found["can_execute"][name] == [True, ""]
    assert found["agreement"] == 1.0
    assert found["downloaded"]


def test_classify_can_execute_with_onnx_runtime() -> None:
    from qgis_landcover.algorithms.classify import ClassifyAlgorithm

    assert ClassifyAlgorithm().canExecute() == (True, "")
