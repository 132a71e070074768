# SPDX-License-Identifier: GPL-2.0-or-later
"""Cohen's kappa, its variances and interval against SAS PROC FREQ, an independent
delta-method derivation and hand counts; conditional kappa by hand."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score

from qgis_landcover.core.accuracy.kappa import Kappa, cohen_kappa, conditional_kappa

from ...conftest import TEST_DATA

CASES = json.loads((TEST_DATA / "accuracy_cases.json").read_text(encoding="utf-8"))


def test_kappa_standard_error_and_interval_match_sas() -> None:
    # SAS PROC FREQ's printout (see the case's source): kappa 0.4842, ASE 0.1380,
    # 95 % confidence limits 0.2137 and 0.7547. r.kappa's pairing gives 0.1615 here.
    case = CASES["sas_proc_freq_simple_kappa"]
    kappa = cohen_kappa(np.array(case["matrix"]))
    digits = case["decimals"]
    assert round(kappa.value, digits) == case["kappa"]
    assert round(kappa.variance**0.5, digits) == case["ase"]
    assert [round(v, digits) for v in kappa.ci95] == case["ci95"]
    assert kappa.variance_rkappa**0.5 == pytest.approx(0.1615, abs=1e-4)


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
    kappa = cohen_kappa(counts)
    assert kappa.value == pytest.approx(_kappa_of(p), rel=1e-12)
    assert kappa.variance == pytest.approx(expected, rel=1e-6)
    half_width = 1.959963984540054 * np.sqrt(expected)
    np.testing.assert_allclose(
        kappa.ci95, [kappa.value - half_width, kappa.value + half_width], rtol=1e-6
    )


def test_kappa_matches_sklearn_on_labels() -> None:
    rng = np.random.default_rng(3)
    reference = rng.integers(0, 4, 500)
    predicted = np.where(rng.random(500) < 0.7, reference, rng.integers(0, 4, 500))
    counts = np.zeros((4, 4), dtype=np.int64)
    np.add.at(counts, (predicted, reference), 1)
    assert cohen_kappa(counts).value == pytest.approx(
        cohen_kappa_score(predicted, reference), abs=1e-12
    )


def test_perfect_agreement_has_kappa_one_and_no_variance() -> None:
    kappa = cohen_kappa(np.diag([30, 50, 20]))
    assert kappa.value == pytest.approx(1.0)
    assert kappa.variance == 0.0  # never a hair below 0 from rounding
    assert kappa.ci95 == pytest.approx((1.0, 1.0))


def test_undefined_kappa() -> None:
    assert cohen_kappa(np.zeros((3, 3), dtype=np.int64)) == Kappa()
    # One identical class on both sides: chance agreement is total.
    assert cohen_kappa(np.array([[10, 0], [0, 0]])) == Kappa()


def test_conditional_kappa_by_hand() -> None:
    # n = 20; rows (map) 10, 10, 0; columns (reference) 12, 8, 0.
    counts = np.array([[8, 2, 0], [4, 6, 0], [0, 0, 0]])
    # Class 1: (p11 - p1+ p+1) / (p1+ - p1+ p+1) = (.4 - .5 * .6) / (.5 - .5 * .6) = 0.5;
    # class 2: (.3 - .5 * .4) / (.5 - .5 * .4) = 1/3; class 3 never mapped: undefined.
    assert conditional_kappa(counts) == pytest.approx([0.5, 1 / 3, None])
    assert conditional_kappa(np.zeros((2, 2), dtype=np.int64)) == [None, None]
