# SPDX-License-Identifier: GPL-2.0-or-later
"""Losses: values against NumPy formulas, and ignored pixels never contributing."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from model_training.labels import IGNORE_INDEX
from model_training.losses import build_loss, class_weights_from_counts

CLASSES = 4
WEIGHTS = torch.tensor([2.0, 0.5, 1.0, 3.0])


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def batch(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(2, CLASSES, 6, 5, generator=generator) * 3
    target = torch.randint(0, CLASSES, (2, 6, 5), generator=generator)
    target[0, :2] = IGNORE_INDEX  # a missing-label stripe
    target[1, 3, 4] = IGNORE_INDEX
    return logits, target


def numpy_terms(logits: torch.Tensor, target: torch.Tensor) -> tuple[np.ndarray, ...]:
    """log-probabilities of the true class, per valid pixel, computed in float64."""
    z = logits.double().numpy()
    z = z - z.max(axis=1, keepdims=True)
    log_probs = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    t = target.numpy()
    valid = t != IGNORE_INDEX
    idx = np.nonzero(valid)
    log_p = log_probs[idx[0], t[valid], idx[1], idx[2]]
    return log_p, t[valid], np.exp(log_probs), valid


LOSSES = ["ce", "focal", "dice_ce"]


@pytest.mark.parametrize("name", LOSSES)
@pytest.mark.parametrize("weighted", [False, True])
def test_ignored_pixels_get_no_gradient_and_do_not_change_the_loss(
    name: str, weighted: bool
) -> None:
    loss_fn = build_loss(name, WEIGHTS if weighted else None)
    logits, target = batch()
    logits.requires_grad_(True)
    loss = loss_fn(logits, target)
    loss.backward()
    ignored = (target == IGNORE_INDEX).unsqueeze(1).expand_as(logits)
    assert logits.grad is not None
    assert (logits.grad[ignored] == 0).all()
    assert (logits.grad[~ignored] != 0).any()
    # Any scores at ignored pixels give the same loss.
    changed = logits.detach().clone()
    changed[ignored] = torch.randn(int(ignored.sum())) * 100
    assert float(loss_fn(changed, target)) == pytest.approx(loss.item(), rel=1e-6)


@pytest.mark.parametrize("name", LOSSES)
def test_all_ignored_batch_gives_zero_loss_and_zero_gradient(name: str) -> None:
    logits = torch.randn(1, CLASSES, 4, 4, requires_grad=True)
    target = torch.full((1, 4, 4), IGNORE_INDEX)
    loss = build_loss(name, WEIGHTS)(logits, target)
    loss.backward()
    assert loss.item() == 0.0
    assert logits.grad is not None and (logits.grad == 0).all()


def test_weighted_cross_entropy_matches_the_formula() -> None:
    logits, target = batch(1)
    log_p, classes, _, _ = numpy_terms(logits, target)
    w = WEIGHTS.double().numpy()[classes]
    expected = float((-w * log_p).sum() / w.sum())
    assert float(build_loss("ce", WEIGHTS)(logits, target)) == pytest.approx(expected, rel=1e-6)


def test_focal_loss_matches_the_formula() -> None:
    logits, target = batch(2)
    log_p, classes, _, _ = numpy_terms(logits, target)
    w = WEIGHTS.double().numpy()[classes]
    expected = float((-w * (1 - np.exp(log_p)) ** 2 * log_p).mean())
    focal = build_loss("focal", WEIGHTS, focal_gamma=2.0)
    assert float(focal(logits, target)) == pytest.approx(expected, rel=1e-5)
    # gamma 0, no weights: plain cross-entropy.
    plain = build_loss("focal", None, focal_gamma=0.0)
    assert float(plain(logits, target)) == pytest.approx(float((-log_p).mean()), rel=1e-6)


def test_dice_cross_entropy_matches_the_formula() -> None:
    logits, target = batch(3)
    log_p, _, probs, valid = numpy_terms(logits, target)
    t = target.numpy()
    dice = []
    for c in range(CLASSES):
        truth = (t == c) & valid
        if not truth.any():
            continue
        p = probs[:, c] * valid
        dice.append((2 * (p * truth).sum() + 1) / (p.sum() + truth.sum() + 1))
    expected = float((-log_p).mean() + 0.5 * (1 - np.mean(dice)))
    loss = build_loss("dice_ce", None, dice_weight=0.5)
    assert float(loss(logits, target)) == pytest.approx(expected, rel=1e-5)


def test_median_frequency_class_weights() -> None:
    counts = [100, 800, 80, 20, 0]
    f = np.array([100, 800, 80, 20]) / 1000
    median = np.median(f)  # 0.09
    expected = [median / f[0], median / f[1], median / f[2], 4.5, 10.0]
    weights = class_weights_from_counts(counts, max_weight=10.0)
    np.testing.assert_allclose(weights[:3], expected[:3])
    assert weights[3] == pytest.approx(4.5)  # 0.09 / 0.02
    assert weights[4] == 10.0  # absent: the cap
    assert class_weights_from_counts([1, 1000], max_weight=3.0)[0] == 3.0  # capped
