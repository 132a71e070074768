# SPDX-License-Identifier: GPL-2.0-or-later
"""The adaptation evaluation's labels: equal numbers per reference class, on pixels of
that class in the left columns, reproducible; classes too rare to adapt on dropped."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from osgeo import gdal

from model_training.release.evaluate_adaptation import (
    TRAIN,
    Labels,
    random_labels,
    reference_at,
    training_reference,
)

from ...conftest import DATA

LABELS = DATA / "chesapeake_1m_patches" / "m_3708020_sw_17_1_2014_mosaic_labels.tif"
X0, Y0 = 580000.0, 4100000.0  # upper-left corner of the mosaic, EPSG:26917, 1 m pixels


def test_random_labels(tmp_path: Path) -> None:
    reference = training_reference(tmp_path)
    raw = gdal.Open(str(LABELS)).ReadAsArray()[:, : TRAIN.width]
    labels = random_labels(reference, 50, seed=2)
    # Chesapeake 5 and 6 -> 4: classes 2, 3, 4 in the left columns, 50 = 17 + 17 + 16.
    assert labels.per_class() == {2: 17, 3: 17, 4: 16}
    rows = (Y0 - labels.ys - 0.5).astype(int)
    cols = (labels.xs - X0 - 0.5).astype(int)
    assert cols.max() < TRAIN.width
    remapped = np.where(np.isin(raw, (5, 6)), 4, raw)
    np.testing.assert_array_equal(remapped[rows, cols], labels.classes)
    again = random_labels(reference, 50, seed=2)
    np.testing.assert_array_equal(again.xs, labels.xs)
    assert reference_at(reference, labels.xs, labels.ys).per_class() == labels.per_class()


def test_without_rare() -> None:
    labels = Labels(np.arange(9.0), np.arange(9.0), np.array([2] * 6 + [3] * 3))
    assert labels.without_rare().per_class() == {2: 6}
    assert (labels + labels).without_rare().per_class() == {2: 12, 3: 6}
