# SPDX-License-Identifier: GPL-2.0-or-later
"""Augmentation: the image and its labels move together through the 8 symmetries of
the square; jitter changes band values only, by the configured amounts."""

from __future__ import annotations

import numpy as np
import pytest

from model_training.augment import augment

from .tiny import patch


@pytest.fixture(scope="module")
def real() -> tuple[np.ndarray, np.ndarray]:
    array = np.load(patch(0))["arr_0"][0]
    return array[0:4, :40, :30].astype(np.float32), array[8, :40, :30].astype(np.uint8)


def test_geometry_moves_image_and_labels_together(real: tuple[np.ndarray, np.ndarray]) -> None:
    image, _ = real
    # Distinct values everywhere, so every symmetry gives a different array.
    target = (np.arange(40 * 30) % 251).reshape(40, 30).astype(np.uint8)
    image = image.copy()
    image[0] = target  # band 0 carries the labels: it must stay equal to the target
    outcomes = set()
    for seed in range(64):
        out_image, out_target = augment(image, target, np.random.default_rng(seed))
        np.testing.assert_array_equal(out_image[0], out_target)
        outcomes.add(out_target.tobytes() + bytes(out_target.shape))
    assert len(outcomes) == 8  # the dihedral group of the square, all reached


def test_switched_off_geometry_keeps_the_patch(real: tuple[np.ndarray, np.ndarray]) -> None:
    image, target = real
    out_image, out_target = augment(
        image, target, np.random.default_rng(1), flips=False, rotate90=False
    )
    np.testing.assert_array_equal(out_image, image)
    np.testing.assert_array_equal(out_target, target)


def test_brightness_is_a_bounded_per_band_offset(real: tuple[np.ndarray, np.ndarray]) -> None:
    image, target = real
    scale = 1 / 255
    offsets = []
    for seed in range(50):
        out, out_target = augment(
            image, target, np.random.default_rng(seed), flips=False, rotate90=False,
            brightness=0.05, input_scale=scale,
        )  # fmt: skip
        np.testing.assert_array_equal(out_target, target)
        delta = (out - image).reshape(4, -1)
        np.testing.assert_allclose(delta, delta[:, :1].repeat(delta.shape[1], 1), atol=1e-4)
        offsets.append(delta[:, 0] * scale)  # back in scaled units
    offsets = np.array(offsets)
    assert np.abs(offsets).max() <= 0.05 + 1e-6
    assert np.abs(offsets).max() > 0.03  # the range is used, not a constant
    assert len({round(float(v), 6) for v in offsets[0]}) == 4  # independent per band


def test_contrast_keeps_each_band_mean_and_scales_spread(
    real: tuple[np.ndarray, np.ndarray],
) -> None:
    image, target = real
    out, _ = augment(
        image, target, np.random.default_rng(3), flips=False, rotate90=False, contrast=0.2
    )
    np.testing.assert_allclose(out.mean(axis=(1, 2)), image.mean(axis=(1, 2)), rtol=1e-5)
    gain = out.std(axis=(1, 2)) / image.std(axis=(1, 2))
    assert ((gain >= 0.8 - 1e-5) & (gain <= 1.2 + 1e-5)).all()
    assert not np.allclose(gain, 1.0)
