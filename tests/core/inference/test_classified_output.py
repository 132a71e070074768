# SPDX-License-Identifier: GPL-2.0-or-later
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal, osr

from qgis_landcover.core.errors import InputError
from qgis_landcover.core.inference.classified_output import (
    FALLBACK_COLORS,
    OutputPaths,
    OutputWriter,
    class_palette,
    looks_like_probabilities,
    overview_levels,
    softmax,
)
from qgis_landcover.core.raster.grid import Grid
from qgis_landcover.core.raster.writing import hex_to_rgb

from ...onnx_models import contract_for


def utm_grid(width: int, height: int) -> Grid:
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(26917)
    return Grid(srs.ExportToWkt(), (500000.0, 1.0, 0.0, 4000000.0, 0.0, -1.0), width, height)


def test_rows_are_written_in_whole_block_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    grid = utm_grid(600, 700)
    contract = contract_for(3)
    paths = OutputPaths(tmp_path / "c.tif", tmp_path / "p.tif", tmp_path / "k.tif")
    writer = OutputWriter(paths, grid, contract, overviews=False)
    assert writer.block_rows == 256
    writes: list[tuple[int, int, int]] = []
    original = writer._write_planes

    def record(row: int, col: int, planes: np.ndarray) -> None:
        writes.append((row, col, planes.shape[1]))
        original(row, col, planes)

    monkeypatch.setattr(writer, "_write_planes", record)
    rng = np.random.default_rng(5)
    scores = rng.normal(size=(3, 700, 600)).astype(np.float32)
    ok = rng.random((700, 600)) > 0.1
    for col0, col1 in ((0, 512), (512, 600)):  # two stripes, rows in uneven chunks
        for row in range(0, 700, 37):
            rows = slice(row, min(row + 37, 700))
            writer.write(row, col0, scores[:, rows, col0:col1], ok[rows, col0:col1])
    writer.finish()
    assert writes == [
        (0, 0, 256), (256, 0, 256), (512, 0, 188), (0, 512, 256), (256, 512, 256),
        (512, 512, 188),
    ]  # fmt: skip
    classes = gdal.Open(str(paths.classes)).ReadAsArray()
    expected = np.where(ok, scores.argmax(axis=0) + 1, 0)
    np.testing.assert_array_equal(classes, expected)
    exp = np.exp(scores.astype(np.float64))
    probabilities = exp / exp.sum(axis=0)
    got = gdal.Open(str(paths.probabilities)).ReadAsArray().astype(int)
    assert np.abs(got - np.where(ok, np.rint(probabilities * 255), 0)).max() <= 1
    confidence = gdal.Open(str(paths.confidence)).ReadAsArray()
    assert np.all(confidence[~ok] == 0) and confidence[ok].min() >= 1


def test_rows_out_of_order_are_refused(tmp_path: Path) -> None:
    writer = OutputWriter(OutputPaths(tmp_path / "c.tif"), utm_grid(300, 300), contract_for(2))
    block = np.zeros((2, 10, 300), np.float32)
    writer.write(0, 0, block, np.ones((10, 300), bool))
    with pytest.raises(ValueError, match="out of order"):
        writer.write(20, 0, block, np.ones((10, 300), bool))
    writer.close()


def test_overview_levels() -> None:
    assert overview_levels(256, 256) == []
    assert overview_levels(300, 230) == [2]
    assert overview_levels(1024, 512) == [2, 4]
    assert overview_levels(8192, 8192) == [2, 4, 8, 16, 32]


def test_palette_falls_back_to_colorbrewer() -> None:
    contract = contract_for(3, class_colors={})
    colors, names = class_palette(contract)
    assert colors == {k + 1: hex_to_rgb(FALLBACK_COLORS[k]) for k in range(3)}
    assert names == {1: "class 1", 2: "class 2", 3: "class 3"}


def test_probability_detection() -> None:
    logits = np.random.default_rng(2).normal(size=(2, 4, 8, 8)).astype(np.float32)
    assert not looks_like_probabilities(logits)
    assert looks_like_probabilities(np.stack([softmax(x) for x in logits]))


def test_output_paths_are_checked(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="GeoTIFF"):
        OutputPaths(tmp_path / "a.img").check()
    with pytest.raises(InputError, match="distinct"):
        OutputPaths(tmp_path / "a.tif", tmp_path / "a.tif").check()
