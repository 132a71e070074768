# SPDX-License-Identifier: GPL-2.0-or-later
"""Model catalogues, the cache and ``resolve_model``, against a server on 127.0.0.1."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from qgis_landcover.core.errors import InputError
from qgis_landcover.core.files.checksum import file_sha256
from qgis_landcover.core.models.catalogue import (
    BUILTIN_CATALOGUE,
    MODELS_DIR,
    cache_file_name,
    default_cache_dir,
    load_catalogue,
    parse_deepness_model_zoo,
    read_catalogue,
    resolve_model,
)
from qgis_landcover.core.models.contract import ModelContractError, read_contract
from qgis_landcover.core.models.download import ChecksumError, DownloadOptions
from qgis_landcover.core.progress import NullProgress

from ...onnx_models import contract_for, pointwise_model
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


def write_catalogue(path: Path, models: list[dict[str, Any]], **extra: Any) -> Path:
    path.write_text(
        json.dumps({"format": "qgis-landcover-model-catalogue", "models": models, **extra})
    )
    return path


def cache_contents(cache: Path) -> list[str]:
    return sorted(p.name for p in cache.iterdir()) if cache.exists() else []


# -- the shipped catalogue ---------------------------------------------------------------


def test_builtin_catalogue_lists_the_default_local_model() -> None:
    catalogue = load_catalogue()
    assert catalogue.default == "azure-2018-unet"
    default = catalogue.default_entry()
    assert default.file == MODELS_DIR / "azure_2018_unet.onnx" and default.url is None
    assert default.classes == {
        1: "water",
        2: "tree canopy",
        3: "low vegetation",
        4: "barren and impervious",
    }
    assert default.resolution == 100.0 and default.licence == "MIT"
    for entry in catalogue.entries.values():
        assert entry.description and entry.source and entry.licence
        assert entry.url is None or entry.url.startswith("https://")


def test_empty_spec_resolves_the_embedded_default_model() -> None:
    entry = load_catalogue().default_entry()
    assert resolve_model("") == entry.file


@pytest.mark.parametrize("name", [n for n, e in load_catalogue().entries.items() if e.file])
def test_local_catalogue_entries_describe_their_model_file(name: str) -> None:
    entry = load_catalogue().entry(name)
    assert entry.file is not None
    contract = read_contract(entry.file)
    named = {contract.class_values[c]: contract.class_names[c] for c in contract.class_channels}
    assert named == entry.classes
    assert (contract.resolution_cm, contract.tile_size) == (entry.resolution, entry.tile_size)
    assert contract.band_names == entry.bands and contract.license == entry.licence
    if entry.sha256 is not None:
        assert file_sha256(entry.file) == entry.sha256
    if entry.size is not None:
        assert entry.file.stat().st_size == entry.size


def test_builtin_catalogue_is_the_one_in_the_plugin_folder() -> None:
    document = json.loads(BUILTIN_CATALOGUE.read_text())
    assert BUILTIN_CATALOGUE.parent == MODELS_DIR
    assert [m["name"] for m in document["models"]] == load_catalogue().names()


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


# -- resolving names and paths -------------------------------------------------------------


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
            r"azure-2018-unet, deepness-land-cover-segmentation, azure-2018-unet-finetuned\.",
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


@pytest.mark.parametrize(
    ("models", "message"),
    [
        ([{"name": "a b", "file": "x.onnx"}], "'name' must be letters"),
        ([{"name": "a"}], "exactly one of 'url' and 'file'"),
        ([{"name": "a", "url": "https://e.com/a", "file": "a.onnx"}], "exactly one"),
        ([{"name": "a", "url": "https://e.com/a", "sha256": "xyz"}], "64 hexadecimal"),
        ([{"name": "a", "url": "http://e.com/a"}], "Refusing plain http://"),
        ([{"name": "a", "url": 5}], "'url' must be of type str"),
        ([{"name": "a", "url": "https://e.com/a", "size": -3}], "'size' must be a positive"),
        ([{"name": "a", "url": "https://e.com/a", "size": "big"}], "'size' must be of type int"),
        ([{"name": "a", "url": "https://e.com/a", "resolution": 0}], "'resolution' must be > 0"),
        ([{"name": "a", "url": "https://e.com/a"}] * 2, "lists 'a' twice"),
    ],
)
def test_malformed_catalogue_names_file_and_entry(
    tmp_path: Path, models: list[dict[str, Any]], message: str
):
    path = write_catalogue(tmp_path / "bad.json", models)
    with pytest.raises(InputError, match=message) as caught:
        read_catalogue(path)
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)


def test_unreadable_or_invalid_catalogue_files(tmp_path: Path):
    with pytest.raises(InputError, match="Cannot read the model catalogue"):
        read_catalogue(tmp_path / "missing.json")
    (tmp_path / "broken.json").write_text("{ not json")
    with pytest.raises(InputError, match=r"not valid JSON: .*line 1"):
        read_catalogue(tmp_path / "broken.json")
    (tmp_path / "list.json").write_text("[]")
    with pytest.raises(InputError, match="must be a JSON object with a 'models' list"):
        read_catalogue(tmp_path / "list.json")
    write_catalogue(tmp_path / "future.json", [], version=99)
    with pytest.raises(InputError, match="version 99"):
        read_catalogue(tmp_path / "future.json")


def test_later_catalogues_override_by_name(tmp_path: Path):
    mine = write_catalogue(
        tmp_path / "c.json", [{"name": "azure-2018-unet", "url": "https://example.org/u.onnx"}]
    )
    merged = load_catalogue([mine])
    assert merged.entry("azure-2018-unet").url == "https://example.org/u.onnx"
    assert merged.default == "azure-2018-unet"
    assert merged.names()[1] == "deepness-land-cover-segmentation"


# -- the Deepness model zoo ---------------------------------------------------------------

# The structure of the Deepness plugin's docs/source/main/model_zoo/MODEL_ZOO.md.
DEEPNESS_ZOO = """# Deepness Model ZOO

The [Model ZOO](https://chmura.put.poznan.pl/s/2pJk4izRurzQwu3) is a collection of models.

## Segmentation models

| Model | Input size | CM/PX | Description | Example image |
|-------|------------|-------|-------------|---------------|
| [Land Cover Segmentation](https://chmura.put.poznan.pl/s/PnAFJw27uneROkV) | 512 | 40 | The model is trained on the [LandCover.ai dataset](https://landcover.ai.linuxpolska.com/). | [Image](https://chmura.put.poznan.pl/s/Xa29vnieNQTvSt5) |
| [Agriculture segmentation RGB+NIR](https://chmura.put.poznan.pl/s/wf5Ml1ZDyiVdNiy) | 256 | 30 | 4 channels input (RGB + NIR). | [Image](https://chmura.put.poznan.pl/s/35A5ISUxLxcK7kL) |
| LOCAL_ROW |

## Regression models

| Model   | Input size | CM/PX | Description | Example image |
|---------|---|---|---|---|
|         |  |  |  |  |

## Object detection models

| Model | Input size | CM/PX | Description | Example image |
|-------|------------|-------|-------------|---------------|
| [Airbus Planes Detection](https://chmura.put.poznan.pl/s/bBIJ5FDPgyQvJ49) | 256 | 70 | YOLOv7 tiny. | [Image](https://chmura.put.poznan.pl/s/VfLmcWhvWf0UJfI) |
"""  # noqa: E501


def test_deepness_model_zoo_segmentation_rows_become_entries(tmp_path: Path):
    entries = parse_deepness_model_zoo(DEEPNESS_ZOO.replace("| LOCAL_ROW |\n", ""), tmp_path)
    assert [e.name for e in entries] == [
        "deepness-land-cover-segmentation",
        "deepness-agriculture-segmentation-rgb-nir",
    ]
    land = entries[0]
    assert land.url == "https://chmura.put.poznan.pl/s/PnAFJw27uneROkV/download"
    assert land.source == "https://chmura.put.poznan.pl/s/PnAFJw27uneROkV"
    assert (land.tile_size, land.resolution, land.sha256) == (512, 40.0, None)
    assert land.description == "The model is trained on the LandCover.ai dataset."
    # The shipped catalogue's Deepness entry is the same model.
    assert load_catalogue().entry(land.name).url == land.url


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
