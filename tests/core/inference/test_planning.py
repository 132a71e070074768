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
from qgis_landcover.core.inference.planning import (
    MODEL_WORKSPACE_FACTOR,
    TILE_MEMORY_BUDGET,
    automatic_stripe_width,
    automatic_tile_size,
    choose_tile_size,
    pipeline_memory_bytes,
    session_memory_bytes,
    stripe_width_for,
)
from qgis_landcover.core.inference.session import load_session, probe_tile_size
from qgis_landcover.core.inference.tile_plan import plan_tiles
from qgis_landcover.core.progress import NullProgress
from qgis_landcover.core.raster.grid import Window

from ...onnx_models import contract_for, pointwise_model
from .conftest import BIAS, WEIGHTS, closed_form, crop, decided, read

DEFAULT_MODEL = Path(__file__).parents[3] / "qgis_landcover" / "models" / "azure_2018_unet.onnx"
INT8_MODEL = DEFAULT_MODEL.with_name("azure_2018_unet_int8.onnx")


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
    assert pipeline_memory_bytes(**shape, batch_size=4) == own + 100 * inputs


def test_pipeline_memory_estimate_bounds_the_arrays_allocated(tmp_path: Path) -> None:
    """The estimate (without the model's working memory, which tracemalloc cannot see)
    bounds the peak of the Python / numpy allocations of a real run."""
    image = crop(tmp_path, "wide.tif", (0, 0, 1024, 512))
    contract = contract_for(4, input_scale=1 / 255, tile_size=64, output_margin=8)
    model = pointwise_model(tmp_path / "m.onnx", WEIGHTS, contract=contract, margin=8)
    session = load_session(model, "cpu")
    options = ClassifyOptions(
        device="cpu", batch_size=8, tile_size=64, stripe_width=256, overviews=False
    )
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
    workspace = MODEL_WORKSPACE_FACTOR * 8 * 4 * 4 * 64 * 64
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


def fits_up_to(largest: int):
    return lambda tile: tile <= largest


def test_tile_choice_minimises_pixels_computed_for_the_extent() -> None:
    """Margin 64, no overlap. A 10000 px square extent: tile 512 (output 384, 27 x 27
    tiles, 191.1 Mpx computed) beats 480 (29 x 29 of 480^2, 193.8 Mpx) and 448 (32 x 32,
    205.5 Mpx). The demo mosaic, 1024 x 512: tile 384 (output 256, 4 x 2 tiles, 1.18 Mpx)
    beats 512 (3 x 2, 1.57 Mpx) and 416 (4 x 2, 1.38 Mpx)."""
    choice = choose_tile_size(
        margin=64, width=10_000, height=10_000, overlap_percent=0, fits=fits_up_to(512)
    )
    assert (choice.tile_size, choice.tile_count) == (512, 27 * 27)
    assert choice.computed_pixels == 729 * 512**2
    assert choice.largest_fitting == 512
    assert choice.overhead_share == pytest.approx(1 - 10_000**2 / (729 * 512**2))
    demo = choose_tile_size(
        margin=64, width=1024, height=512, overlap_percent=0, fits=fits_up_to(512)
    )
    assert (demo.tile_size, demo.tile_count) == (384, 8)


def test_tile_choice_stays_within_the_memory_budget_and_the_extent() -> None:
    """Memory admitting tiles up to 448 px: 448 (32 x 32 tiles, 205.5 Mpx) beats 416
    (35 x 35, 212.0 Mpx). A 200 x 100 px extent: one tile of 352 px (200 + 2 x 64
    rounded up to 32) covers it; nothing larger is tried."""
    choice = choose_tile_size(
        margin=64, width=10_000, height=10_000, overlap_percent=0, fits=fits_up_to(448)
    )
    assert (choice.tile_size, choice.tile_count, choice.largest_fitting) == (448, 1024, 448)
    small = choose_tile_size(
        margin=64, width=200, height=100, overlap_percent=0, fits=fits_up_to(4096)
    )
    assert (small.tile_size, small.tile_count, small.largest_fitting) == (352, 1, 352)
    assert small.overhead_share == pytest.approx(1 - 20_000 / 352**2)
    with pytest.raises(InputError, match="Not even one tile of 160 px"):
        choose_tile_size(margin=64, width=200, height=100, overlap_percent=0, fits=fits_up_to(128))


def test_default_model_tile_is_chosen_and_tile_size_overrides_it(tmp_path: Path) -> None:
    """The shipped 2018 U-Net (margin 64, free input size, metadata tile 256) on a
    1024 x 512 px window runs 8 tiles of 384 px; TILE_SIZE=256 still runs 256 px tiles."""
    session = load_session(DEFAULT_MODEL, "cpu")
    window = Window(0, 0, 1024, 512)
    progress = NullProgress()
    tile = automatic_tile_size(session, ClassifyOptions(device="cpu"), window, 0.0, progress)
    assert tile == 384
    assert any("Tile size 384 px chosen" in m and "8 tiles" in m for m in progress.messages)
    explicit = ClassifyOptions(device="cpu", tile_size=256)
    assert automatic_tile_size(session, explicit, window, 0.0, progress) is None


@pytest.mark.parametrize(
    ("stride", "target", "expected"),
    [
        (512, 1024, 1024),  # 2 tiles per stripe
        (256, 1024, 1024),
        (384, 1024, 768),  # lcm(384, 256) = 768
        (416, 1024, 3328),  # lcm(416, 256) = 3328: one multiple, wider than the target
        (544, 1024, 1024),  # lcm(544, 256) = 4352 > 4096: the target, tiles straddle
        (512, 4096, 4096),
    ],
)
def test_automatic_stripes_are_multiples_of_the_stride_and_the_block(
    stride: int, target: int, expected: int
) -> None:
    assert automatic_stripe_width(stride, target) == expected


def test_tile_choice_counts_tiles_run_twice_across_stripes() -> None:
    """2048 x 2048 px, margin 64, stripes of 1024 px. Tile 672 (output 544) plans 4 x 4
    tiles at x = 0, 544, 1088, 1504: the one at 544 straddles column 1024 and runs in
    both stripes, 5 x 4 = 20 tiles of 672^2 (9.03 Mpx) against 16 of 640^2 (6.55 Mpx)
    for tile 640 (output 512, no tile straddles)."""
    choice = choose_tile_size(
        margin=64, width=2048, height=2048, overlap_percent=0, fits=fits_up_to(672),
        stripe_width=lambda plan: 1024,
    )  # fmt: skip
    assert (choice.tile_size, choice.tile_count) == (640, 16)
    plan = plan_tiles(2048, 2048, 672, 64, 0)
    assert plan.xs == (0, 544, 1088, 1504)
    assert sum(len(s.tile_cols) for s in plan.stripes(1024)) == 5
    # Without stripes, the larger tile would have looked as cheap.
    assert (
        choose_tile_size(
            margin=64, width=2048, height=2048, overlap_percent=0, fits=fits_up_to(640)
        ).computed_pixels
        == 16 * 640**2
    )


@pytest.mark.parametrize(("model", "expected"), [(DEFAULT_MODEL, 384), (INT8_MODEL, 640)])
def test_shipped_models_get_their_tiles_and_no_tile_runs_twice(model: Path, expected: int) -> None:
    """Automatic settings on the CPU: fp32 384 px tiles, int8 640 px (its activations
    need less memory), within the budget whatever the extent; the stripes are multiples
    of the output tile, so on 2048 and 8192 px squares each tile runs once."""
    session = load_session(model, "cpu")
    options = ClassifyOptions(device="cpu")
    for side in (2048, 8192):
        tile = automatic_tile_size(session, options, Window(0, 0, side, side), 0.0, NullProgress())
        assert tile == expected
        # The load's probe run is no larger than the run's tiles (its arena would stay).
        assert probe_tile_size(session.contract) <= tile
        plan = plan_tiles(side, side, tile, 64, 0)
        width = stripe_width_for(session, options, plan)
        assert width % plan.output_size == 0 and width % 256 == 0
        run = len(plan.ys) * sum(len(s.tile_cols) for s in plan.stripes(width))
        assert run == plan.tile_count
        needed = session_memory_bytes(
            session, tile_size=tile, margin=64, batch_size=1, stripe_width=width
        )
        assert needed <= TILE_MEMORY_BUDGET
