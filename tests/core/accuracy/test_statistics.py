# SPDX-License-Identifier: GPL-2.0-or-later
"""Statistics of a confusion matrix against GRASS r.kappa's test suite, scikit-learn
and closed forms."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score, f1_score, jaccard_score

from qgis_landcover.core.accuracy.confusion import ConfusionMatrix
from qgis_landcover.core.accuracy.statistics import ORIENTATION, accuracy_statistics

from ...conftest import TEST_DATA

CASES = json.loads((TEST_DATA / "accuracy_cases.json").read_text(encoding="utf-8"))


def _percent_or_none(values: list[float | None]) -> list[float | None]:
    return [None if v is None else 100 * v for v in values]


def _assert_close(actual: list[float | None], expected: list[float | None], tol: float) -> None:
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected, strict=True):
        if e is None:
            assert a is None
        else:
            assert a == pytest.approx(e, abs=tol)


def test_grass_r_kappa_case() -> None:
    case = CASES["grass_r_kappa_case1"]
    tol = case["tolerance"]
    stats = accuracy_statistics(
        np.array(case["matrix_rows_classification_cols_reference"]), case["cats"]
    )
    assert stats["observations"] == case["observations"]
    assert stats["correct"] == case["correct"]
    assert 100 * stats["overall_accuracy"] == pytest.approx(
        case["overall_accuracy_percent"], abs=tol
    )
    assert stats["kappa"] == pytest.approx(case["kappa"], abs=tol / 100)
    # r.kappa's own variance is kept beside the Fleiss, Cohen & Everitt (1969) one
    # (checked against SAS and the delta method below): 0.015292 by that formula.
    assert stats["kappa_variance_rkappa"] == pytest.approx(case["kappa_variance"], abs=1e-6)
    assert stats["kappa_variance"] == pytest.approx(0.015292, abs=1e-6)
    _assert_close(
        _percent_or_none(stats["producers_accuracy"]), case["producers_accuracy_percent"], tol
    )
    _assert_close(_percent_or_none(stats["users_accuracy"]), case["users_accuracy_percent"], tol)
    _assert_close(stats["conditional_kappa"], case["conditional_kappa"], tol)
    assert stats["orientation"] == ORIENTATION


def test_grass_r_kappa_no_agreement_case() -> None:
    case = CASES["grass_r_kappa_case2_no_match"]
    reference = np.repeat(
        [int(k) for k in case["reference_counts"]], list(case["reference_counts"].values())
    )
    classification = np.full(reference.shape, 9)
    cm = ConfusionMatrix(ignore_values=[])  # 0 is a class in this case, not no data
    cm.update(classification, reference)
    stats = cm.statistics()
    assert stats["classes"] == case["cats"]
    assert stats["observations"] == case["observations"]
    assert stats["correct"] == case["correct"]
    assert stats["overall_accuracy"] == case["overall_accuracy_percent"] / 100
    assert stats["kappa"] == pytest.approx(case["kappa"], abs=1e-12)
    nine = stats["classes"].index(9)
    assert stats["row_totals"][nine] == case["classification_counts"]["9"]
    assert stats["producers_accuracy"][nine] is None  # 9 never occurs in the reference
    assert stats["users_accuracy"][nine] == 0.0


@pytest.mark.parametrize("seed", range(4))
def test_matches_sklearn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    reference = rng.integers(1, 7, 2000)
    # A classification that is right about 60 % of the time.
    predicted = np.where(rng.random(2000) < 0.6, reference, rng.integers(1, 8, 2000))
    cm = ConfusionMatrix()
    cm.update(predicted, reference)
    stats = cm.statistics()
    classes = stats["classes"]
    assert stats["kappa"] == pytest.approx(cohen_kappa_score(predicted, reference), abs=1e-12)
    iou = jaccard_score(reference, predicted, labels=classes, average=None, zero_division=0)
    f1 = f1_score(reference, predicted, labels=classes, average=None, zero_division=0)
    np.testing.assert_allclose([v or 0.0 for v in stats["iou"]], iou, atol=1e-12)
    np.testing.assert_allclose([v or 0.0 for v in stats["f1"]], f1, atol=1e-12)
    present = np.isin(classes, reference)
    assert stats["mean_iou"] == pytest.approx(float(np.mean(iou[present])), abs=1e-12)
    assert stats["overall_accuracy"] == pytest.approx(float(np.mean(predicted == reference)))


def test_kappa_standard_error_and_interval_match_sas() -> None:
    # SAS PROC FREQ's printout (see the case's source): kappa 0.4842, ASE 0.1380,
    # 95 % confidence limits 0.2137 and 0.7547. r.kappa's pairing gives 0.1615 here.
    case = CASES["sas_proc_freq_simple_kappa"]
    stats = accuracy_statistics(np.array(case["matrix"]), [1, 2, 3])
    digits = case["decimals"]
    assert round(stats["kappa"], digits) == case["kappa"]
    assert round(stats["kappa_variance"] ** 0.5, digits) == case["ase"]
    assert [round(v, digits) for v in stats["kappa_ci95"]] == case["ci95"]
    assert stats["kappa_variance_rkappa"] ** 0.5 == pytest.approx(0.1615, abs=1e-4)


def _kappa_of(p: np.ndarray) -> float:
    """Cohen's kappa of a table of proportions (rows: one rater, columns: the other)."""
    observed = np.trace(p)
    chance = float(p.sum(axis=1) @ p.sum(axis=0))
    return (observed - chance) / (1 - chance)


@pytest.mark.parametrize("seed", range(5))
def test_kappa_variance_is_the_delta_method(seed: int) -> None:
    # An independent derivation: for multinomial counts, Var(kappa) ~ (sum p g^2 -
    # (sum p g)^2) / n with g the gradient of kappa in the cell proportions, taken here
    # by central differences (Agresti 2002, section 14.1; Fleiss, Cohen & Everitt 1969).
    rng = np.random.default_rng(seed)
    k = int(rng.integers(2, 7))
    counts = rng.integers(0, 40, size=(k, k)) + np.diag(rng.integers(20, 80, size=k))
    n = counts.sum()
    p = counts / n
    step = 1e-6
    gradient = np.zeros_like(p)
    for index in np.ndindex(p.shape):
        up, down = p.copy(), p.copy()
        up[index] += step
        down[index] -= step
        gradient[index] = (_kappa_of(up) - _kappa_of(down)) / (2 * step)
    expected = ((p * gradient**2).sum() - (p * gradient).sum() ** 2) / n
    stats = accuracy_statistics(counts, list(range(1, k + 1)))
    assert stats["kappa_variance"] == pytest.approx(expected, rel=1e-6)
    half_width = 1.959963984540054 * np.sqrt(expected)
    np.testing.assert_allclose(
        stats["kappa_ci95"], [stats["kappa"] - half_width, stats["kappa"] + half_width], rtol=1e-6
    )


def test_congalton_1991_table_1() -> None:
    # Congalton (1991), Remote Sens. Environ. 37:35-46, Table 1 (rows = classification,
    # columns = reference; D, C, BA, SB): overall 74 %, producer's 87, 79, 74, 64 %,
    # user's 57, 81, 74, 87 % as printed (whole percents).
    matrix = np.array([[65, 4, 22, 24], [6, 81, 5, 8], [0, 11, 85, 19], [4, 7, 3, 90]])
    stats = accuracy_statistics(matrix, [1, 2, 3, 4])
    assert round(100 * stats["overall_accuracy"]) == 74
    assert [round(100 * v) for v in stats["producers_accuracy"]] == [87, 79, 74, 64]
    assert [round(100 * v) for v in stats["users_accuracy"]] == [57, 81, 74, 87]


def test_mean_f1_and_mean_iou_average_the_reference_classes() -> None:
    # By hand. Classes 7 and 9 occur only in the map, 8 only in the reference.
    #        ref 1  2  7  8  9   row total
    matrix = [[4, 1, 0, 1, 0],  # 6
              [1, 3, 0, 0, 0],  # 4
              [1, 0, 0, 0, 0],  # 1
              [0, 0, 0, 0, 0],  # 0
              [0, 1, 0, 0, 0]]  # 1; column totals 6, 5, 0, 1, 0  # fmt: skip
    stats = accuracy_statistics(np.array(matrix), [1, 2, 7, 8, 9])
    # F1 = 2 n_ii / (row + column): 8/12, 6/9, then 0 for 7, 8 and 9.
    assert stats["f1"] == pytest.approx([2 / 3, 2 / 3, 0.0, 0.0, 0.0])
    # IoU = n_ii / (row + column - n_ii): 4/8, 3/6, 0 ...
    assert stats["iou"] == pytest.approx([0.5, 0.5, 0.0, 0.0, 0.0])
    # Over the reference classes 1, 2, 8 (not the map's 1, 2, 7, 9: 1/3, nor all five:
    # 4/15, nor those on both sides: 2/3).
    assert stats["mean_f1"] == pytest.approx(4 / 9)
    assert stats["mean_iou"] == pytest.approx(1 / 3)


def test_disagreement_components() -> None:
    # Pontius & Millones (2011): by hand, p = [[.5, .25], [0, .25]] has quantity
    # (|.75 - .5| + |.25 - .5|) / 2 = .25 and no allocation disagreement.
    stats = accuracy_statistics(np.array([[2, 1], [0, 1]]), [1, 2])
    assert stats["quantity_disagreement"] == pytest.approx(0.25)
    assert stats["allocation_disagreement"] == pytest.approx(0.0)
    # Equal totals, all confusion swapped: only allocation, 2 min(.25, .25) per class / 2.
    stats = accuracy_statistics(np.array([[1, 1], [1, 1]]), [1, 2])
    assert stats["quantity_disagreement"] == pytest.approx(0.0)
    assert stats["allocation_disagreement"] == pytest.approx(0.5)
    # Three classes, n = 16: rows 6, 6, 4, columns 7, 4, 5: quantity (1 + 2 + 1) / 2 / 16;
    # allocation 2 min(commission, omission) per class = 2 min(1, 2) + 2 min(3, 1) + 0,
    # halved, / 16.
    stats = accuracy_statistics(np.array([[5, 1, 0], [2, 3, 1], [0, 0, 4]]), [1, 2, 3])
    assert stats["quantity_disagreement"] == pytest.approx(2 / 16)
    assert stats["allocation_disagreement"] == pytest.approx(2 / 16)
    rng = np.random.default_rng(8)
    for _ in range(20):
        matrix = rng.integers(0, 50, size=(5, 5))
        stats = accuracy_statistics(matrix, [1, 2, 3, 4, 5])
        total = stats["quantity_disagreement"] + stats["allocation_disagreement"]
        assert total == pytest.approx(1 - stats["overall_accuracy"])


def test_undefined_values_are_none_not_nan() -> None:
    empty = accuracy_statistics(np.zeros((2, 2), dtype=np.int64), [1, 2])
    for key in (
        "overall_accuracy", "kappa", "kappa_variance", "kappa_variance_rkappa", "kappa_ci95",
        "mean_iou", "mean_f1",
    ):  # fmt: skip
        assert empty[key] is None, key
    for key in ("producers_accuracy", "users_accuracy", "iou", "f1", "conditional_kappa"):
        assert empty[key] == [None, None], key
    assert empty["observations"] == 0
    # One identical class on both sides: chance agreement is total, kappa undefined.
    single = accuracy_statistics(np.array([[10]]), [3])
    assert single["overall_accuracy"] == 1.0
    assert single["kappa"] is None
    assert single["conditional_kappa"] == [None]
    assert single["iou"] == [1.0]
    for stats in (empty, single):
        json.dumps(stats, allow_nan=False)  # raises on NaN / infinity


def test_shape_must_match_classes() -> None:
    with pytest.raises(ValueError, match=r"does not match"):
        accuracy_statistics(np.zeros((2, 3)), [1, 2])
