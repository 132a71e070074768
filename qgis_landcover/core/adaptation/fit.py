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
model's mistakes). With class-balanced weights the fit sees every fitted class as
equally likely; each fitted class's bias is then shifted by
``log(area share / effective label share)``, the area shares (among the fitted
classes) taken from the unadapted model's map or given by the user.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import InputError

DEFAULT_L2 = 1e-3
"""Default pull toward the original weights (per unit of mean cross-entropy). Chosen
on the shipped mosaic (500 class-balanced points from its left three columns, the
2018 model, held-out right column): l2 1e-1 / 1e-2 / 1e-3 gave cross-validated
accuracy 0.853 / 0.910 / 0.938 and held-out overall accuracy 0.636 / 0.649 / 0.652
(unadapted: 0.615)."""
BIAS_L2_SHARE = 0.01
"""The bias is pulled this much less than the weights (its scale is free)."""
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
    """

    features: np.ndarray
    targets: np.ndarray
    weight: np.ndarray
    bias: np.ndarray
    channels: Sequence[int]


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
    penalty = np.concatenate([np.full(rows * d, l2), np.full(rows, l2 * BIAS_L2_SHARE)])

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        w, b = theta[: rows * d].reshape(rows, d), theta[rows * d :]
        logits = np.concatenate([x @ w.T + b, kept_logits], axis=1)[:, position]
        logits -= logits.max(axis=1, keepdims=True)
        log_p = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
        loss = -(weights * (one_hot * log_p).sum(axis=1)).sum()
        residual = (np.exp(log_p) - one_hot) * weights[:, None]  # d loss / d logits
        fitted_residual = residual[:, [index[c] for c in fitted]]
        delta = theta - reference
        value = loss + 0.5 * float((penalty * delta * delta).sum())
        gradient = np.concatenate([(fitted_residual.T @ x).ravel(), fitted_residual.sum(axis=0)])
        return value, gradient + penalty * delta

    theta, iterations, converged = lbfgs(objective, start)
    weight, bias = w0.copy(), b0.copy()
    weight[fitted] = theta[: rows * d].reshape(rows, d)
    bias[fitted] = theta[rows * d :]
    shift: dict[int, float] = {}
    if area_shares is not None:
        label_share = np.bincount(y, weights=weights, minlength=len(channels))
        total = sum(max(area_shares.get(c, 0.0), MIN_SHARE) for c in fitted)
        for c in fitted:
            area = max(area_shares.get(c, 0.0), MIN_SHARE) / total
            shift[c] = float(np.log(area / label_share[index[c]]))
            bias[c] += shift[c]
    # Raise every argmax channel's bias alike (softmax unchanged) so that the ReLU in
    # the graph does not tie the labelled pixels' largest logits at 0.
    top = (x @ weight[channels].T + bias[channels]).max(axis=1)
    relu_shift = float(max(0.0, RELU_FLOOR - top.min()))
    bias[channels] += relu_shift
    return FittedHead(weight, bias, tuple(fitted), shift, relu_shift, iterations, converged)


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
            problem.features[~test], targets[~test], problem.weight, problem.bias, channels
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
