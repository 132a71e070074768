# SPDX-License-Identifier: GPL-2.0-or-later
"""Model catalogues: the shipped one, user catalogues (JSON) and the Deepness model zoo."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from qgis_landcover.core.errors import InputError
from qgis_landcover.core.files.checksum import file_sha256
from qgis_landcover.core.models.catalogue import (
    BUILTIN_CATALOGUE,
    MODELS_DIR,
    load_catalogue,
    parse_deepness_model_zoo,
    read_catalogue,
)
from qgis_landcover.core.models.contract import read_contract


def write_catalogue(path: Path, models: list[dict[str, Any]], **extra: Any) -> Path:
    path.write_text(
        json.dumps({"format": "qgis-landcover-model-catalogue", "models": models, **extra})
    )
    return path


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


# -- malformed catalogues: one line each ---------------------------------------------------


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
