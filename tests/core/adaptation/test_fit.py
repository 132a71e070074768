# SPDX-License-Identifier: GPL-2.0-or-later
"""The head fit on synthetic features: known weights, kept rows, prior shift, folds.

Oracles: weights drawn by hand and labels sampled from their softmax (a consistent
estimator must recover them), the prior-shift formula evaluated by hand, and exact
identities (rows without labels are not touched)."""

from __future__ import annotations

import numpy as np
import pytest

from qgis_landcover.core.adaptation.fit import (
    FitProblem,
    class_weights,
    cross_validate,
    fit_head,
    implied_shares,
    pull_metric,
    stratified_folds,
)
from qgis_landcover.core.adaptation.head import Head, neighbourhoods
from qgis_landcover.core.errors import InputError

TRUE_W = np.array([[0.0, 0.0, 0.0], [2.0, -1.0, 0.5], [-1.0, 1.5, 1.0], [0.5, 0.5, -2.0]])
TRUE_B = np.array([0.0, 0.2, -0.3, 0.1])


def sampled(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Features ~ N(0, 1) and labels drawn from softmax(TRUE_W x + TRUE_B) over
    channels 1-3 (channel 0 is the no-data channel, never a label)."""
    generator = np.random.default_rng(seed)
    x = generator.standard_normal((n, 3))
    logits = x @ TRUE_W[1:].T + TRUE_B[1:]
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    labels = np.array([generator.choice(3, p=row) for row in p]) + 1
    return x.astype(np.float32), labels


def test_fit_recovers_known_weights() -> None:
    x, y = sampled(6000)
    start_w, start_b = np.zeros_like(TRUE_W), np.zeros_like(TRUE_B)
    problem = FitProblem(x, y, start_w, start_b, [1, 2, 3])
    fitted = fit_head(problem, l2=1e-6, balanced=False, area_shares=None)
    assert fitted.converged
    # Softmax weights are identified up to a common shift per feature: compare the
    # differences to class 1.
    estimate = fitted.weight[1:] - fitted.weight[1]
    truth = TRUE_W[1:] - TRUE_W[1]
    np.testing.assert_allclose(estimate, truth, atol=0.15)
    bias = fitted.bias[1:] - fitted.bias[1]
    np.testing.assert_allclose(bias, TRUE_B[1:] - TRUE_B[1], atol=0.15)
    assert fitted.fitted == (1, 2, 3)


def test_rows_of_unlabelled_classes_keep_their_weights() -> None:
    x, y = sampled(600)
    keep = y != 3
    problem = FitProblem(x[keep], y[keep], TRUE_W, TRUE_B, [1, 2, 3])
    fitted = fit_head(problem, area_shares=None)
    assert fitted.fitted == (1, 2)
    np.testing.assert_array_equal(fitted.weight[3], TRUE_W[3])
    np.testing.assert_array_equal(fitted.weight[0], TRUE_W[0])  # no-data channel
    # Only the common ReLU shift moves class 3's bias.
    assert fitted.bias[3] == pytest.approx(TRUE_B[3] + fitted.relu_shift)


def test_strong_pull_keeps_the_original_weights() -> None:
    x, y = sampled(300)
    fitted = fit_head(FitProblem(x, y, TRUE_W, TRUE_B, [1, 2, 3]), l2=1e4, area_shares=None)
    np.testing.assert_allclose(fitted.weight, TRUE_W, atol=1e-3)


def test_prior_shift_is_log_area_over_label_share() -> None:
    # Balanced weights make the labels' effective shares 1/2 each (whatever the counts):
    # shifts log(0.8 / 0.5) and log(0.2 / 0.5), by hand.
    x, y = sampled(400)
    keep = y != 3
    problem = FitProblem(x[keep], y[keep], TRUE_W, TRUE_B, [1, 2, 3])
    plain = fit_head(problem, area_shares=None)
    shifted = fit_head(problem, area_shares={1: 0.4, 2: 0.1, 3: 0.5})
    assert shifted.prior_shift == pytest.approx({1: np.log(0.8 / 0.5), 2: np.log(0.2 / 0.5)})
    difference = (shifted.bias - shifted.relu_shift) - (plain.bias - plain.relu_shift)
    np.testing.assert_allclose(difference[1:3], [np.log(1.6), np.log(0.4)], atol=1e-9)
    # Unbalanced: the labels' own shares.
    counts = np.bincount(y[keep], minlength=3)[1:]
    unbalanced = fit_head(problem, balanced=False, area_shares={1: 0.4, 2: 0.1})
    assert unbalanced.prior_shift[1] == pytest.approx(np.log(0.8 / (counts[0] / counts.sum())))


def test_relu_shift_makes_every_labelled_pixel_positive() -> None:
    x, y = sampled(300)
    fitted = fit_head(FitProblem(x, y, TRUE_W, TRUE_B - 50.0, [1, 2, 3]), area_shares=None)
    top = fitted.logits(x)[:, 1:].max(axis=1)
    assert top.min() == pytest.approx(1.0)


def test_class_weights_and_folds() -> None:
    targets = np.array([1, 1, 1, 2])
    np.testing.assert_allclose(class_weights(targets, True), [2 / 3, 2 / 3, 2 / 3, 2.0])
    folds = stratified_folds(np.array([1] * 10 + [2] * 5), 5)
    for fold in range(5):
        assert (folds[:10] == fold).sum() == 2 and (folds[10:] == fold).sum() == 1


def test_cross_validation_counts_every_label_once() -> None:
    x, y = sampled(500)
    problem = FitProblem(x, y, TRUE_W, TRUE_B, [1, 2, 3])
    scores = x @ TRUE_W.T + TRUE_B
    result = cross_validate(problem, scores, folds=5, area_shares=None)
    assert result.confusion.sum() == 500
    np.testing.assert_array_equal(result.confusion.sum(axis=1), np.bincount(y)[1:])
    # The true model's own accuracy on labels drawn from it, and a fit close to it.
    assert result.original_accuracy == pytest.approx(np.mean(scores[:, 1:].argmax(1) + 1 == y))
    assert result.accuracy >= result.original_accuracy - 0.05


def test_labels_of_a_channel_that_is_not_a_class() -> None:
    x, y = sampled(20)
    with pytest.raises(InputError, match="not classes"):
        fit_head(FitProblem(x, np.where(y == 1, 0, y), TRUE_W, TRUE_B, [1, 2, 3]))


def test_neighbourhoods_follow_the_weight_layout() -> None:
    # A 3 x 3 convolution computed by hand at one pixel equals the head's linear model.
    generator = np.random.default_rng(1)
    features = generator.standard_normal((2, 5, 6)).astype(np.float32)
    weight = generator.standard_normal((3, 2, 3, 3)).astype(np.float32)
    head = Head(weight, np.zeros(3, np.float32))
    values = neighbourhoods(features, np.array([2, 0]), np.array([3, 5]), 3)
    by_hand = np.einsum("cfij,fij->c", weight, features[:, 1:4, 2:5])
    np.testing.assert_allclose(head.linear(values)[0], by_hand, rtol=1e-5)
    # Zero padding at the corner (row 0, column 5).
    padded = np.pad(features, ((0, 0), (1, 1), (1, 1)))
    corner = np.einsum("cfij,fij->c", weight, padded[:, 0:3, 5:8])
    np.testing.assert_allclose(head.linear(values)[1], corner, rtol=1e-5)


def test_area_metric_is_the_mean_square_change_of_the_logits() -> None:
    # dw M dw + 2 db mean . dw + db^2 == mean over the area of (dw . x + db)^2 (up to
    # the small ridge), computed directly.
    generator = np.random.default_rng(2)
    area = generator.standard_normal((50, 4)) + 1.0
    metric, mean = pull_metric(area, 4)
    dw, db = generator.standard_normal(4), 0.7
    direct = np.mean((area @ dw + db) ** 2)
    assert dw @ metric @ dw + 2 * db * mean @ dw + db**2 == pytest.approx(direct, rel=1e-2)


def test_implied_shares_follow_the_fit() -> None:
    # Without area features: the labels' weighted shares (balanced: equal); with them:
    # the head's mean probabilities there (a head with equal logits: equal shares).
    x, y = sampled(90)
    problem = FitProblem(x, y, TRUE_W, TRUE_B, [1, 2, 3])
    weights = class_weights(y, True) / len(y)
    labels = implied_shares(problem, TRUE_W, TRUE_B, y - 1, weights)
    assert [labels[c] for c in (1, 2, 3)] == pytest.approx([1 / 3] * 3)
    flat = FitProblem(x, y, TRUE_W, TRUE_B, [1, 2, 3], area_features=x)
    shares = implied_shares(flat, np.zeros_like(TRUE_W), np.zeros(4), y - 1, weights)
    assert [shares[c] for c in (1, 2, 3)] == pytest.approx([1 / 3] * 3)
