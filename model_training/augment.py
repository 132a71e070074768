# SPDX-License-Identifier: GPL-2.0-or-later
"""Augmentation for aerial imagery: the 8 symmetries of the square (an aerial view has
no "up"), and per-band brightness / contrast jitter (illumination, sensor and season
differences between NAIP acquisitions)."""

from __future__ import annotations

import numpy as np


def augment(
    image: np.ndarray,
    target: np.ndarray,
    rng: np.random.Generator,
    *,
    flips: bool = True,
    rotate90: bool = True,
    brightness: float = 0.0,
    contrast: float = 0.0,
    input_scale: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Randomly transform one patch.

    Args:
        image: (bands, rows, cols) float32 raw DN.
        target: (rows, cols) targets; moved with the image, never jittered.
        rng: the draw's own generator (so augmentation is reproducible).
        brightness: per-band offset drawn from U(-brightness, brightness), in scaled
            units (DN x ``input_scale``, e.g. reflectance 0-1).
        contrast: per-band gain drawn from U(1 - contrast, 1 + contrast) about the
            band's patch mean.
        input_scale: DN -> scaled units factor.

    Returns:
        The transformed (image, target), C-contiguous.
    """
    bands = image.shape[0]
    # Draw every random number whatever the settings, so the stream does not shift
    # when one augmentation is switched off.
    turns = int(rng.integers(4))
    mirror = bool(rng.random() < 0.5)
    gain = rng.uniform(1.0 - contrast, 1.0 + contrast, size=bands)
    offset = rng.uniform(-brightness, brightness, size=bands)
    if rotate90 and turns:
        image = np.rot90(image, turns, axes=(1, 2))
        target = np.rot90(target, turns, axes=(0, 1))
    if flips and mirror:
        image = image[:, :, ::-1]
        target = target[:, ::-1]
    image = np.ascontiguousarray(image, dtype=np.float32)
    target = np.ascontiguousarray(target)
    if contrast or brightness:
        mean = image.mean(axis=(1, 2), keepdims=True)
        image = (image - mean) * gain[:, None, None].astype(np.float32) + mean
        image += (offset / input_scale)[:, None, None].astype(np.float32)
    return image, target
