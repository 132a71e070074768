# SPDX-License-Identifier: GPL-2.0-or-later
"""Segmentation losses. Pixels whose target is ``ignore_index`` (no data, missing or
unmapped labels) contribute nothing: neither to the loss value nor to its gradient.

The 2018 system got the same effect by zero-weighting a "no data" class; here ignored
pixels are simply masked out.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 (the PyTorch convention)
from torch import nn

from .labels import IGNORE_INDEX


def class_weights_from_counts(counts: Sequence[int], max_weight: float = 10.0) -> np.ndarray:
    """Median-frequency balancing: ``w_c = median(f) / f_c`` over classes present,
    clipped to ``max_weight``; a class absent from the sample gets ``max_weight``."""
    frequency = np.asarray(counts, dtype=np.float64)
    present = frequency > 0
    if not present.any():
        return np.ones_like(frequency)
    frequency = frequency / frequency.sum()
    weights = np.full_like(frequency, max_weight)
    weights[present] = np.median(frequency[present]) / frequency[present]
    return np.minimum(weights, max_weight)


class WeightedCrossEntropy(nn.Module):
    """Cross-entropy with optional class weights, averaged over labelled pixels
    (weighted mean, like ``F.cross_entropy``)."""

    def __init__(self, weight: torch.Tensor | None = None, ignore_index: int = IGNORE_INDEX):
        super().__init__()
        self.register_buffer("weight", weight)
        self.ignore_index = ignore_index

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """logits (N, C, H, W) float; target (N, H, W) int64."""
        if not (target != self.ignore_index).any():
            return logits.sum() * 0.0  # keeps the graph (DDP needs every grad)
        return F.cross_entropy(
            logits.float(), target, weight=self.weight, ignore_index=self.ignore_index
        )


class FocalLoss(nn.Module):
    """Focal loss (Lin et al. 2017): ``-w_y (1 - p_y)^gamma log p_y`` averaged over
    labelled pixels; ``gamma = 0`` is weighted cross-entropy with a plain mean."""

    def __init__(
        self,
        weight: torch.Tensor | None = None,
        gamma: float = 2.0,
        ignore_index: int = IGNORE_INDEX,
    ) -> None:
        super().__init__()
        self.register_buffer("weight", weight)
        self.gamma = gamma
        self.ignore_index = ignore_index

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        valid = target != self.ignore_index
        if not valid.any():
            return logits.sum() * 0.0
        log_probs = F.log_softmax(logits.float(), dim=1)
        safe_target = torch.where(valid, target, torch.zeros_like(target))
        log_p = log_probs.gather(1, safe_target.unsqueeze(1)).squeeze(1)
        loss = -((1.0 - log_p.exp()) ** self.gamma) * log_p
        if self.weight is not None:
            loss = loss * self.weight[safe_target]
        return loss[valid].mean()


class DiceCrossEntropy(nn.Module):
    """Cross-entropy + ``dice_weight`` x soft Dice loss (1 - mean over classes of
    ``2|P∩T| / (|P| + |T|)``), both over labelled pixels only. The Dice mean runs over
    the classes present in the batch's targets (an absent class has no overlap to
    measure; cross-entropy still penalises predicting it)."""

    def __init__(
        self,
        weight: torch.Tensor | None = None,
        dice_weight: float = 1.0,
        ignore_index: int = IGNORE_INDEX,
        smooth: float = 1.0,
    ) -> None:
        super().__init__()
        self.cross_entropy = WeightedCrossEntropy(weight, ignore_index)
        self.dice_weight = dice_weight
        self.ignore_index = ignore_index
        self.smooth = smooth

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        valid = target != self.ignore_index
        ce = self.cross_entropy(logits, target)
        if not valid.any():
            return ce
        probs = F.softmax(logits.float(), dim=1) * valid.unsqueeze(1)
        safe_target = torch.where(valid, target, torch.zeros_like(target))
        one_hot = F.one_hot(safe_target, logits.shape[1]).permute(0, 3, 1, 2).to(probs.dtype)
        one_hot = one_hot * valid.unsqueeze(1)
        intersection = (probs * one_hot).sum(dim=(0, 2, 3))
        sizes = probs.sum(dim=(0, 2, 3)) + one_hot.sum(dim=(0, 2, 3))
        dice = (2 * intersection + self.smooth) / (sizes + self.smooth)
        present = one_hot.sum(dim=(0, 2, 3)) > 0
        return ce + self.dice_weight * (1.0 - dice[present].mean())


def build_loss(
    name: str,
    weight: torch.Tensor | None,
    *,
    focal_gamma: float = 2.0,
    dice_weight: float = 1.0,
) -> nn.Module:
    """The loss ``name`` (``ce``, ``focal`` or ``dice_ce``)."""
    if name == "ce":
        return WeightedCrossEntropy(weight)
    if name == "focal":
        return FocalLoss(weight, focal_gamma)
    if name == "dice_ce":
        return DiceCrossEntropy(weight, dice_weight)
    raise ValueError(f"unknown loss {name!r}")
