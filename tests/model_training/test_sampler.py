# SPDX-License-Identifier: GPL-2.0-or-later
"""The patch sampler: rare-class over-sampling against its closed form, per-rank
streams, determinism, and the validation grid."""

from __future__ import annotations

import numpy as np
import pytest

from model_training.data import PairSpec, RasterPair
from model_training.labels import IGNORE_INDEX, LabelMapper
from model_training.sampler import PatchSampler, validation_windows
from qgis_landcover.core.raster.grid import Window

from .tiny import LOWRES, MOSAIC_IMAGE, MOSAIC_LABELS

SIZE = 32
WATER = 0  # channel of class 1 (water): 1.2 % of the real low-resolution tile
RARE_MIN = 0.01
MIN_LABELLED = 0.05


@pytest.fixture(scope="module")
def tile() -> RasterPair:
    mapper = LabelMapper({5: 4, 6: 4}, [1, 2, 3, 4], ignore_values=[0, 15])
    spec = PairSpec(
        str(LOWRES / "m_3907833_nw_17_1_naip-new.tif"), str(LOWRES / "m_3907833_nw_17_1_lc.tif")
    )
    return RasterPair(spec, mapper, [1, 2, 3, 4], cache=True)


def window_sums(mask: np.ndarray, size: int) -> np.ndarray:
    """Sum of ``mask`` over every size x size window position (summed-area table)."""
    table = np.pad(mask.astype(np.int64).cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    return table[size:, size:] - table[:-size, size:] - table[size:, :-size] + table[:-size, :-size]


def expected_rare_share(target: np.ndarray, keep_common: float) -> float:
    """Rare-class share of the labelled pixels the sampler should deliver: every window
    position equally likely as a candidate, accepted with probability 1 (more than
    RARE_MIN rare pixels), ``keep_common`` (other labelled windows) or 0 (less than
    MIN_LABELLED labelled)."""
    area = SIZE * SIZE
    rare = window_sums(target == WATER, SIZE)
    labelled = window_sums(target != IGNORE_INDEX, SIZE)
    accept = np.where(rare / area > RARE_MIN, 1.0, keep_common)
    accept[labelled / area < MIN_LABELLED] = 0.0
    return float((accept * rare).sum() / (accept * labelled).sum())


def sampled_rare_share(tile: RasterPair, keep_common: float, draws: int) -> float:
    sampler = PatchSampler([tile], SIZE, [WATER], RARE_MIN, keep_common, MIN_LABELLED, 50, 3, 0)
    rare = labelled = 0
    for index in range(draws):
        _, _, target = sampler.draw(index)
        rare += int((target == WATER).sum())
        labelled += int((target != IGNORE_INDEX).sum())
    return rare / labelled


def test_rare_class_share_follows_the_configured_over_sampling(tile: RasterPair) -> None:
    target = tile.read_target(Window(0, 0, tile.width, tile.height))
    natural = float((target == WATER).sum() / (target != IGNORE_INDEX).sum())
    plain = expected_rare_share(target, 1.0)
    boosted = expected_rare_share(target, 0.1)
    assert boosted > 2.5 * plain  # the configuration is a strong over-sampling
    # Without over-sampling the share is the tile's own (up to edge effects).
    assert plain == pytest.approx(natural, rel=0.15)
    assert sampled_rare_share(tile, 1.0, 1500) == pytest.approx(plain, rel=0.2)
    assert sampled_rare_share(tile, 0.1, 1500) == pytest.approx(boosted, rel=0.2)


def test_draws_are_deterministic_per_index_and_differ_between_ranks(tile: RasterPair) -> None:
    def sampler(rank: int, seed: int = 0) -> PatchSampler:
        return PatchSampler([tile], SIZE, [WATER], RARE_MIN, 0.5, MIN_LABELLED, 50, seed, rank)

    first, again = sampler(0), sampler(0)
    forward = [first.draw(i)[0] for i in range(20)]
    backward = [again.draw(i)[0] for i in reversed(range(20))][::-1]
    assert forward == backward  # a draw depends on its index only, not on the order
    rank1 = [sampler(1).draw(i)[0] for i in range(20)]
    other_seed = [sampler(0, seed=1).draw(i)[0] for i in range(20)]
    assert sum(a == b for a, b in zip(forward, rank1, strict=True)) == 0
    assert sum(a == b for a, b in zip(forward, other_seed, strict=True)) == 0
    _, image, target = first.draw(4)
    _, image_again, target_again = again.draw(4)
    np.testing.assert_array_equal(image, image_again)
    np.testing.assert_array_equal(target, target_again)


def test_unlabelled_windows_are_rejected() -> None:
    # The mosaic labels have no 0 / 15, so ignore class 2 (tree, 81 %): windows entirely
    # of tree then count as unlabelled and must be skipped.
    mapper = LabelMapper({5: 4, 6: 4}, [1, 2, 3, 4], ignore_values=[0, 2, 15])
    pair = RasterPair(PairSpec(str(MOSAIC_IMAGE), str(MOSAIC_LABELS)), mapper, [1, 2, 3, 4])
    sampler = PatchSampler([pair], 64, [3], 0.003, 1.0, 0.5, 200, 0, 0)
    for index in range(30):
        _, _, target = sampler.draw(index)
        assert (target != IGNORE_INDEX).mean() >= 0.5


@pytest.mark.parametrize("world_size", [1, 2, 3])
def test_validation_grid_covers_every_pixel_once(tile: RasterPair, world_size: int) -> None:
    coverage = np.zeros((tile.height, tile.width), dtype=int)
    seen = []
    for rank in range(world_size):
        for draw in validation_windows([tile], 64, rank, world_size):
            w = draw.window
            coverage[w.row_off : w.row_off + w.height, w.col_off : w.col_off + w.width] += 1
            seen.append(draw)
    assert (coverage == 1).all()
    assert len(seen) == len(set(seen)) == 25  # 260 px in 64 px tiles: 5 x 5


@pytest.mark.parametrize(("world_size", "margin"), [(1, 16), (2, 16), (3, 24)])
def test_validation_tiles_with_a_margin_score_every_pixel_once(
    tile: RasterPair, world_size: int, margin: int
) -> None:
    size = 96
    scored = np.zeros((tile.height, tile.width), dtype=int)
    draws = [
        draw
        for rank in range(world_size)
        for draw in validation_windows([tile], size, rank, world_size, margin)
    ]
    for draw in draws:
        w = draw.window
        assert (w.width, w.height) == (size, size)  # the model always reads whole tiles
        # The model's output is the tile without its margin; outside the source ignored.
        rows = slice(max(w.row_off + margin, 0), w.row_off + size - margin)
        cols = slice(max(w.col_off + margin, 0), w.col_off + size - margin)
        scored[rows, cols] += 1
    assert (scored == 1).all()
    step = size - 2 * margin
    assert len(draws) == len(set(draws)) == (-(-260 // step)) ** 2
    with pytest.raises(ValueError, match="leaves nothing"):
        validation_windows([tile], 32, margin=16)
