# SPDX-License-Identifier: GPL-2.0-or-later
"""``resolve_model`` and the model cache: names, paths and URLs (against a server on
127.0.0.1) become verified local files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from qgis_landcover.core.errors import ChecksumError, InputError, ModelContractError
from qgis_landcover.core.files.checksum import file_sha256
from qgis_landcover.core.models.catalogue import load_catalogue
from qgis_landcover.core.models.contract import read_contract
from qgis_landcover.core.models.download import DownloadOptions
from qgis_landcover.core.models.resolve import (
    cache_file_name,
    default_cache_dir,
    resolve_model,
)
from qgis_landcover.core.progress import NullProgress

from ...onnx_models import contract_for, pointwise_model
from .test_catalogue import DEEPNESS_ZOO, write_catalogue
from .test_download import ModelServer, part_sizes_at_requests, serve, sha

FAST = DownloadOptions(connect_timeout=2.0, read_timeout=2.0, retries=1, backoff=0.01)


server = pytest.fixture(serve, name="server")


WEIGHTS = np.arange(12, dtype=np.float32).reshape(3, 4)


def contract_model(path: Path) -> bytes:
    """A tiny valid model (1x1 convolution) carrying the full contract; its bytes."""
    return pointwise_model(path, WEIGHTS, contract=contract_for(3)).read_bytes()


def deepness_model(path: Path) -> bytes:
    """A model with only Deepness's metadata keys (JSON-encoded values, as Deepness
    documents them)."""
    metadata = {
        "model_type": "Segmentor",
        "class_names": {"0": "background", "1": "woodland"},
        "resolution": 40,
        "tiles_size": 512,
        "tiles_overlap": 15,
        "standardization_mean": [0.485, 0.456, 0.406],
        "standardization_std": [0.229, 0.224, 0.225],
    }
    weights = np.ones((2, 3), dtype=np.float32)
    props = {key: json.dumps(value) for key, value in metadata.items()}
    return pointwise_model(path, weights, metadata=props).read_bytes()


def cache_contents(cache: Path) -> list[str]:
    return sorted(p.name for p in cache.iterdir()) if cache.exists() else []


def test_empty_spec_resolves_the_embedded_default_model() -> None:
    entry = load_catalogue().default_entry()
    assert resolve_model("") == entry.file


# -- resolving URLs ------------------------------------------------------------------------


def test_url_download_then_cached_reuse_without_request(server: ModelServer, tmp_path: Path):
    body = contract_model(tmp_path / "src.onnx")
    url = server.add("/models/unet.onnx", body)
    cache = tmp_path / "cache"
    path = resolve_model(url, cache_dir=cache, sha256=sha(body), options=FAST)
    assert path.parent == cache and path.read_bytes() == body
    assert path.name == cache_file_name(url)
    assert read_contract(path) == contract_for(3)
    progress = NullProgress()
    again = resolve_model(url, cache_dir=cache, sha256=sha(body), options=FAST, progress=progress)
    assert again == path
    assert server.hits("/models/unet.onnx") == 1  # no second request
    assert any("Using the cached model" in m for m in progress.messages)


def test_url_without_checksum_pins_the_first_download(server: ModelServer, tmp_path: Path):
    body = contract_model(tmp_path / "src.onnx")
    url = server.add("/unet.onnx", body)
    cache = tmp_path / "cache"
    progress = NullProgress()
    path = resolve_model(url, cache_dir=cache, options=FAST, progress=progress)
    record = json.loads(path.with_name(path.name + ".json").read_text())
    assert record == {"url": url, "sha256": sha(body), "size": len(body)}
    assert any(sha(body) in m for m in progress.messages)  # tells the user what to pin
    assert resolve_model(url, cache_dir=cache, options=FAST) == path
    assert server.hits("/unet.onnx") == 1
    # A cached copy that changed on disk is not trusted: downloaded again.
    path.write_bytes(body[:-1] + b"\0")
    assert resolve_model(url, cache_dir=cache, options=FAST).read_bytes() == body
    assert server.hits("/unet.onnx") == 2


def test_cached_copy_with_wrong_hash_is_downloaded_again(server: ModelServer, tmp_path: Path):
    body = contract_model(tmp_path / "src.onnx")
    url = server.add("/unet.onnx", body)
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / cache_file_name(url)).write_bytes(b"stale")
    path = resolve_model(url, cache_dir=cache, sha256=sha(body), options=FAST)
    assert path.read_bytes() == body and server.hits("/unet.onnx") == 1


def test_corrupted_download_leaves_nothing_at_the_cache_path(server: ModelServer, tmp_path: Path):
    body = contract_model(tmp_path / "src.onnx")
    url = server.add("/unet.onnx", body, behaviour="corrupt")
    cache = tmp_path / "cache"
    with pytest.raises(ChecksumError, match="SHA-256 mismatch"):
        resolve_model(url, cache_dir=cache, sha256=sha(body), options=FAST)
    assert cache_contents(cache) == []


def test_file_that_is_not_onnx_is_rejected(server: ModelServer, tmp_path: Path):
    url = server.add("/page.onnx", b"<html>Please log in</html>")
    cache = tmp_path / "cache"
    with pytest.raises(
        InputError, match=r"not a usable land-cover model: Not a valid ONNX model \("
    ) as caught:
        resolve_model(url, cache_dir=cache, options=FAST)
    assert ".part" not in str(caught.value)
    assert cache_contents(cache) == []


def test_onnx_without_contract_metadata_is_a_contract_error(server: ModelServer, tmp_path: Path):
    body = pointwise_model(tmp_path / "bare.onnx", WEIGHTS).read_bytes()
    url = server.add("/bare.onnx", body)
    cache = tmp_path / "cache"
    with pytest.raises(
        ModelContractError, match=r"bare\.onnx is not a usable .* lacks 'tile_size'"
    ):
        resolve_model(url, cache_dir=cache, options=FAST)
    assert cache_contents(cache) == []


def test_dropped_connection_resumes_and_verifies(
    server: ModelServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    body = contract_model(tmp_path / "src.onnx")
    url = server.add("/unet.onnx", body, behaviour="drop_once")
    options = DownloadOptions(retries=1, backoff=0.01, chunk_size=64)
    cache = tmp_path / "cache"
    saved = part_sizes_at_requests(monkeypatch, cache)
    path = resolve_model(url, cache_dir=cache, sha256=sha(body), options=options)
    assert path.read_bytes() == body
    # Resumed from what was really saved when the second request left.
    assert len(saved) == 2 and 0 < saved[1] <= len(body) // 2
    assert server.requests[1][1]["Range"] == f"bytes={saved[1]}-"


def test_user_catalogue_entry_is_downloaded_and_cached(server: ModelServer, tmp_path: Path):
    body = contract_model(tmp_path / "src.onnx")
    url = server.add("/unet.onnx", body)
    catalogue = write_catalogue(
        tmp_path / "mine.json",
        [{"name": "my-unet", "url": url, "sha256": sha(body).upper(), "size": len(body)}],
    )
    cache = tmp_path / "cache"
    path = resolve_model("my-unet", cache_dir=cache, catalogues=[catalogue], options=FAST)
    assert path.name == cache_file_name(url, "my-unet") and path.name.startswith("my-unet-")
    assert file_sha256(path) == sha(body)
    assert resolve_model("my-unet", cache_dir=cache, catalogues=[catalogue]) == path
    assert server.hits("/unet.onnx") == 1


def test_catalogue_size_mismatch_is_refused(server: ModelServer, tmp_path: Path):
    body = contract_model(tmp_path / "src.onnx")
    url = server.add("/unet.onnx", body)
    catalogue = write_catalogue(
        tmp_path / "c.json", [{"name": "m", "url": url, "size": len(body) + 5}]
    )
    with pytest.raises(ChecksumError, match="bytes were expected"):
        resolve_model("m", cache_dir=tmp_path / "cache", catalogues=[catalogue], options=FAST)


# -- resolving names and paths -------------------------------------------------------------


def test_user_sha_conflicting_with_catalogue_is_an_error(tmp_path: Path):
    catalogue = write_catalogue(
        tmp_path / "c.json",
        [{"name": "m", "url": "https://example.com/m.onnx", "sha256": "a" * 64}],
    )
    with pytest.raises(InputError, match="differs from the catalogue's"):
        resolve_model("m", cache_dir=tmp_path / "cache", catalogues=[catalogue], sha256="b" * 64)


def test_empty_spec_is_the_default_local_model(tmp_path: Path):
    model = tmp_path / "models" / "default.onnx"
    model.parent.mkdir()
    contract_model(model)
    catalogue = write_catalogue(
        tmp_path / "c.json",
        [{"name": "office-default", "file": "models/default.onnx"}],
        default="office-default",
    )
    assert resolve_model("", catalogues=[catalogue]) == model
    assert resolve_model("  office-default ", catalogues=[catalogue]) == model
    with pytest.raises(ChecksumError):
        resolve_model("", catalogues=[catalogue], sha256="0" * 64)


def test_missing_local_catalogue_file_is_a_clear_error(tmp_path: Path):
    catalogue = write_catalogue(tmp_path / "c.json", [{"name": "gone", "file": "gone.onnx"}])
    with pytest.raises(InputError, match=r"'gone' should be at .*gone\.onnx, which is missing"):
        resolve_model("gone", catalogues=[catalogue])


def test_local_path_is_returned_and_checked(tmp_path: Path):
    model = tmp_path / "m.onnx"
    body = contract_model(model)
    assert resolve_model(str(model)) == model
    assert resolve_model(str(model), sha256=sha(body)) == model
    with pytest.raises(ChecksumError, match="SHA-256 mismatch"):
        resolve_model(str(model), sha256="f" * 64)
    with pytest.raises(InputError, match="Model file not found"):
        resolve_model(str(tmp_path / "other.onnx"))
    with pytest.raises(InputError, match="Model file not found"):
        resolve_model("nowhere.onnx")
    # A folder was reported as "not found" although it exists.
    with pytest.raises(InputError, match=r"is a folder, not a file: give an ONNX model"):
        resolve_model(str(tmp_path))


# -- bad input: one line each ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "sha256", "message"),
    [
        (
            "no-such-model",
            None,
            r"Unknown model 'no-such-model'\. Known catalogue models: "
            r"azure-2018-unet, deepness-land-cover-segmentation, azure-2018-unet-finetuned, "
            r"azure-2018-unet-int8\.",
        ),
        ("htps://example.com/m.onnx", None, r"unsupported model URL .*'htps://'"),
        ("https://", None, "Malformed URL"),
        ("https:/example.com/m.onnx", None, "Malformed URL"),
        ("www.example.com/m.onnx", None, r"add the scheme, e\.g\. https://www"),
        ("http://example.com/m.onnx", None, "Refusing plain http://"),
        ("azure-2018-unet", "abc123", r"64 hexadecimal characters .*\(6 characters\)"),
    ],
)
def test_bad_input_gives_one_line_errors(spec: str, sha256: str | None, message: str, tmp_path):
    with pytest.raises(InputError, match=message) as caught:
        resolve_model(spec, sha256=sha256, cache_dir=tmp_path / "cache")
    assert "\n" not in str(caught.value)
    assert not (tmp_path / "cache").exists()


def test_unwritable_cache_folder_is_one_line_error(tmp_path: Path):
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache folder should go")
    with pytest.raises(InputError, match=r"model cache folder .* is not writable") as caught:
        resolve_model("https://example.com/m.onnx", cache_dir=blocker / "cache")
    assert "\n" not in str(caught.value)


# -- the Deepness model zoo ---------------------------------------------------------------


def test_deepness_model_is_resolved_as_it_is(server: ModelServer, tmp_path: Path):
    body = deepness_model(tmp_path / "src.onnx")
    url = server.add("/s/abc/download", body)
    zoo = tmp_path / "MODEL_ZOO.md"
    row = f"| [Woodland]({url}) | 512 | 40 | A Deepness model. | |\n"
    zoo.write_text(DEEPNESS_ZOO.replace("| LOCAL_ROW |\n", row))
    path = resolve_model(
        "deepness-woodland", cache_dir=tmp_path / "cache", catalogues=[zoo], options=FAST
    )
    contract = read_contract(path)
    assert contract.class_names == {0: "background", 1: "woodland"}
    assert (contract.resolution_cm, contract.tile_size) == (40.0, 512)


# -- the cache ---------------------------------------------------------------------------


def test_default_cache_dir_follows_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_cache_dir() == tmp_path / "qgis_landcover"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/path")  # invalid per the XDG spec
    assert default_cache_dir() == Path.home() / ".cache" / "qgis_landcover"


def test_cache_file_names_are_safe_and_distinct():
    a = cache_file_name("https://a.example/models/unet v2.onnx?token=1")
    b = cache_file_name("https://b.example/models/unet v2.onnx?token=1")
    assert a.startswith("unet-v2-") and a.endswith(".onnx") and a != b
    assert cache_file_name("https://cloud.example/s/XYZ/download").startswith("model-")
    assert cache_file_name("https://e.com/x", "../../evil").startswith("evil-")
