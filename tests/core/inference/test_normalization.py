# SPDX-License-Identifier: GPL-2.0-or-later
from __future__ import annotations

import numpy as np

from qgis_landcover.core.inference.normalization import Normalizer

from ...onnx_models import contract_for


def test_scale_then_standardise_per_band() -> None:
    mean, std = [0.1, 0.2, 0.3, 0.4], [0.5, 0.25, 2.0, 1.0]
    contract = contract_for(
        2, input_scale=1 / 255, standardization_mean=mean, standardization_std=std
    )
    raw = np.random.default_rng(3).integers(0, 256, size=(2, 4, 5, 6)).astype(np.float32)
    expected = (raw.astype(np.float64) / 255 - np.reshape(mean, (4, 1, 1))) / np.reshape(
        std, (4, 1, 1)
    )
    got = Normalizer(contract)(raw.copy())
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    # (bands, rows, cols) works too.
    np.testing.assert_allclose(Normalizer(contract)(raw[0].copy()), expected[0], atol=1e-5)


def test_without_standardisation_only_scales() -> None:
    contract = contract_for(2, input_scale=0.5)
    raw = np.full((1, 4, 2, 2), 10.0, np.float32)
    np.testing.assert_array_equal(Normalizer(contract)(raw), np.full((1, 4, 2, 2), 5.0))


def test_a_single_mean_and_std_apply_to_every_band() -> None:
    contract = contract_for(
        2, input_scale=1.0, standardization_mean=[2.0], standardization_std=[4.0]
    )
    raw = np.full((4, 1, 1), 10.0, np.float32)
    np.testing.assert_array_equal(Normalizer(contract)(raw), np.full((4, 1, 1), 2.0))
