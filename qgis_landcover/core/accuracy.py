# SPDX-License-Identifier: GPL-2.0-or-later
"""Accuracy statistics of a confusion matrix.

Orientation: **rows = classification (map), columns = reference** (GRASS ``r.kappa``,
Congalton & Green, Olofsson et al. 2014). Proportions are fractions 0-1. Every value
that is undefined for the data (an empty row or column, a zero denominator) is
``None`` (JSON ``null``), never 0 and never NaN.

References:
    Cohen (1960) kappa; its variance as GRASS GIS ``r.kappa`` computes it
    (Bishop, Fienberg & Holland 1975). Conditional (user's) kappa per class:
    Rosenfield & Fitzpatrick-Lins (1986). Quantity and allocation disagreement:
    Pontius & Millones (2011), Int. J. Remote Sensing 32(15):4407-4429.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

ORIENTATION = "rows = classification (map), columns = reference"

Z_95 = 1.959963984540054
"""Two-sided 95 % normal quantile."""


def _ratio(numerator: float, denominator: float) -> float | None:
    return float(numerator) / float(denominator) if denominator else None


def _ratios(numerators: np.ndarray, denominators: np.ndarray) -> list[float | None]:
    return [_ratio(n, d) for n, d in zip(numerators, denominators, strict=True)]


def default_class_names(
    classes: Sequence[int], names: Mapping[int, str] | None = None
) -> list[str]:
    """Names for ``classes``: from ``names`` when given there, else ``class <value>``."""
    names = names or {}
    return [names.get(int(c)) or f"class {int(c)}" for c in classes]


def accuracy_statistics(
    matrix: np.ndarray,
    classes: Sequence[int],
    class_names: Mapping[int, str] | None = None,
) -> dict[str, Any]:
    """Statistics of a confusion matrix, as a JSON-ready dict.

    Args:
        matrix: counts, shape (k, k); ``matrix[i, j]`` = observations of class
            ``classes[i]`` in the classification and ``classes[j]`` in the reference.
        classes: the k class values.
        class_names: optional value -> name.

    Returns:
        A dict with ``classes``, ``class_names``, ``orientation``, ``matrix``,
        ``row_totals`` (classification), ``column_totals`` (reference), ``observations``,
        ``correct``, ``overall_accuracy``, ``kappa``, ``kappa_variance``, ``kappa_ci95``,
        per class (lists in ``classes`` order) ``producers_accuracy``, ``users_accuracy``,
        ``conditional_kappa``, ``f1``, ``iou``; ``mean_iou`` (over the classes present in
        the reference), ``mean_f1`` (same classes), ``quantity_disagreement`` and
        ``allocation_disagreement`` (fractions of the observations).
    """
    counts = np.asarray(matrix, dtype=np.int64)
    k = len(classes)
    if counts.shape != (k, k):
        raise ValueError(f"matrix shape {counts.shape} does not match {k} classes")
    total = int(counts.sum())
    diagonal = np.diag(counts).astype(np.float64)
    rows = counts.sum(axis=1).astype(np.float64)
    cols = counts.sum(axis=0).astype(np.float64)
    correct = int(diagonal.sum())

    union = rows + cols - diagonal
    iou = _ratios(diagonal, union)
    f1 = _ratios(2 * diagonal, rows + cols)
    in_reference = [i for i in range(k) if cols[i] > 0]
    mean_iou = float(np.mean([iou[i] for i in in_reference])) if in_reference else None
    mean_f1 = float(np.mean([f1[i] for i in in_reference])) if in_reference else None

    result: dict[str, Any] = {
        "orientation": ORIENTATION,
        "classes": [int(c) for c in classes],
        "class_names": default_class_names(classes, class_names),
        "matrix": counts.tolist(),
        "row_totals": [int(v) for v in rows],
        "column_totals": [int(v) for v in cols],
        "observations": total,
        "correct": correct,
        "overall_accuracy": _ratio(correct, total),
        "producers_accuracy": _ratios(diagonal, cols),
        "users_accuracy": _ratios(diagonal, rows),
        "f1": f1,
        "iou": iou,
        "mean_iou": mean_iou,
        "mean_f1": mean_f1,
    }
    result.update(_kappa(counts))
    result.update(_disagreement(counts))
    return result


def _kappa(counts: np.ndarray) -> dict[str, Any]:
    """Kappa, its variance and conditional kappa, following GRASS ``r.kappa``.

    With p the matrix as proportions, p_i+ row (map) and p_+j column (reference)
    totals, p0 = sum p_ii and pc = sum p_i+ p_+i:

    * kappa = (p0 - pc) / (1 - pc)
    * variance = [sum_i p_ii ((1 - pc) - (1 - p0)(p_i+ + p_+i))^2
      + (1 - p0)^2 sum_{i != j} p_ij (p_i+ + p_+j)^2
      - (p0 pc - 2 pc + p0)^2] / (1 - pc)^4 / n
    * conditional kappa of map class i = (p_ii - p_i+ p_+i) / (p_i+ - p_i+ p_+i)
    """
    k = counts.shape[0]
    total = counts.sum()
    undefined: dict[str, Any] = {
        "kappa": None,
        "kappa_variance": None,
        "kappa_ci95": None,
        "conditional_kappa": [None] * k,
    }
    if total == 0:
        return undefined
    p = counts / total
    rows, cols, diagonal = p.sum(axis=1), p.sum(axis=0), np.diag(p)
    p0 = float(diagonal.sum())
    pc = float((rows * cols).sum())

    conditional = [
        _ratio(diagonal[i] - rows[i] * cols[i], rows[i] - rows[i] * cols[i])
        if rows[i] > 0
        else None
        for i in range(k)
    ]
    if 1 - pc <= 0:
        # Both maps hold a single, identical class: chance agreement is total.
        return {**undefined, "conditional_kappa": conditional}
    kappa = (p0 - pc) / (1 - pc)
    inter1 = float((diagonal * ((1 - pc) - (1 - p0) * (rows + cols)) ** 2).sum())
    off_diagonal = p * (1 - np.eye(k))
    inter2 = float((off_diagonal * (rows[:, None] + cols[None, :]) ** 2).sum())
    variance = (inter1 + (1 - p0) ** 2 * inter2 - (p0 * pc - 2 * pc + p0) ** 2) / (
        (1 - pc) ** 4 * float(total)
    )
    half_width = Z_95 * float(np.sqrt(variance)) if variance >= 0 else None
    return {
        "kappa": float(kappa),
        "kappa_variance": float(variance),
        "kappa_ci95": (
            [float(kappa - half_width), float(kappa + half_width)]
            if half_width is not None
            else None
        ),
        "conditional_kappa": conditional,
    }


def _disagreement(counts: np.ndarray) -> dict[str, Any]:
    """Quantity and allocation disagreement (Pontius & Millones 2011), as fractions of
    the observations; they add up to 1 - overall accuracy."""
    total = counts.sum()
    if total == 0:
        return {"quantity_disagreement": None, "allocation_disagreement": None}
    p = counts / total
    rows, cols, diagonal = p.sum(axis=1), p.sum(axis=0), np.diag(p)
    quantity = float(np.abs(rows - cols).sum() / 2)
    allocation = float((2 * np.minimum(rows - diagonal, cols - diagonal)).sum() / 2)
    return {"quantity_disagreement": quantity, "allocation_disagreement": allocation}
