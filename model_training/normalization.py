# SPDX-License-Identifier: GPL-2.0-or-later
"""Statistics of the training data: per-band mean / std for the input standardisation
(written into the model metadata, and applied in training by the plugin core's own
:class:`~qgis_landcover.core.inference.normalization.Normalizer`, so training and inference
normalise identically) and class pixel counts for the loss weights."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from qgis_landcover.core.errors import InputError
from qgis_landcover.core.raster.grid import Window

from .data import PairSource, read_patch
from .labels import IGNORE_INDEX


@dataclass
class DataStatistics:
    """What a uniform sample of training windows holds.

    Attributes:
        mean, std: per band, in scaled units (DN x input_scale), over valid pixels.
        class_counts: labelled pixels per output channel.
        windows: number of windows measured.
    """

    mean: list[float]
    std: list[float]
    class_counts: list[int]
    windows: int


def sample_statistics(
    sources: Sequence[PairSource],
    size: int,
    num_classes: int,
    input_scale: float,
    windows: int,
    seed: int,
) -> DataStatistics:
    """Band mean / std and class counts over ``windows`` uniformly placed windows
    (source chosen in proportion to its area); sources smaller than ``windows`` such
    windows are read whole once instead of sampled, so small data is measured exactly."""
    rng = np.random.default_rng([seed, 0x5747])  # a stream of its own, apart from training
    bands = None
    total = sumsq = None
    count = 0
    class_counts = np.zeros(num_classes, dtype=np.int64)
    areas = np.array([s.width * s.height for s in sources], dtype=np.float64)
    if areas.sum() <= windows * size * size:
        plan = [(i, 0, 0, s.width, s.height) for i, s in enumerate(sources)]
    else:
        plan = []
        for _ in range(windows):
            i = int(rng.choice(len(sources), p=areas / areas.sum()))
            source = sources[i]
            col = int(rng.integers(0, max(source.width - size, 0) + 1))
            row = int(rng.integers(0, max(source.height - size, 0) + 1))
            plan.append((i, col, row, min(size, source.width), min(size, source.height)))
    for i, col, row, width, height in plan:
        source = sources[i]
        image, target = read_patch(source, Window(col, row, width, height), max(width, height))
        image, target = image[:, :height, :width], target[:height, :width]
        valid = source.image_valid(image)
        pixels = image[:, valid].astype(np.float64) * input_scale
        if bands is None:
            bands = image.shape[0]
            total = np.zeros(bands)
            sumsq = np.zeros(bands)
        total += pixels.sum(axis=1)
        sumsq += (pixels**2).sum(axis=1)
        count += pixels.shape[1]
        labelled = target[target != IGNORE_INDEX]
        class_counts += np.bincount(labelled, minlength=num_classes)[:num_classes]
    if not count or total is None or sumsq is None:
        raise InputError("The training data holds no valid image pixels to measure.")
    mean = total / count
    std = np.sqrt(np.maximum(sumsq / count - mean**2, 0.0))
    std = np.maximum(std, 1e-6)  # a constant band must not divide by zero
    return DataStatistics(
        mean=[float(v) for v in mean],
        std=[float(v) for v in std],
        class_counts=[int(v) for v in class_counts],
        windows=len(plan),
    )
