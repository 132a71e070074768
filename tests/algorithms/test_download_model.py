# SPDX-License-Identifier: GPL-2.0-or-later
"""``landcover:download_model`` in-process and through ``qgis_process``, against a
server on 127.0.0.1."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from qgis.core import (
    QgsApplication,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingModelAlgorithm,
    QgsProcessingModelChildAlgorithm,
    QgsProcessingModelChildParameterSource,
    QgsProcessingModelParameter,
    QgsProcessingOutputFile,
    QgsProcessingParameterString,
    QgsSettings,
)

from qgis_landcover.core.models.contract import read_contract
from qgis_landcover.qgis_glue.settings import CACHE_DIR_SETTING

from ..conftest import QGIS_PROCESS, qgis_process_json
from ..core.models.test_download import ModelServer, serve, sha
from ..core.models.test_resolve import contract_model
from ..feedback import RecordingFeedback
from ..onnx_models import contract_for

Run = Callable[..., dict[str, Any]]


server = pytest.fixture(serve, name="server")


@pytest.fixture
def cache(tmp_path: Path) -> Iterator[Path]:
    """Point the plugin's cache setting at a temporary folder for one test."""
    settings = QgsSettings()
    folder = tmp_path / "cache"
    settings.setValue(CACHE_DIR_SETTING, str(folder))
    yield folder
    settings.remove(CACHE_DIR_SETTING)


@pytest.fixture
def model_bytes(tmp_path: Path) -> bytes:
    return contract_model(tmp_path / "src.onnx")


def test_registered_in_the_models_group(landcover_provider: Any) -> None:
    algorithm = QgsApplication.processingRegistry().algorithmById("landcover:download_model")
    assert algorithm is not None
    assert (algorithm.group(), algorithm.groupId()) == ("Models", "models")
    assert algorithm.displayName() == "Download a land-cover model"
    assert isinstance(algorithm.outputDefinition("MODEL_PATH"), QgsProcessingOutputFile)
    assert "azure-2018-unet" in algorithm.shortHelpString()
    assert algorithm.parameterDefinition("MODEL").defaultValue() == "azure-2018-unet"


def test_download_by_url_into_the_cache_then_reuse(
    run_algorithm: Run, server: ModelServer, cache: Path, model_bytes: bytes
) -> None:
    url = server.add("/unet.onnx", model_bytes)
    feedback = RecordingFeedback()
    result = run_algorithm(
        "download_model", {"MODEL": url, "SHA256": sha(model_bytes)}, feedback=feedback
    )
    path = Path(result["MODEL_PATH"])
    assert path.parent == cache and path.read_bytes() == model_bytes
    assert result["MODEL_SHA256"] == sha(model_bytes)
    assert "OUTPUT" not in result or not result["OUTPUT"]
    assert read_contract(path) == contract_for(3)
    assert feedback.progress() == pytest.approx(100.0)
    size = len(model_bytes)  # a few hundred bytes: counted in bytes, not "0.0 MB"
    assert feedback.texts[-1] == f"Downloaded {size} bytes of {size} bytes (100 %)"
    again = run_algorithm("download_model", {"MODEL": url})
    assert again["MODEL_PATH"] == str(path)
    assert server.hits("/unet.onnx") == 1


def test_catalogue_name_and_copy_to_output(
    run_algorithm: Run, server: ModelServer, cache: Path, model_bytes: bytes, tmp_path: Path
) -> None:
    url = server.add("/unet.onnx", model_bytes)
    catalogue = tmp_path / "team.json"
    catalogue.write_text(
        json.dumps({"models": [{"name": "team-unet", "url": url, "sha256": sha(model_bytes)}]})
    )
    output = tmp_path / "out" / "team.onnx"
    output.parent.mkdir()
    result = run_algorithm(
        "download_model",
        {"MODEL": "team-unet", "CATALOGUE": str(catalogue), "OUTPUT": str(output)},
    )
    assert result["OUTPUT"] == str(output) == result["MODEL_PATH"]
    assert output.read_bytes() == model_bytes
    assert sorted(p.name for p in output.parent.iterdir()) == ["team.onnx"]
    assert len(list(cache.glob("team-unet-*.onnx"))) == 1  # the cache keeps its copy


def test_cancel_mid_download_leaves_no_model(
    run_algorithm: Run, server: ModelServer, cache: Path
) -> None:
    url = server.add("/big.onnx", os.urandom(1_000_000))
    feedback = QgsProcessingFeedback()
    feedback.progressChanged.connect(lambda percent: feedback.cancel())
    with pytest.raises(QgsProcessingException, match="Cancelled"):
        run_algorithm("download_model", {"MODEL": url}, feedback=feedback)
    assert not list(cache.glob("*.onnx"))  # only the resumable .part remains
    [part] = cache.glob("*.onnx.part")
    assert 0 < part.stat().st_size < 1_000_000


def test_time_limit_stops_a_trickling_download_and_names_the_part(
    run_algorithm: Run, server: ModelServer, cache: Path
) -> None:
    # 20 bytes/s, closing after 100 (never reached in 0.5 s).
    url = server.add("/big.onnx", os.urandom(1_000_000), behaviour="trickle", limit=100)
    feedback = RecordingFeedback()
    with pytest.raises(QgsProcessingException, match=r"within the time limit of 0\.5 s") as caught:
        run_algorithm("download_model", {"MODEL": url, "TIME_LIMIT": 0.5}, feedback=feedback)
    [part] = cache.glob("*.onnx.part")
    assert f"kept in {part}; run the download again to resume from there" in str(caught.value)
    assert feedback.texts[0] == "Downloaded 1 bytes of 1000000 bytes (0 %)"


def test_ctrl_c_stops_a_qgis_process_download_at_once(
    server: ModelServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """qgis_process cancels on SIGINT through Qt's event loop; a download that waits
    for bytes must still see it (before, it ran until the server stopped)."""
    monkeypatch.setenv("LANDCOVER_QGIS_STATE", str(tmp_path / "state"))
    url = server.add("/big.onnx", os.urandom(1_000_000), behaviour="trickle", interval=0.2)
    process = subprocess.Popen(
        [str(QGIS_PROCESS), "run", "landcover:download_model", "--", f"MODEL={url}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "QT_QPA_PLATFORM": "offscreen"},
    )
    try:
        assert server.files["/big.onnx"].sending.wait(120)  # the download is running
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=60)  # a hang guard, not a measure
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode != 0
    [part] = (tmp_path / "state").rglob("*.onnx.part")
    assert f"Cancelled by the user. The {part.stat().st_size} bytes received so far" in output
    assert f"kept in {part}; run the download again to resume from there" in output
    assert part.stat().st_size < 100  # stopped long before the server would have


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        ({"MODEL": "/nothing.onnx"}, r"HTTP 404 Not Found"),
        ({"MODEL": "/unet.onnx", "SHA256": "1234"}, "64 hexadecimal characters"),
        ({"MODEL": "no-such-model"}, "Known catalogue models: azure-2018-unet"),
        ({"MODEL": "http://example.com/m.onnx"}, r"Refusing plain http:// download"),
        ({"MODEL": "https//example.com/m.onnx"}, "Malformed URL 'https//example.com"),
    ],
)
def test_bad_input_is_a_processing_exception(
    run_algorithm: Run,
    server: ModelServer,
    cache: Path,
    model_bytes: bytes,
    parameters: dict[str, str],
    message: str,
) -> None:
    server.add("/unet.onnx", model_bytes)
    if parameters["MODEL"].startswith("/"):
        parameters = {**parameters, "MODEL": server.url(parameters["MODEL"])}
    with pytest.raises(QgsProcessingException, match=message):
        run_algorithm("download_model", parameters)
    assert not list(cache.glob("*.onnx"))


def test_qgis_process_downloads_then_reuses(
    server: ModelServer, model_bytes: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A fresh QGIS profile for the wrapper, so the user's cache is never touched.
    monkeypatch.setenv("LANDCOVER_QGIS_STATE", str(tmp_path / "state"))
    url = server.add("/unet.onnx", model_bytes)
    output = tmp_path / "copy.onnx"
    result = qgis_process_json(
        "run", "landcover:download_model", "--", f"MODEL={url}", f"OUTPUT={output}"
    )
    assert result["results"]["MODEL_PATH"] == str(output)
    assert result["results"]["MODEL_SHA256"] == sha(model_bytes)
    assert output.read_bytes() == model_bytes
    again = qgis_process_json("run", "landcover:download_model", "--", f"MODEL={url}")
    cached = Path(again["results"]["MODEL_PATH"])
    assert cached.is_relative_to(tmp_path / "state") and cached.read_bytes() == model_bytes
    assert server.hits("/unet.onnx") == 1


def test_modeler_chain_feeds_model_path_to_the_next_step(
    landcover_provider: Any, server: ModelServer, cache: Path, model_bytes: bytes, tmp_path: Path
) -> None:
    """A model whose second step takes MODEL_PATH of the first as its MODEL, as a
    download -> classify chain does."""
    url = server.add("/unet.onnx", model_bytes)
    model = QgsProcessingModelAlgorithm("chain", "tests")
    model.addModelParameter(
        QgsProcessingParameterString("url", "URL"), QgsProcessingModelParameter("url")
    )
    download = QgsProcessingModelChildAlgorithm("landcover:download_model")
    download.setChildId("download")
    download.addParameterSources(
        "MODEL", [QgsProcessingModelChildParameterSource.fromModelParameter("url")]
    )
    copy = QgsProcessingModelChildAlgorithm("landcover:download_model")
    copy.setChildId("use")
    copy.addParameterSources(
        "MODEL", [QgsProcessingModelChildParameterSource.fromChildOutput("download", "MODEL_PATH")]
    )
    output = tmp_path / "chained.onnx"
    copy.addParameterSources(
        "OUTPUT", [QgsProcessingModelChildParameterSource.fromStaticValue(str(output))]
    )
    for child in (download, copy):  # the modeler's dialog fills in defaults like this
        child.addParameterSources(
            "ALLOW_HTTP", [QgsProcessingModelChildParameterSource.fromStaticValue(False)]
        )
        model.addChildAlgorithm(child)  # adds a copy: configure the child first
    ok, errors = model.validate()
    assert ok, errors
    context = QgsProcessingContext()
    _, ok = model.run({"url": url}, context, QgsProcessingFeedback())
    assert ok
    assert output.read_bytes() == model_bytes
    assert server.hits("/unet.onnx") == 1
