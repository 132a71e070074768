# SPDX-License-Identifier: GPL-2.0-or-later
"""The head of a model: the convolution that turns its penultimate features into
scores (``features_output`` in the contract), as a linear model of each pixel's
neighbourhood features.

A ``k x k`` convolution from ``F`` feature channels to ``K`` classes gives each pixel
the scores ``W @ v + b`` where ``v`` holds the ``F * k * k`` feature values around the
pixel, in the order of the weight's own layout ``(f, i, j)`` (``weight.reshape(K, -1)``):
for the 2018 network ``3 x 3 x 64 = 576`` values. The activation after it (ReLU in the
2018 network) is left out of the fit: see :mod:`.fit`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..models.contract import FeaturesOutput


@dataclass(frozen=True)
class Head:
    """A head's weights.

    Attributes:
        weight: float32 (head channels, channels, k, k), the convolution's kernel.
        bias: float32 (head channels,).
        activation: ``"none"``, ``"relu"`` or ``"softmax"`` (after the convolution).
        score_rows: the head channel behind each score channel (``head_channels`` of
            the contract), or ``None`` for all of them in order.
    """

    weight: np.ndarray
    bias: np.ndarray
    activation: str = "none"
    score_rows: tuple[int, ...] | None = None

    @property
    def rows(self) -> list[int]:
        """Head channels behind the score channels, in the scores' order."""
        return list(range(self.num_classes)) if self.score_rows is None else list(self.score_rows)

    @property
    def kernel_size(self) -> int:
        return int(self.weight.shape[-1])

    @property
    def num_classes(self) -> int:
        return int(self.weight.shape[0])

    @property
    def flat_weight(self) -> np.ndarray:
        """(classes, channels * k * k): the weight as a linear model's coefficients."""
        return self.weight.reshape(self.num_classes, -1)

    def linear(self, neighbourhood: np.ndarray) -> np.ndarray:
        """(n, classes) scores before the activation of (n, channels * k * k) values."""
        return neighbourhood @ self.flat_weight.T.astype(neighbourhood.dtype) + self.bias

    def with_flat(self, flat_weight: np.ndarray, bias: np.ndarray) -> Head:
        """The same head with new coefficients (classes, channels * k * k) and bias,
        stored as float32 like the model's."""
        return Head(
            np.ascontiguousarray(flat_weight, dtype=np.float32).reshape(self.weight.shape),
            np.ascontiguousarray(bias, dtype=np.float32),
            self.activation,
            self.score_rows,
        )


def neighbourhoods(
    features: np.ndarray, rows: np.ndarray, cols: np.ndarray, kernel: int
) -> np.ndarray:
    """The ``kernel x kernel`` neighbourhood of each pixel, flattened as the head's
    weight is: float32 (n, channels * kernel * kernel).

    Args:
        features: (channels, rows, cols) one feature map.
        rows, cols: (n,) integer feature-map coordinates of the centre pixels.
        kernel: odd kernel side; values outside the map count as 0 (zero padding, as
            the convolution pads).
    """
    pad = kernel // 2
    padded = np.pad(features, ((0, 0), (pad, pad), (pad, pad)))
    offsets = np.arange(kernel)
    # (n, k) rows and columns of the padded map; gather (channels, n, k, k).
    r = np.asarray(rows)[:, None] + offsets[None, :]
    c = np.asarray(cols)[:, None] + offsets[None, :]
    gathered = padded[:, r[:, :, None], c[:, None, :]]
    return np.ascontiguousarray(gathered.transpose(1, 0, 2, 3).reshape(len(r), -1))


def activate(linear: np.ndarray, activation: str, axis: int = 1) -> np.ndarray:
    """The head's activation applied to its convolution's output."""
    if activation == "relu":
        return np.maximum(linear, 0)
    if activation == "softmax":
        shifted = np.exp(linear - linear.max(axis=axis, keepdims=True))
        return shifted / shifted.sum(axis=axis, keepdims=True)
    return linear


def scores_from_features(
    features: np.ndarray, head: Head, description: FeaturesOutput, output_margin: int
) -> np.ndarray:
    """What the model's scores are, computed from its features output by the contract's
    relation (:class:`~..models.contract.FeaturesOutput`): float32 (N, classes, h, w)
    for features (N, channels, H - 2 margin, W - 2 margin), h = H - 2 output_margin.

    Used to check that a model's ``features_output`` tells the truth."""
    offset = output_margin - description.margin
    batch, _, height, width = features.shape
    out_h, out_w = height - 2 * offset, width - 2 * offset
    rows, cols = np.meshgrid(np.arange(out_h) + offset, np.arange(out_w) + offset, indexing="ij")
    kept = head.rows
    scores = np.empty((batch, len(kept), out_h, out_w), dtype=np.float32)
    for n in range(batch):
        values = neighbourhoods(features[n], rows.ravel(), cols.ravel(), head.kernel_size)
        activated = activate(head.linear(values.astype(np.float64)), head.activation)
        scores[n] = activated[:, kept].T.reshape(len(kept), out_h, out_w)
    return scores
