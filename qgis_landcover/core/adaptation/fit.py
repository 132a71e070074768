# SPDX-License-Identifier: GPL-2.0-or-later
"""Re-fit a head as a regularised multinomial logistic regression, numpy only.

The model: for a pixel's neighbourhood features ``v`` (:mod:`.head`), the logits of
the class channels are ``z = W v + b`` and ``p = softmax(z)``. Fitted rows are those of
the classes with labels; the other rows keep their weights (they still take part in
the softmax), so a class nobody labelled keeps its behaviour. The loss is the
class-weighted mean cross-entropy plus ``l2 / 2 * ||W - W0||^2`` over the fitted rows
(and ``l2 * BIAS_L2_SHARE`` for the bias): the pull toward the original weights that
keeps a fit on a few hundred labels from forgetting what the network knew. Minimised
with L-BFGS (strictly convex, a few hundred iterations of two matrix products).

**The ReLU.** The 2018 head ends in a ReLU, under which every negative logit becomes 0
and ties. The fit drops it (a logistic regression on the linear logits), and the
adapted model keeps it (same graph): the classification's argmax of ``relu(z)`` equals
the argmax of ``z`` wherever the largest logit is positive. Adding one constant to
every fitted and kept bias does not change the softmax, so after the fit all biases of
the argmax channels are raised by the least amount that makes the largest logit of
every labelled pixel at least :data:`RELU_FLOOR` (the original model's own logits are
mostly there already).

**Prior shift.** Labels are not a random sample (users label rare classes and the
model's mistakes). Each fitted class's bias is shifted by
``log(area share / implied share)``: the area shares are the user's, or the unadapted
head's mean probabilities over the area; the implied share is what the fitted head
assumes, its mean probability over the same area (:func:`implied_shares`). A fit driven
by class-balanced labels implies about equal shares, and the shift is then the issue's
``log(area share / label share)``; a fit that the pull keeps at the original implies
the original's shares, and is not shifted (a plain ``log(area / label share)`` would
move a model that the labels only confirm: measured, 9 % of the pixels of a crop
changed class against 2 % with this). Without area features, the labels' weighted
shares stand for the implied ones.

**The pull** is ``l2 / 2 * ||W - W0||^2`` by default; with ``area_metric`` it is the
mean square change of the logits over the area (:func:`pull_metric`), which keeps the
model's behaviour where it has no labels (measured on the mosaic, it also kept most of
the held-out gain away: 0.635 against 0.655 at best, so it is an option).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import InputError

DEFAULT_L2 = 1e-3
"""Pull toward the original weights (per unit of mean cross-entropy) when none is
given (adapt_model chooses it by cross-validation, :data:`~.adapt.L2_GRID`). On the
shipped mosaic (500 class-balanced points from its left three columns, the 2018 model,
held-out right column, before the implied-share prior shift): l2 1e-1 / 1e-2 / 1e-3
gave cross-validated accuracy 0.853 / 0.910 / 0.938 and held-out overall accuracy
0.636 / 0.649 / 0.652 (unadapted: 0.615)."""
BIAS_L2_SHARE = 0.01
"""The bias is pulled this much less than the weights (its scale is free)."""
RIDGE = 1e-3
"""Ridge added to the area metric, relative to its mean diagonal."""
MIN_SHARE = 1e-3
"""Area shares below this count as this in the prior shift (log 0 is -inf)."""
RELU_FLOOR = 1.0
"""The largest logit of every labelled pixel is raised to at least this."""
MIN_LABELS_PER_CLASS = 5
"""A class needs this many labels to be fitted."""


@dataclass(frozen=True)
class FitProblem:
    """What a fit needs.

    Attributes:
        features: float32 (n, d) neighbourhood features.
        targets: (n,) int the score channel of each label.
        weight, bias: the original head's (channels, d) and (channels,) (score channels
            in the scores' order, :attr:`~.head.Head.rows` applied).
        channels: the argmax channels (the contract's ``class_channels``).
        area_features: (m, d) features of pixels spread over the area, or ``None``:
            they give the class shares a fitted head implies (:func:`implied_shares`).
        area_metric: measure the pull as the change of the logits over the area
            (:func:`pull_metric`) instead of the plain distance of the weights.
    """

    features: np.ndarray
    targets: np.ndarray
    weight: np.ndarray
    bias: np.ndarray
    channels: Sequence[int]
    area_features: np.ndarray | None = None
    area_metric: bool = False


@dataclass(frozen=True)
class FittedHead:
    """A fitted head (score channels in the scores' order).

    Attributes:
        weight, bias: float64 (channels, d), (channels,), prior shift included.
        fitted: the channels whose rows were fitted.
        prior_shift: {channel: bias shift} applied for the area shares.
        relu_shift: the constant added to every argmax channel's bias.
        iterations: L-BFGS iterations; converged: whether the gradient became small.
    """

    weight: np.ndarray
    bias: np.ndarray
    fitted: tuple[int, ...]
    prior_shift: dict[int, float]
    relu_shift: float
    iterations: int
    converged: bool

    def logits(self, features: np.ndarray) -> np.ndarray:
        return features.astype(np.float64) @ self.weight.T + self.bias

    def predict(self, features: np.ndarray, channels: Sequence[int]) -> np.ndarray:
        """The argmax channel of each row of ``features`` among ``channels``."""
        chosen = np.asarray(channels)
        return chosen[self.logits(features)[:, chosen].argmax(axis=1)]


def class_weights(targets: np.ndarray, balanced: bool) -> np.ndarray:
    """Per-label weights averaging 1: equal total weight per class when ``balanced``."""
    if not balanced:
        return np.ones(len(targets))
    classes, inverse, counts = np.unique(targets, return_inverse=True, return_counts=True)
    return len(targets) / (len(classes) * counts[inverse])


def lbfgs(
    objective: Callable[[np.ndarray], tuple[float, np.ndarray]],
    start: np.ndarray,
    *,
    memory: int = 10,
    max_iterations: int = 300,
    tolerance: float = 1e-5,
) -> tuple[np.ndarray, int, bool]:
    """Minimise a smooth ``objective`` (value and gradient) from ``start`` with L-BFGS
    and a backtracking (Armijo) line search. Returns (minimum, iterations, converged:
    the gradient's largest component fell below ``tolerance``)."""
    x = start.astype(np.float64).copy()
    value, gradient = objective(x)
    steps: list[tuple[np.ndarray, np.ndarray, float]] = []
    for iteration in range(1, max_iterations + 1):
        if np.abs(gradient).max() < tolerance:
            return x, iteration - 1, True
        # Two-loop recursion: direction = -H gradient.
        q = gradient.copy()
        alphas = []
        for s, y, rho in reversed(steps):
            alpha = rho * (s @ q)
            alphas.append(alpha)
            q -= alpha * y
        if steps:
            s, y, _ = steps[-1]
            q *= (s @ y) / (y @ y)
        for (s, y, rho), alpha in zip(steps, reversed(alphas), strict=True):
            q += s * (alpha - rho * (y @ q))
        direction = -q
        slope = gradient @ direction
        if slope >= 0:  # not a descent direction: restart from the gradient
            steps.clear()
            direction, slope = -gradient, -(gradient @ gradient)
        step = 1.0 if steps else min(1.0, 1.0 / max(np.abs(gradient).max(), 1e-12))
        while True:
            candidate = x + step * direction
            new_value, new_gradient = objective(candidate)
            if new_value <= value + 1e-4 * step * slope or step < 1e-12:
                break
            step *= 0.5
        s, y = candidate - x, new_gradient - gradient
        if s @ y > 1e-12:
            steps.append((s, y, 1.0 / (s @ y)))
            if len(steps) > memory:
                steps.pop(0)
        if abs(value - new_value) <= 1e-12 * max(1.0, abs(value)) and step < 1e-12:
            return candidate, iteration, False
        x, value, gradient = candidate, new_value, new_gradient
    return x, max_iterations, bool(np.abs(gradient).max() < tolerance)


def fit_head(
    problem: FitProblem,
    *,
    l2: float = DEFAULT_L2,
    balanced: bool = True,
    area_shares: dict[int, float] | None = None,
) -> FittedHead:
    """Fit the rows of the labelled classes (see the module's notes).

    Args:
        l2: pull toward the original weights; larger keeps the model closer.
        balanced: weight the labels so each class counts the same.
        area_shares: {channel: share of the area}; ``None`` for no prior shift.

    Raises:
        InputError: no labels, or labels of a channel that is not a class.
    """
    x = np.asarray(problem.features, np.float64)
    targets = np.asarray(problem.targets)
    channels = list(problem.channels)
    if len(targets) == 0:
        raise InputError("No labels to adapt the model to.")
    if not set(np.unique(targets)) <= set(channels):
        raise InputError(f"Labels of channels {sorted(set(targets) - set(channels))} that are "
                         "not classes of the model.")  # fmt: skip
    fitted = sorted(int(c) for c in np.unique(targets))
    kept = [c for c in channels if c not in fitted]
    index = {c: i for i, c in enumerate(channels)}  # channel -> column of the softmax
    y = np.array([index[t] for t in targets])
    weights = class_weights(targets, balanced)
    weights = weights / weights.sum()
    w0 = np.asarray(problem.weight, np.float64)
    b0 = np.asarray(problem.bias, np.float64)
    kept_logits = x @ w0[kept].T + b0[kept] if kept else np.zeros((len(x), 0))
    rows, d = len(fitted), x.shape[1]
    start = np.concatenate([w0[fitted].ravel(), b0[fitted]])
    order = [index[c] for c in fitted] + [index[c] for c in kept]
    position = np.argsort(order)  # softmax columns in the channels' order
    one_hot = np.zeros((len(x), len(channels)))
    one_hot[np.arange(len(x)), y] = 1.0
    reference = start.copy()
    metric, mean = pull_metric(problem.area_features if problem.area_metric else None, d)

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        w, b = theta[: rows * d].reshape(rows, d), theta[rows * d :]
        logits = np.concatenate([x @ w.T + b, kept_logits], axis=1)[:, position]
        logits -= logits.max(axis=1, keepdims=True)
        log_p = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
        loss = -(weights * (one_hot * log_p).sum(axis=1)).sum()
        residual = (np.exp(log_p) - one_hot) * weights[:, None]  # d loss / d logits
        fitted_residual = residual[:, [index[c] for c in fitted]]
        gradient = np.concatenate([(fitted_residual.T @ x).ravel(), fitted_residual.sum(axis=0)])
        # The pull: l2 / 2 * sum_k (dw_k M dw_k + 2 db_k mean . dw_k + bias_weight db_k^2).
        delta = theta - reference
        dw, db = delta[: rows * d].reshape(rows, d), delta[rows * d :]
        dw_metric = dw @ metric
        bias_weight = 1.0 if problem.area_metric else BIAS_L2_SHARE
        pull = (dw_metric * dw).sum() + 2 * db @ (dw @ mean) + bias_weight * db @ db
        pull_gradient = np.concatenate(
            [(dw_metric + db[:, None] * mean).ravel(), dw @ mean + bias_weight * db]
        )
        return loss + 0.5 * l2 * float(pull), gradient + l2 * pull_gradient

    theta, iterations, converged = lbfgs(objective, start)
    weight, bias = w0.copy(), b0.copy()
    weight[fitted] = theta[: rows * d].reshape(rows, d)
    bias[fitted] = theta[rows * d :]
    shift: dict[int, float] = {}
    if area_shares is not None:
        implied = implied_shares(problem, weight, bias, y, weights)
        total = sum(max(area_shares.get(c, 0.0), MIN_SHARE) for c in fitted)
        implied_total = sum(max(implied[c], MIN_SHARE) for c in fitted)
        for c in fitted:
            area = max(area_shares.get(c, 0.0), MIN_SHARE) / total
            shift[c] = float(np.log(area / (max(implied[c], MIN_SHARE) / implied_total)))
            bias[c] += shift[c]
    # Raise every argmax channel's bias alike (softmax unchanged) so that the ReLU in
    # the graph does not tie the labelled pixels' largest logits at 0.
    top = (x @ weight[channels].T + bias[channels]).max(axis=1)
    relu_shift = float(max(0.0, RELU_FLOOR - top.min()))
    bias[channels] += relu_shift
    return FittedHead(weight, bias, tuple(fitted), shift, relu_shift, iterations, converged)


def softmax_shares(features: np.ndarray, weight: np.ndarray, bias: np.ndarray,
                   channels: Sequence[int]) -> dict[int, float]:  # fmt: skip
    """Mean softmax probability of each channel (among ``channels``) over ``features``:
    the class shares a head implies for the pixels they come from."""
    logits = np.asarray(features, np.float64) @ weight[channels].T + bias[channels]
    logits -= logits.max(axis=1, keepdims=True)
    p = np.exp(logits)
    p /= p.sum(axis=1, keepdims=True)
    return {c: float(v) for c, v in zip(channels, p.mean(axis=0), strict=True)}


def implied_shares(
    problem: FitProblem, weight: np.ndarray, bias: np.ndarray, y: np.ndarray, weights: np.ndarray
) -> dict[int, float]:
    """The class shares a fitted head assumes: its mean probabilities over the area's
    features when there are some (a head pulled close to the original implies the
    original's shares, one driven by balanced labels implies about equal shares), else
    the labels' weighted shares (the issue's log(area share / label share))."""
    channels = list(problem.channels)
    if problem.area_features is not None:
        return softmax_shares(problem.area_features, weight, bias, channels)
    label_share = np.bincount(y, weights=weights, minlength=len(channels))
    return {c: float(label_share[i]) for i, c in enumerate(channels)}


def pull_metric(area_features: np.ndarray | None, d: int) -> tuple[np.ndarray, np.ndarray]:
    """The metric of the pull toward the original head and the features' mean.

    With the area's features ``X`` (m, d): ``M = X^T X / m`` (plus a ridge of
    :data:`RIDGE` times its mean diagonal, so the fit stays strictly convex), so that
    ``dw M dw + 2 db mean . dw + db^2`` is the mean square change of a class's logit
    over the area: the fit keeps the model's logits where it has no labels, and moves
    them freely along directions the area's features do not use. Without features:
    the identity and a zero mean (the plain distance of the weights)."""
    if area_features is None:
        return np.eye(d), np.zeros(d)
    x = np.asarray(area_features, np.float64)
    metric = x.T @ x / len(x)
    metric += RIDGE * max(float(np.trace(metric)) / d, 1e-12) * np.eye(d)
    return metric, x.mean(axis=0)


@dataclass(frozen=True)
class CrossValidation:
    """k-fold cross-validated agreement of the adapted model with the labels.

    Attributes:
        channels: the argmax channels, the confusion matrix's order.
        confusion: int (channels, channels), rows = label, columns = prediction.
        folds: k.
        accuracy: overall accuracy (share of the labels predicted right).
        original_accuracy: the unadapted model's accuracy on the same labels.
    """

    channels: tuple[int, ...]
    confusion: np.ndarray
    folds: int
    accuracy: float
    original_accuracy: float


def stratified_folds(targets: np.ndarray, folds: int, seed: int = 0) -> np.ndarray:
    """(n,) fold of each label: each class's labels dealt round-robin in random order."""
    generator = np.random.default_rng(seed)
    assignment = np.empty(len(targets), np.int64)
    offset = 0
    for value in np.unique(targets):
        members = generator.permutation(np.flatnonzero(targets == value))
        assignment[members] = (np.arange(len(members)) + offset) % folds
        offset += len(members)
    return assignment


def cross_validate(
    problem: FitProblem,
    original_scores: np.ndarray,
    *,
    folds: int = 5,
    seed: int = 0,
    **options: object,
) -> CrossValidation:
    """Fit on k-1 folds, predict the k-th, for each fold (``options`` as for
    :func:`fit_head`); ``original_scores`` (n, channels) the unadapted model's."""
    targets = np.asarray(problem.targets)
    channels = list(problem.channels)
    assignment = stratified_folds(targets, folds, seed)
    predicted = np.empty(len(targets), np.int64)
    for fold in range(folds):
        test = assignment == fold
        if not test.any():
            continue
        train = FitProblem(
            problem.features[~test],
            targets[~test],
            problem.weight,
            problem.bias,
            channels,
            problem.area_features,
            problem.area_metric,
        )
        fitted = fit_head(train, **options)  # type: ignore[arg-type]
        predicted[test] = fitted.predict(problem.features[test], channels)
    index = {c: i for i, c in enumerate(channels)}
    confusion = np.zeros((len(channels), len(channels)), np.int64)
    np.add.at(confusion, ([index[t] for t in targets], [index[p] for p in predicted]), 1)
    chosen = np.asarray(channels)
    original = chosen[np.asarray(original_scores)[:, chosen].argmax(axis=1)]
    return CrossValidation(
        tuple(channels),
        confusion,
        folds,
        float(np.trace(confusion) / len(targets)),
        float(np.mean(original == targets)),
    )
