# SPDX-License-Identifier: GPL-2.0-or-later
"""Accuracy statistics of a confusion matrix.

Orientation: **rows = classification (map), columns = reference** (GRASS ``r.kappa``,
Congalton & Green, Olofsson et al. 2014). Proportions are fractions 0-1. Every value
that is undefined for the data (an empty row or column, a zero denominator) is
``None`` (JSON ``null``), never 0 and never NaN.

References:
    Cohen (1960) kappa; its large-sample variance: Fleiss, Cohen & Everitt (1969),
    Psychological Bulletin 72(5):323-327 (the delta method, as in Congalton & Green,
    *Assessing the Accuracy of Remotely Sensed Data*, and SAS PROC FREQ); GRASS GIS
    ``r.kappa``'s variance is reported beside it (see :data:`KAPPA_VARIANCE_NOTE`).
    Conditional (user's) kappa per class: Rosenfield & Fitzpatrick-Lins (1986).
    Quantity and allocation disagreement: Pontius & Millones (2011), Int. J. Remote
    Sensing 32(15):4407-4429.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

ORIENTATION = "rows = classification (map), columns = reference"

Z_95 = 1.959963984540054
"""Two-sided 95 % normal quantile."""

KAPPA_VARIANCE_NOTE = (
    "Kappa variance: the large-sample (delta method) variance of Fleiss, Cohen & Everitt "
    "(1969), as in Congalton & Green and SAS PROC FREQ; the 95 % interval is kappa ± "
    "1.96 standard deviations (the square root of that variance). GRASS GIS r.kappa "
    "pairs the marginals the other way in the off-diagonal term (the map total of the "
    "row class with the reference total of the column class); its value is reported "
    "as kappa_variance_rkappa for comparison only."
)
"""How the reports state which kappa variance they give (HTML and JSON notes)."""

MEAN_CLASSES_NOTE = (
    "Mean IoU and mean F1 average the classes present in the reference (column total "
    "above 0). A class found only in the map adds no term of its own: its pixels are "
    "already errors of omission of the reference classes they belong to."
)
"""Which classes ``mean_iou`` and ``mean_f1`` average over (HTML and JSON notes)."""


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
        ``correct``, ``overall_accuracy``, ``kappa``, ``kappa_variance`` (Fleiss, Cohen &
        Everitt 1969), ``kappa_ci95`` (kappa ± 1.96 standard deviations),
        ``kappa_variance_rkappa`` (GRASS ``r.kappa``'s variance, for comparison), per
        class (lists in ``classes`` order) ``producers_accuracy``, ``users_accuracy``,
        ``conditional_kappa``, ``f1``, ``iou``; ``mean_iou`` and ``mean_f1`` (over the
        classes present in the reference, :data:`MEAN_CLASSES_NOTE`),
        ``quantity_disagreement`` and ``allocation_disagreement`` (fractions of the
        observations) and ``notes`` (how the kappa variance and the means are defined).
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
        "notes": [KAPPA_VARIANCE_NOTE, MEAN_CLASSES_NOTE],
    }
    result.update(_kappa(counts))
    result.update(_disagreement(counts))
    return result


def _kappa(counts: np.ndarray) -> dict[str, Any]:
    """Kappa, its variance (and r.kappa's), its 95 % interval and conditional kappa.

    With p the matrix as proportions, p_i+ row (map) and p_+j column (reference)
    totals, p0 = sum p_ii and pc = sum p_i+ p_+i:

    * kappa = (p0 - pc) / (1 - pc)
    * variance (Fleiss, Cohen & Everitt 1969) =
      [sum_i p_ii ((1 - pc) - (1 - p0)(p_i+ + p_+i))^2
      + (1 - p0)^2 sum_{i != j} p_ij (p_+i + p_j+)^2
      - (p0 pc - 2 pc + p0)^2] / (1 - pc)^4 / n.
      The off-diagonal cell (i, j) goes with the *reference* total of class i and the
      *map* total of class j: d pc / d p_ij = p_+i + p_j+ (the delta method).
      GRASS ``r.kappa`` uses (p_i+ + p_+j)^2 there (``kappa_variance_rkappa``).
    * 95 % interval = kappa ± 1.96 sqrt(variance)
    * conditional kappa of map class i = (p_ii - p_i+ p_+i) / (p_i+ - p_i+ p_+i)
    """
    k = counts.shape[0]
    total = counts.sum()
    undefined: dict[str, Any] = {
        "kappa": None,
        "kappa_variance": None,
        "kappa_ci95": None,
        "kappa_variance_rkappa": None,
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
    diagonal_term = float((diagonal * ((1 - pc) - (1 - p0) * (rows + cols)) ** 2).sum())
    off_diagonal = p * (1 - np.eye(k))

    def variance(pairs: np.ndarray) -> float:
        """The large-sample variance with ``pairs[i, j]`` the marginal sum that goes
        with off-diagonal cell (i, j)."""
        spread = float((off_diagonal * pairs**2).sum())
        return (diagonal_term + (1 - p0) ** 2 * spread - (p0 * pc - 2 * pc + p0) ** 2) / (
            (1 - pc) ** 4 * float(total)
        )

    # A variance of the delta method is never negative; rounding can leave it a hair
    # below 0 when the agreement is perfect.
    fleiss = max(variance(cols[:, None] + rows[None, :]), 0.0)  # p_+i + p_j+
    rkappa = variance(rows[:, None] + cols[None, :])  # p_i+ + p_+j, as r.kappa
    half_width = Z_95 * float(np.sqrt(fleiss))
    return {
        "kappa": float(kappa),
        "kappa_variance": float(fleiss),
        "kappa_ci95": [float(kappa - half_width), float(kappa + half_width)],
        "kappa_variance_rkappa": float(rkappa),
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
