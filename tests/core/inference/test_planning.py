# SPDX-License-Identifier: GPL-2.0-or-later
"""Sizing a run: tiles capped to the extent, overlap bounds, batches within a memory
limit estimated term by term."""

from __future__ import annotations

import dataclasses
import re
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from qgis_landcover.core.errors import InputError
from qgis_landcover.core.inference.classified_output import OutputPaths
from qgis_landcover.core.inference.classify import classify
from qgis_landcover.core.inference.gdal_source import GdalImageSource
from qgis_landcover.core.inference.pipeline import ClassifyOptions
from qgis_landcover.core.inference.planning import pipeline_memory_bytes
from qgis_landcover.core.inference.session import load_session
from qgis_landcover.core.progress import NullProgress

from ...onnx_models import contract_for, pointwise_model
from .conftest import BIAS, WEIGHTS, closed_form, crop, decided, read


def test_metadata_tile_far_beyond_the_extent_is_capped(tmp_path: Path, naip: Path) -> None:
    """A model whose metadata says tile 100000 used to fail allocating its probe tile
    (298 GiB) and then its first batch; the tile is now capped to the 300 x 230 px
    extent: 300 rounded up to a multiple of 32 (the power of two in 100000) = 320."""
    contract = contract_for(4, input_scale=1 / 255, tile_size=100_000)
    model = pointwise_model(tmp_path / "huge_tile.onnx", WEIGHTS, BIAS, contract=contract)
    progress = NullProgress()
    result = classify(
        GdalImageSource(naip), model, OutputPaths(tmp_path / "out.tif"), progress=progress
    )
    assert result.tiles_run == 1
    assert any("tiles of 320 px are used" in m for m in progress.messages)
    scores = closed_form(read(naip), WEIGHTS, BIAS, 1 / 255)
    sure = decided(scores)
    np.testing.assert_array_equal(read(tmp_path / "out.tif")[sure], scores.argmax(axis=0)[sure] + 1)


def test_requested_tile_and_batch_beyond_the_extent_are_capped(
    tmp_path: Path, naip: Path, model: Path
) -> None:
    """TILE_SIZE=100000 or BATCH_SIZE=10**7 crashed allocating the batch buffer
    (hundreds of GiB); a tile beyond the extent and a batch beyond the tile count are
    pointless, and are capped."""
    progress = NullProgress()
    options = ClassifyOptions(device="cpu", tile_size=100_000)
    result = classify(
        GdalImageSource(naip),
        model,
        OutputPaths(tmp_path / "tile.tif"),
        options=options,
        progress=progress,
    )
    assert result.tiles_run == 1
    assert any("tiles of 320 px are used" in m for m in progress.messages)
    progress = NullProgress()
    options = ClassifyOptions(device="cpu", batch_size=10**7)
    result = classify(
        GdalImageSource(naip),
        model,
        OutputPaths(tmp_path / "batch.tif"),
        options=options,
        progress=progress,
    )
    # Tile 32 (output 32), overlap 25 % = 8 px, stride 24: columns 0, 24, ..., 264, 268
    # (13 tiles over 300 px), rows 0, 24, ..., 192, 198 (10 tiles over 230 px).
    assert result.tiles_run + result.tiles_skipped == 130
    assert any("130 tiles" in m and "batches of 130" in m for m in progress.messages)
    scores = closed_form(read(naip), WEIGHTS, BIAS, 1 / 255)
    sure = decided(scores)
    for name in ("tile.tif", "batch.tif"):
        got = read(tmp_path / name)
        np.testing.assert_array_equal(got[sure], scores.argmax(axis=0)[sure] + 1)


def test_pipeline_memory_is_estimated_term_by_term() -> None:
    """Hand-computed for tile 32, margin 0, 4 bands, 4 classes, batches of 4, stripes of
    256 px (out = 32, span = 256 + 64 = 320, strip = 32 x 320 = 10240 pixels)."""
    inputs = 4 * 4 * 4 * 32 * 32  # batch x bands x float32 x tile²: 65536
    batches = 4 * (inputs + 4 * 4 * 4 * 32 * 32)  # (QUEUE_DEPTH + 2) x (inputs + scores)
    reading = 2 * (4 * 4 * 10240 + 10240)  # strip + validity, read and padded
    blending = 4 * 4 * 32 * 320 + 4 * 32 * 320 + 32 * 320  # sums, weights, validity
    per_tile = 4 * 32 * 32 + 4 * 4 * 32 * 32  # weights, weighted scores
    finished = 2 * 4 * 4 * 32 * 256 + 2 * 8 * 32 * 256 + 6 * (256 + 32) * 256
    own = batches + reading + blending + per_tile + finished
    assert own == 1_943_552
    shape = {"tile_size": 32, "margin": 0, "bands": 4, "classes": 4, "stripe_width": 256}
    assert pipeline_memory_bytes(**shape, batch_size=4, workspace_factor=0) == own
    assert pipeline_memory_bytes(**shape, batch_size=4) == own + 66 * inputs


def test_pipeline_memory_estimate_bounds_the_arrays_allocated(tmp_path: Path) -> None:
    """The estimate (without the model's working memory, which tracemalloc cannot see)
    bounds the peak of the Python / numpy allocations of a real run."""
    image = crop(tmp_path, "wide.tif", (0, 0, 1024, 512))
    contract = contract_for(4, input_scale=1 / 255, tile_size=64, output_margin=8)
    model = pointwise_model(tmp_path / "m.onnx", WEIGHTS, contract=contract, margin=8)
    session = load_session(model, "cpu")
    options = ClassifyOptions(device="cpu", batch_size=8, stripe_width=256, overviews=False)
    tracemalloc.start()
    try:
        classify(
            GdalImageSource(image), session, OutputPaths(tmp_path / "out.tif"), options=options
        )
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    estimate = pipeline_memory_bytes(
        tile_size=64, margin=8, bands=4, classes=4, batch_size=8, stripe_width=256
    )
    workspace = 66 * 8 * 4 * 4 * 64 * 64
    assert peak <= estimate - workspace


def test_memory_limit_lowers_an_automatic_batch_and_refuses_explicit_ones(
    tmp_path: Path, naip: Path, model: Path
) -> None:
    shape = {"tile_size": 32, "margin": 0, "bands": 4, "classes": 4, "stripe_width": 300}

    def need(batch: int) -> int:
        return pipeline_memory_bytes(**shape, batch_size=batch)

    limit = need(2) + (need(3) - need(2)) // 2  # room for 2 tiles per batch, not 3
    progress = NullProgress()
    options = ClassifyOptions(device="cpu", memory_limit_bytes=limit)
    classify(
        GdalImageSource(naip),
        model,
        OutputPaths(tmp_path / "auto.tif"),
        options=options,
        progress=progress,
    )
    assert any("batches of 2 are used" in m for m in progress.messages)
    scores = closed_form(read(naip), WEIGHTS, BIAS, 1 / 255)
    sure = decided(scores)
    np.testing.assert_array_equal(
        read(tmp_path / "auto.tif")[sure], scores.argmax(axis=0)[sure] + 1
    )
    explicit = dataclasses.replace(options, batch_size=4)
    with pytest.raises(InputError, match=r"Batches of 4 tiles of 32 px .* \(BATCH_SIZE\) to 2 or"):
        classify(
            GdalImageSource(naip), model, OutputPaths(tmp_path / "explicit.tif"), options=explicit
        )
    assert not (tmp_path / "explicit.tif").exists()


def test_a_tile_too_large_for_the_memory_limit_is_refused_with_one_that_fits(
    tmp_path: Path, naip: Path, model: Path
) -> None:
    limit = 200 * 2**20
    options = ClassifyOptions(device="cpu", tile_size=1024, memory_limit_bytes=limit)
    # A 1100 px wide raster: tiles of 1024 are not capped (one does not cover it).
    wide = crop(tmp_path, "wide.tif", (0, 0, 1024, 512), width=1100, height=200)
    with pytest.raises(InputError, match=r"One tile of 1024 px needs about") as error:
        classify(GdalImageSource(wide), model, OutputPaths(tmp_path / "out.tif"), options=options)
    suggested = int(re.search(r"TILE_SIZE\) to (\d+) px", str(error.value)).group(1))
    shape = {"margin": 0, "bands": 4, "classes": 4, "batch_size": 1, "stripe_width": 1100}
    assert suggested % 32 == 0
    assert pipeline_memory_bytes(tile_size=suggested, **shape) <= limit
    assert pipeline_memory_bytes(tile_size=suggested + 32, **shape) > limit
    assert "200 MiB (the memory limit given)" in str(error.value)
    assert not (tmp_path / "out.tif").exists()


def test_overlap_is_bounded_and_a_model_overlap_above_it_is_clamped(
    tmp_path: Path, naip: Path
) -> None:
    contract = contract_for(4, input_scale=1 / 255, tiles_overlap_percent=90.0)
    model = pointwise_model(tmp_path / "m.onnx", WEIGHTS, BIAS, contract=contract)
    progress = NullProgress()
    result = classify(
        GdalImageSource(naip), model, OutputPaths(tmp_path / "out.tif"), progress=progress
    )
    # Overlap 50 % of 32 = 16 px, stride 16: 300 px -> 0, 16, ..., 256, 268 (18 tiles);
    # 230 px -> 0, 16, ..., 192, 198 (14 tiles).
    assert result.tiles_run + result.tiles_skipped == 18 * 14
    assert any("50 % is used" in m for m in progress.messages)
    options = ClassifyOptions(overlap_percent=99.0)
    with pytest.raises(InputError, match="Tile overlap must be 0-50 percent"):
        classify(GdalImageSource(naip), model, OutputPaths(tmp_path / "o.tif"), options=options)
