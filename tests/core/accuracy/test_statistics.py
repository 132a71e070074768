# SPDX-License-Identifier: GPL-2.0-or-later
"""Statistics of a confusion matrix against GRASS r.kappa's test suite, scikit-learn
and closed forms."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score, f1_score, jaccard_score

from qgis_landcover.core.accuracy.confusion import ConfusionMatrix
from qgis_landcover.core.accuracy.kappa import Kappa
from qgis_landcover.core.accuracy.statistics import (
    ORIENTATION,
    AgreementStatistics,
    ClassAccuracy,
    accuracy_statistics,
)

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
    assert stats.observations == case["observations"]
    assert stats.correct == case["correct"]
    assert 100 * stats.overall_accuracy == pytest.approx(case["overall_accuracy_percent"], abs=tol)
    assert stats.kappa.value == pytest.approx(case["kappa"], abs=tol / 100)
    # r.kappa's own variance is kept beside the Fleiss, Cohen & Everitt (1969) one
    # (checked against SAS and the delta method below): 0.015292 by that formula.
    assert stats.kappa.variance_rkappa == pytest.approx(case["kappa_variance"], abs=1e-6)
    assert stats.kappa.variance == pytest.approx(0.015292, abs=1e-6)
    producers = [c.producers_accuracy for c in stats.classes]
    _assert_close(_percent_or_none(producers), case["producers_accuracy_percent"], tol)
    users = [c.users_accuracy for c in stats.classes]
    _assert_close(_percent_or_none(users), case["users_accuracy_percent"], tol)
    conditional = [c.conditional_kappa for c in stats.classes]
    _assert_close(conditional, case["conditional_kappa"], tol)
    assert stats.to_json()["orientation"] == ORIENTATION


def test_grass_r_kappa_no_agreement_case() -> None:
    case = CASES["grass_r_kappa_case2_no_match"]
    reference = np.repeat(
        [int(k) for k in case["reference_counts"]], list(case["reference_counts"].values())
    )
    classification = np.full(reference.shape, 9)
    cm = ConfusionMatrix(ignore_values=[])  # 0 is a class in this case, not no data
    cm.update(classification, reference)
    stats = cm.statistics()
    assert stats.class_values == case["cats"]
    assert stats.observations == case["observations"]
    assert stats.correct == case["correct"]
    assert stats.overall_accuracy == case["overall_accuracy_percent"] / 100
    assert stats.kappa.value == pytest.approx(case["kappa"], abs=1e-12)
    nine = stats.class_accuracy(9)
    assert nine is not None
    assert nine.classified == case["classification_counts"]["9"]
    assert nine.producers_accuracy is None  # 9 never occurs in the reference
    assert nine.users_accuracy == 0.0


@pytest.mark.parametrize("seed", range(4))
def test_matches_sklearn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    reference = rng.integers(1, 7, 2000)
    # A classification that is right about 60 % of the time.
    predicted = np.where(rng.random(2000) < 0.6, reference, rng.integers(1, 8, 2000))
    cm = ConfusionMatrix()
    cm.update(predicted, reference)
    stats = cm.statistics()
    classes = stats.class_values
    assert stats.kappa.value == pytest.approx(cohen_kappa_score(predicted, reference), abs=1e-12)
    iou = jaccard_score(reference, predicted, labels=classes, average=None, zero_division=0)
    f1 = f1_score(reference, predicted, labels=classes, average=None, zero_division=0)
    np.testing.assert_allclose([c.iou or 0.0 for c in stats.classes], iou, atol=1e-12)
    np.testing.assert_allclose([c.f1 or 0.0 for c in stats.classes], f1, atol=1e-12)
    present = np.isin(classes, reference)
    assert stats.mean_iou == pytest.approx(float(np.mean(iou[present])), abs=1e-12)
    assert stats.overall_accuracy == pytest.approx(float(np.mean(predicted == reference)))


def test_congalton_1991_table_1() -> None:
    # Congalton (1991), Remote Sens. Environ. 37:35-46, Table 1 (rows = classification,
    # columns = reference; D, C, BA, SB): overall 74 %, producer's 87, 79, 74, 64 %,
    # user's 57, 81, 74, 87 % as printed (whole percents).
    matrix = np.array([[65, 4, 22, 24], [6, 81, 5, 8], [0, 11, 85, 19], [4, 7, 3, 90]])
    stats = accuracy_statistics(matrix, [1, 2, 3, 4])
    assert round(100 * stats.overall_accuracy) == 74
    assert [round(100 * c.producers_accuracy) for c in stats.classes] == [87, 79, 74, 64]
    assert [round(100 * c.users_accuracy) for c in stats.classes] == [57, 81, 74, 87]


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
    assert [c.f1 for c in stats.classes] == pytest.approx([2 / 3, 2 / 3, 0.0, 0.0, 0.0])
    # IoU = n_ii / (row + column - n_ii): 4/8, 3/6, 0 ...
    assert [c.iou for c in stats.classes] == pytest.approx([0.5, 0.5, 0.0, 0.0, 0.0])
    # Over the reference classes 1, 2, 8 (not the map's 1, 2, 7, 9: 1/3, nor all five:
    # 4/15, nor those on both sides: 2/3).
    assert stats.mean_f1 == pytest.approx(4 / 9)
    assert stats.mean_iou == pytest.approx(1 / 3)


def test_disagreement_components() -> None:
    # Pontius & Millones (2011): by hand, p = [[.5, .25], [0, .25]] has quantity
    # (|.75 - .5| + |.25 - .5|) / 2 = .25 and no allocation disagreement.
    stats = accuracy_statistics(np.array([[2, 1], [0, 1]]), [1, 2])
    assert stats.quantity_disagreement == pytest.approx(0.25)
    assert stats.allocation_disagreement == pytest.approx(0.0)
    # Equal totals, all confusion swapped: only allocation, 2 min(.25, .25) per class / 2.
    stats = accuracy_statistics(np.array([[1, 1], [1, 1]]), [1, 2])
    assert stats.quantity_disagreement == pytest.approx(0.0)
    assert stats.allocation_disagreement == pytest.approx(0.5)
    # Three classes, n = 16: rows 6, 6, 4, columns 7, 4, 5: quantity (1 + 2 + 1) / 2 / 16;
    # allocation 2 min(commission, omission) per class = 2 min(1, 2) + 2 min(3, 1) + 0,
    # halved, / 16.
    stats = accuracy_statistics(np.array([[5, 1, 0], [2, 3, 1], [0, 0, 4]]), [1, 2, 3])
    assert stats.quantity_disagreement == pytest.approx(2 / 16)
    assert stats.allocation_disagreement == pytest.approx(2 / 16)
    rng = np.random.default_rng(8)
    for _ in range(20):
        matrix = rng.integers(0, 50, size=(5, 5))
        stats = accuracy_statistics(matrix, [1, 2, 3, 4, 5])
        total = stats.quantity_disagreement + stats.allocation_disagreement
        assert total == pytest.approx(1 - stats.overall_accuracy)


def test_undefined_values_are_none_not_nan() -> None:
    empty = accuracy_statistics(np.zeros((2, 2), dtype=np.int64), [1, 2])
    assert empty.kappa == Kappa(value=None, variance=None, ci95=None, variance_rkappa=None)
    for value in (empty.overall_accuracy, empty.mean_iou, empty.mean_f1):
        assert value is None
    for record in empty.classes:
        assert record.producers_accuracy is record.users_accuracy is None
        assert record.iou is record.f1 is record.conditional_kappa is None
    assert empty.observations == 0
    document = empty.to_json()
    for key in (
        "overall_accuracy", "kappa", "kappa_variance", "kappa_variance_rkappa", "kappa_ci95",
        "mean_iou", "mean_f1",
    ):  # fmt: skip
        assert document[key] is None, key
    for key in ("producers_accuracy", "users_accuracy", "iou", "f1", "conditional_kappa"):
        assert document[key] == [None, None], key
    # One identical class on both sides: chance agreement is total, kappa undefined.
    single = accuracy_statistics(np.array([[10]]), [3])
    assert single.overall_accuracy == 1.0
    assert single.kappa.value is None
    (record,) = single.classes
    assert record.conditional_kappa is None
    assert record.iou == 1.0
    for stats in (empty, single):
        json.dumps(stats.to_json(), allow_nan=False)  # raises on NaN / infinity


def test_to_json_is_the_report_document() -> None:
    # By hand: classes 1, 2, 7 with the matrix below (7 never classified).
    matrix = np.array([[50, 3, 0], [4, 30, 1], [0, 0, 0]])
    stats = accuracy_statistics(matrix, [1, 2, 7], {1: "water", 2: "tree"})
    assert stats.classes[0] == ClassAccuracy(
        value=1,
        name="water",
        classified=53,
        reference=54,
        producers_accuracy=50 / 54,
        users_accuracy=50 / 53,
        # (p11 - p1+ p+1) / (p1+ - p1+ p+1) = (50 * 88 - 53 * 54) / (53 * 88 - 53 * 54)
        conditional_kappa=pytest.approx(1538 / 1802),
        f1=100 / 107,
        iou=50 / 57,
    )
    document = stats.to_json()
    # The keys, in the order the JSON reports have always had them.
    assert list(document) == [
        "orientation", "classes", "class_names", "matrix", "row_totals", "column_totals",
        "observations", "correct", "overall_accuracy", "producers_accuracy",
        "users_accuracy", "f1", "iou", "mean_iou", "mean_f1", "notes", "kappa",
        "kappa_variance", "kappa_ci95", "kappa_variance_rkappa", "conditional_kappa",
        "quantity_disagreement", "allocation_disagreement",
    ]  # fmt: skip
    assert document["classes"] == [1, 2, 7]
    assert document["class_names"] == ["water", "tree", "class 7"]
    assert document["matrix"] == matrix.tolist()
    assert document["row_totals"] == [53, 35, 0]
    assert document["column_totals"] == [54, 33, 1]
    assert (document["observations"], document["correct"]) == (88, 80)
    assert document["users_accuracy"][2] is None  # class 7 never classified
    assert document["kappa_ci95"] == list(stats.kappa.ci95)
    assert document["notes"] == list(AgreementStatistics.notes)
    json.dumps(document, allow_nan=False)
    # Read back, the document gives the same statistics.
    assert AgreementStatistics.from_json(json.loads(json.dumps(document))) == stats


def test_lookups_by_class_value() -> None:
    stats = accuracy_statistics(np.array([[5, 1], [2, 3]]), [4, 9])
    assert stats.class_values == [4, 9]
    record = stats.class_accuracy(9)
    assert record is not None and (record.classified, record.reference) == (5, 4)
    assert stats.class_accuracy(5) is None
    assert stats.count(classified=4, reference=9) == 1
    assert stats.count(classified=9, reference=4) == 2
    assert stats.count(classified=4, reference=5) == 0


def test_shape_must_match_classes() -> None:
    with pytest.raises(ValueError, match=r"does not match"):
        accuracy_statistics(np.zeros((2, 3)), [1, 2])
