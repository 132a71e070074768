# SPDX-License-Identifier: GPL-2.0-or-later
"""PyTorch datasets over the sampler: standardised, augmented training patches and
the validation grid, batched by DataLoaders."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.utils.data

from qgis_landcover.core.inference.normalization import Normalizer

from .augment import augment
from .config import AugmentConfig
from .data import PairSource, read_with_context
from .sampler import Draw, PatchSampler, StreamIndices


class TrainPatches(torch.utils.data.Dataset[dict[str, torch.Tensor]]):
    """Item ``k`` is draw ``k`` of this rank's stream (see :class:`PatchSampler`):
    ``image`` (bands, size, size) float32, normalised as the model contract prescribes;
    ``target`` (size, size) int64; ``draw`` = (k, source, col, row) for audits."""

    def __init__(
        self,
        sampler: PatchSampler,
        augmentation: AugmentConfig,
        normalizer: Normalizer,
        input_scale: float,
    ) -> None:
        self.sampler = sampler
        self.augmentation = augmentation
        self.normalizer = normalizer
        self.input_scale = input_scale

    def __len__(self) -> int:
        return 2**62  # an endless stream; StreamIndices says which part to read

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        draw, image, target = self.sampler.draw(index)
        a = self.augmentation
        image, target = augment(
            image,
            target,
            self.sampler.generator(index, stream=1),
            flips=a.flips,
            rotate90=a.rotate90,
            brightness=a.brightness,
            contrast=a.contrast,
            input_scale=self.input_scale,
        )
        return {
            "image": torch.from_numpy(self.normalizer(image)),
            "target": torch.from_numpy(target.astype(np.int64)),
            "draw": torch.tensor(
                [index, draw.source, draw.window.col_off, draw.window.row_off], dtype=torch.int64
            ),
        }


class ValidationTiles(torch.utils.data.Dataset[dict[str, torch.Tensor]]):
    """The fixed validation tiles of this rank (see
    :func:`~model_training.sampler.validation_windows`): ``image`` (bands, size, size)
    normalised, filled by reflection past the source; ``target`` (size, size) int64,
    ``IGNORE_INDEX`` past the source."""

    def __init__(
        self,
        sources: Sequence[PairSource],
        windows: Sequence[Draw],
        normalizer: Normalizer,
    ) -> None:
        self.sources = list(sources)
        self.windows = list(windows)
        self.normalizer = normalizer

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        draw = self.windows[index]
        image, target = read_with_context(self.sources[draw.source], draw.window)
        return {
            "image": torch.from_numpy(self.normalizer(image)),
            "target": torch.from_numpy(target.astype(np.int64)),
        }


def train_loader(
    dataset: TrainPatches, start: int, count: int, batch_size: int, workers: int, pin: bool
) -> torch.utils.data.DataLoader[dict[str, torch.Tensor]]:
    """Batches of draws ``start .. start + count - 1`` (in order)."""
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=StreamIndices(start, count),
        num_workers=workers,
        pin_memory=pin,
        persistent_workers=False,
        drop_last=False,
    )


def validation_loader(
    dataset: ValidationTiles, batch_size: int, workers: int, pin: bool
) -> torch.utils.data.DataLoader[dict[str, torch.Tensor]]:
    return torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, shuffle=False, num_workers=workers, pin_memory=pin
    )
