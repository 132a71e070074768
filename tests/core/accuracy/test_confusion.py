# SPDX-License-Identifier: GPL-2.0-or-later
"""The streaming confusion matrix against scikit-learn and plain numpy oracles."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import confusion_matrix

from qgis_landcover.core.accuracy.confusion import (
    AGREE,
    DISAGREE,
    IGNORED,
    ClassCounts,
    ConfusionMatrix,
)
from qgis_landcover.core.accuracy.value_codes import MAX_DISTINCT_VALUES, ClassRule
from qgis_landcover.core.errors import InputError

from ...conftest import TEST_DATA

CASES = json.loads((TEST_DATA / "accuracy_cases.json").read_text(encoding="utf-8"))


def oracle(
    predicted: np.ndarray,
    reference: np.ndarray,
    predicted_rule: ClassRule,
    reference_rule: ClassRule,
) -> tuple[list[int], np.ndarray, int]:
    """Classes, matrix and ignored count computed pixel by pixel with Python dicts and
    scikit-learn: an implementation independent of the accumulator's code tables."""

    def classes_of(values: np.ndarray, rule: ClassRule) -> tuple[np.ndarray, np.ndarray]:
        flat = [int(v) for v in values.ravel()]
        mapped = np.array([rule.remap.get(v, v) for v in flat], dtype=np.int64)
        ignored = np.array(
            [v in rule.nodata or m in rule.ignore for v, m in zip(flat, mapped, strict=True)]
        )
        return mapped, ignored

    p, p_ignored = classes_of(predicted, predicted_rule)
    r, r_ignored = classes_of(reference, reference_rule)
    keep = ~p_ignored & ~r_ignored
    classes = sorted(set(p[keep].tolist()) | set(r[keep].tolist()))
    matrix = (
        confusion_matrix(p[keep], r[keep], labels=classes)
        if classes
        else np.zeros((0, 0), dtype=np.int64)
    )
    return classes, matrix, int((~keep).sum())


DTYPES = [np.uint8, np.uint16, np.int16, np.int32, np.int64]


@pytest.mark.parametrize("predicted_dtype", DTYPES)
@pytest.mark.parametrize("seed", [0, 1])
def test_matches_sklearn_with_remaps_and_ignore_values(predicted_dtype: type, seed: int) -> None:
    rng = np.random.default_rng(seed)
    low = -3 if np.iinfo(predicted_dtype).min < 0 else 0
    predicted = rng.integers(low, 12, size=(61, 83)).astype(predicted_dtype)
    reference = rng.integers(0, 16, size=(61, 83)).astype(np.uint8)
    predicted_rule = ClassRule.build({5: 4, 6: 4, 11: 0}, nodata=[9])
    reference_rule = ClassRule.build({15: 0, 7: 3}, nodata=[14])
    cm = ConfusionMatrix(predicted=predicted_rule, reference=reference_rule, ignore_values=[0])

    # Blocks of uneven sizes: streaming must equal the whole-array result.
    for rows in np.array_split(np.arange(61), 5):
        for cols in np.array_split(np.arange(83), 3):
            cm.update(predicted[np.ix_(rows, cols)], reference[np.ix_(rows, cols)])

    full_rules = (
        ClassRule.build(predicted_rule.remap, predicted_rule.nodata, {0}),
        ClassRule.build(reference_rule.remap, reference_rule.nodata, {0}),
    )
    classes, matrix, ignored = oracle(predicted, reference, *full_rules)
    assert cm.classes == classes
    np.testing.assert_array_equal(cm.matrix, matrix)
    assert cm.ignored == ignored
    assert cm.observations + cm.ignored == predicted.size

    whole = ConfusionMatrix(predicted=predicted_rule, reference=reference_rule, ignore_values=[0])
    whole.update(predicted, reference)
    np.testing.assert_array_equal(whole.matrix, cm.matrix)


def test_wide_values_take_the_unique_path() -> None:
    rng = np.random.default_rng(5)
    values = np.array([-100_000, 7, 70_000, 2_000_000_000], dtype=np.int64)
    predicted = rng.choice(values, size=500)
    reference = rng.choice(values, size=500)
    cm = ConfusionMatrix(ignore_values=[])
    cm.update(predicted[:200], reference[:200])
    cm.update(predicted[200:], reference[200:])
    classes, matrix, _ = oracle(predicted, reference, ClassRule(), ClassRule())
    assert cm.classes == classes
    np.testing.assert_array_equal(cm.matrix, matrix)


def test_nodata_is_raw_and_ignore_values_are_after_the_remap() -> None:
    predicted = np.array([1, 2, 3, 15, 4], dtype=np.uint8)
    reference = np.array([1, 2, 3, 3, 4], dtype=np.uint8)
    # Raw 3 becomes 15 (not the raw nodata 15, so it counts); raw 4 becomes the
    # ignored class 0 and is left out; raw 15 is nodata.
    rule = ClassRule.build({3: 15, 4: 0}, nodata=[15])
    cm = ConfusionMatrix(predicted=rule, ignore_values=[0])
    cm.update(predicted, reference)
    assert cm.classes == [1, 2, 3, 15]
    assert cm.matrix[cm.classes.index(15), cm.classes.index(3)] == 1
    assert cm.observations == 3
    assert cm.ignored == 2


def test_fixed_classes_always_get_a_row_and_column() -> None:
    cm = ConfusionMatrix(classes=[1, 2, 3, 4])
    cm.update(np.array([1, 1, 2]), np.array([1, 2, 2]))
    assert cm.classes == [1, 2, 3, 4]
    np.testing.assert_array_equal(
        cm.matrix, [[1, 1, 0, 0], [0, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]
    )
    empty = ConfusionMatrix()
    assert empty.classes == []
    assert empty.matrix.shape == (0, 0)
    assert empty.observations == 0


def test_update_agreement_codes_every_pixel() -> None:
    rng = np.random.default_rng(11)
    predicted = rng.integers(0, 6, size=(30, 40)).astype(np.uint8)
    reference = rng.integers(0, 6, size=(30, 40)).astype(np.int16)
    rule = ClassRule.build({5: 4})
    cm = ConfusionMatrix(predicted=rule, ignore_values=[0, 3])
    agreement = cm.update_agreement(predicted, reference)
    assert agreement.shape == predicted.shape and agreement.dtype == np.uint8
    mapped = np.where(predicted == 5, 4, predicted)
    ignored = np.isin(mapped, [0, 3]) | np.isin(reference, [0, 3])
    expected = np.where(ignored, IGNORED, np.where(mapped == reference, AGREE, DISAGREE))
    np.testing.assert_array_equal(agreement, expected)
    assert cm.observations == int((~ignored).sum())
    assert int(np.trace(cm.matrix)) == int((expected == AGREE).sum())


def test_merge_adds_counts() -> None:
    rng = np.random.default_rng(2)
    a_pred, a_ref = rng.integers(0, 5, 300), rng.integers(0, 5, 300)
    b_pred, b_ref = rng.integers(2, 8, 300).astype(np.uint8), rng.integers(2, 8, 300)
    first, second, both = ConfusionMatrix(), ConfusionMatrix(), ConfusionMatrix()
    first.update(a_pred, a_ref)
    second.update(b_pred, b_ref)
    both.update(np.concatenate([a_pred, b_pred]), np.concatenate([a_ref, b_ref]))
    first.merge(second)
    assert first.classes == both.classes
    np.testing.assert_array_equal(first.matrix, both.matrix)
    assert first.ignored == both.ignored


def test_grass_r_kappa_grid_gives_its_matrix() -> None:
    case = CASES["grass_r_kappa_case1"]

    def grid(rows: list[list[int | None]]) -> np.ndarray:
        return np.array([[-1 if v is None else v for v in row] for row in rows], dtype=np.int16)

    cm = ConfusionMatrix(classes=case["cats"], ignore_values=[-1])
    cm.update(grid(case["classification"]), grid(case["reference"]))
    assert cm.classes == case["cats"]
    np.testing.assert_array_equal(cm.matrix, case["matrix_rows_classification_cols_reference"])
    assert cm.observations == case["observations"]


def test_class_counts_match_numpy() -> None:
    rng = np.random.default_rng(4)
    raster = rng.integers(0, 9, size=(100, 70)).astype(np.uint16)
    counter = ClassCounts(ClassRule.build({7: 2}, nodata=[8], ignore=[0]))
    for part in np.array_split(raster, 7):
        counter.update(part)
    mapped = np.where(raster == 7, 2, raster)
    keep = (raster != 8) & (mapped != 0)
    values, counts = np.unique(mapped[keep], return_counts=True)
    assert counter.counts() == dict(zip(values.tolist(), counts.tolist(), strict=True))
    assert counter.ignored == int((~keep).sum())


def test_bad_inputs() -> None:
    cm = ConfusionMatrix()
    with pytest.raises(InputError, match=r"integers, not float32"):
        cm.update(np.zeros(3, np.float32), np.zeros(3, np.float32))
    with pytest.raises(ValueError, match=r"differ in shape"):
        ConfusionMatrix().update(np.zeros(3, np.uint8), np.zeros(4, np.uint8))
    continuous = np.arange(MAX_DISTINCT_VALUES + 10, dtype=np.int32)
    with pytest.raises(InputError, match=r"continuous"):
        ConfusionMatrix().update(continuous, continuous)


def test_blocks_dominated_by_one_pair_count_exactly() -> None:
    # Mostly nodata (the shortcut for a dominant pair kicks in after the first block),
    # then a block where another pair dominates, then diverse data.
    rng = np.random.default_rng(12)
    predicted = np.zeros((40, 500), dtype=np.uint8)
    reference = np.full((40, 500), 15, dtype=np.uint8)
    predicted[10:20], reference[10:20] = 2, 2
    noisy = rng.random((40, 500)) < 0.1
    noisy[:10] = False  # the first blocks are one pair throughout
    predicted[noisy] = rng.integers(1, 7, int(noisy.sum()))
    reference[noisy] = rng.integers(1, 7, int(noisy.sum()))
    predicted[30:] = rng.integers(0, 7, (10, 500))
    reference[30:] = rng.integers(1, 7, (10, 500))
    rule = ClassRule.build(nodata=[15])
    cm = ConfusionMatrix(reference=rule)
    for rows in np.array_split(np.arange(40), 8):
        cm.update(predicted[rows], reference[rows])
    classes, matrix, ignored = oracle(
        predicted, reference, ClassRule(), ClassRule.build({}, [15], [0])
    )
    assert cm.classes == classes
    np.testing.assert_array_equal(cm.matrix, matrix)
    assert cm.ignored == ignored


def test_uniform_blocks() -> None:
    cm = ConfusionMatrix(reference=ClassRule.build(nodata=[15]))
    nodata = cm.update_agreement(np.zeros((3, 4), np.uint8), np.full((3, 4), 15, np.uint8))
    assert nodata.shape == (3, 4) and (nodata == IGNORED).all()
    agree = cm.update_agreement(np.full((2, 5), 2, np.uint8), np.full((2, 5), 2, np.uint8))
    assert (agree == AGREE).all()
    cm.update(np.full(7, 300, np.int32), np.full(7, 2, np.int32))  # wider types too
    assert cm.classes == [2, 300]  # 0 was only seen against the reference's nodata
    np.testing.assert_array_equal(cm.matrix, [[10, 0], [7, 0]])
    assert cm.ignored == 12
    counter = ClassCounts(ClassRule.build(nodata=[0]))
    counter.update(np.broadcast_to(np.uint8(3), (4, 5)))  # a broadcast constant
    counter.update(np.array([[0, 3], [5, 5]], dtype=np.uint8))
    assert counter.counts() == {3: 21, 5: 2}
    assert counter.ignored == 1
