# SPDX-License-Identifier: GPL-2.0-or-later
"""Which windows the model sees: random training windows with rare-class
over-sampling, and a fixed validation grid.

Training draws are *counter based*: draw ``k`` of rank ``r`` uses its own generator
seeded with ``(seed, r, k)``. Ranks therefore never share a stream, the stream does not
depend on how many DataLoader workers read it, and the sampler's whole state is the
number of draws consumed (``next_draw`` in a checkpoint), so a resumed run continues
the exact same stream.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch.utils.data

from qgis_landcover.core.raster.grid import Window, iter_windows

from .data import PairSource, read_patch
from .labels import IGNORE_INDEX


@dataclass(frozen=True)
class Draw:
    """One training window: the source's index and the window in its pixels."""

    source: int
    window: Window


def rare_fraction(target: np.ndarray, rare_channels: Sequence[int]) -> float:
    """Share of the window's pixels (labelled or not) that belong to a rare class."""
    if not rare_channels:
        return 0.0
    return float(np.isin(target, rare_channels).sum()) / target.size


def labelled_fraction(target: np.ndarray) -> float:
    return float((target != IGNORE_INDEX).sum()) / target.size


class PatchSampler:
    """Random ``size`` x ``size`` windows with rare-class over-sampling.

    A candidate window (source chosen in proportion to its area, position uniform) is
    rejected when less than ``min_labelled_fraction`` of it is labelled; otherwise it is
    kept when more than ``rare_min_fraction`` of its pixels are of a rare class, and
    with probability ``common_keep_probability`` when not. After ``max_tries``
    candidates the last one is kept, so a draw always ends.

    Args:
        sources: the training pairs.
        size: window side in pixels.
        rare_channels: output-channel indices of the rare classes.
        seed: run seed; rank: this process's rank.
    """

    def __init__(
        self,
        sources: Sequence[PairSource],
        size: int,
        rare_channels: Sequence[int],
        rare_min_fraction: float,
        common_keep_probability: float,
        min_labelled_fraction: float,
        max_tries: int,
        seed: int,
        rank: int,
    ) -> None:
        self.sources = list(sources)
        self.size = size
        self.rare_channels = list(rare_channels)
        self.rare_min_fraction = rare_min_fraction
        self.common_keep_probability = common_keep_probability
        self.min_labelled_fraction = min_labelled_fraction
        self.max_tries = max_tries
        self.seed = seed
        self.rank = rank
        areas = np.array([s.width * s.height for s in self.sources], dtype=np.float64)
        self.source_probability = areas / areas.sum()

    def generator(self, index: int, stream: int = 0) -> np.random.Generator:
        """The generator of draw ``index`` (``stream`` 1 is for its augmentation)."""
        return np.random.default_rng([self.seed, self.rank, index, stream])

    def candidate(self, rng: np.random.Generator) -> Draw:
        source = int(rng.choice(len(self.sources), p=self.source_probability))
        width, height = self.sources[source].width, self.sources[source].height
        col = int(rng.integers(0, max(width - self.size, 0) + 1))
        row = int(rng.integers(0, max(height - self.size, 0) + 1))
        return Draw(source, Window(col, row, self.size, self.size))

    def keep(self, target: np.ndarray, coin: float) -> bool:
        """Whether a candidate with these targets is accepted, given a uniform ``coin``."""
        if labelled_fraction(target) < self.min_labelled_fraction:
            return False
        if rare_fraction(target, self.rare_channels) > self.rare_min_fraction:
            return True
        return coin < self.common_keep_probability

    def draw(self, index: int) -> tuple[Draw, np.ndarray, np.ndarray]:
        """Draw ``index`` of this rank: the window, its image (bands, size, size) float32
        raw DN and targets (size, size) uint8."""
        rng = self.generator(index)
        for attempt in range(self.max_tries):
            draw = self.candidate(rng)
            source = self.sources[draw.source]
            clipped = clip_window(draw.window, source.width, source.height)
            target = source.read_target(clipped)
            coin = float(rng.random())
            if self.keep(target, coin) or attempt == self.max_tries - 1:
                image, target = read_patch(source, draw.window, self.size)
                return draw, image, target
        raise AssertionError("unreachable")


def clip_window(window: Window, width: int, height: int) -> Window:
    return Window(
        window.col_off,
        window.row_off,
        min(window.width, width - window.col_off),
        min(window.height, height - window.row_off),
    )


def validation_windows(
    sources: Sequence[PairSource],
    size: int,
    rank: int = 0,
    world_size: int = 1,
    margin: int = 0,
) -> list[Draw]:
    """This rank's share of the validation grid, dealt out round-robin to ranks.

    Every source is tiled with scored windows of ``size - 2 * margin`` pixels; each draw
    is the ``size`` x ``size`` tile the model reads for one of them: the scored window
    grown by ``margin`` on every side (and, at the far edges, past the source; read with
    :func:`~model_training.data.read_with_context`). The model's output, cropped by
    ``margin``, then scores every pixel of every source exactly once.
    """
    step = size - 2 * margin
    if step <= 0:
        raise ValueError(f"a {size} px tile leaves nothing inside a {margin} px margin")
    grid = [
        Draw(index, Window(window.col_off - margin, window.row_off - margin, size, size))
        for index, source in enumerate(sources)
        for window in iter_windows(source.width, source.height, step, step)
    ]
    return grid[rank::world_size]


class StreamIndices(torch.utils.data.Sampler[int]):
    """Draw indices ``start, start + 1, ...`` for one run segment; ``start`` is restored
    from a checkpoint on resume."""

    def __init__(self, start: int, count: int) -> None:
        self.start = start
        self.count = count

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.start, self.start + self.count))

    def __len__(self) -> int:
        return self.count
