# SPDX-License-Identifier: GPL-2.0-or-later
"""Accuracy statistics of a confusion matrix, as one typed result.

Orientation: **rows = classification (map), columns = reference** (GRASS ``r.kappa``,
Congalton & Green, Olofsson et al. 2014). Proportions are fractions 0-1. Every value
that is undefined for the data (an empty row or column, a zero denominator) is
``None`` (JSON ``null``), never 0 and never NaN.

References:
    Kappa and its variances: :mod:`.kappa`. Quantity and allocation disagreement:
    Pontius & Millones (2011), Int. J. Remote Sensing 32(15):4407-4429.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from .kappa import KAPPA_VARIANCE_NOTE, Kappa, cohen_kappa, conditional_kappa

ORIENTATION = "rows = classification (map), columns = reference"

MEAN_CLASSES_NOTE = (
    "Mean IoU and mean F1 average the classes present in the reference (column total "
    "above 0). A class found only in the map adds no term of its own: its pixels are "
    "already errors of omission of the reference classes they belong to."
)
"""Which classes ``mean_iou`` and ``mean_f1`` average over (HTML and JSON notes)."""


@dataclass(frozen=True)
class ClassAccuracy:
    """The accuracy of one class.

    Attributes:
        value: the class value.
        name: its name in reports.
        classified: observations of the class in the classification (row total).
        reference: observations of the class in the reference (column total).
        producers_accuracy: correct / reference (1 - omission error).
        users_accuracy: correct / classified (1 - commission error).
        conditional_kappa: kappa of the map class (Rosenfield & Fitzpatrick-Lins 1986).
        f1: 2 correct / (classified + reference).
        iou: correct / (classified + reference - correct).
    """

    value: int
    name: str
    classified: int
    reference: int
    producers_accuracy: float | None
    users_accuracy: float | None
    conditional_kappa: float | None
    f1: float | None
    iou: float | None


@dataclass(frozen=True)
class AgreementStatistics:
    """Statistics of a confusion matrix (:func:`accuracy_statistics`).

    Attributes:
        classes: one record per class, in ascending class value (the matrix order).
        matrix: counts; ``matrix[i][j]`` = observations of ``classes[i]`` in the
            classification and ``classes[j]`` in the reference.
        observations: all counts.
        correct: the diagonal.
        overall_accuracy: correct / observations.
        kappa: Cohen's kappa with its variances and 95 % interval.
        mean_iou, mean_f1: over the classes present in the reference
            (:data:`MEAN_CLASSES_NOTE`).
        quantity_disagreement, allocation_disagreement: fractions of the observations
            (Pontius & Millones 2011); they add up to 1 - overall accuracy.
    """

    classes: tuple[ClassAccuracy, ...]
    matrix: tuple[tuple[int, ...], ...]
    observations: int
    correct: int
    overall_accuracy: float | None
    kappa: Kappa
    mean_iou: float | None
    mean_f1: float | None
    quantity_disagreement: float | None
    allocation_disagreement: float | None

    notes: ClassVar[tuple[str, ...]] = (KAPPA_VARIANCE_NOTE, MEAN_CLASSES_NOTE)
    """How the kappa variance and the means are defined (HTML and JSON)."""

    @property
    def class_values(self) -> list[int]:
        """The class values, in matrix order."""
        return [c.value for c in self.classes]

    def class_accuracy(self, value: int) -> ClassAccuracy | None:
        """The record of class ``value``; ``None`` when the matrix has no such class."""
        return next((c for c in self.classes if c.value == value), None)

    def count(self, classified: int, reference: int) -> int:
        """Observations of class ``classified`` in the classification and ``reference``
        in the reference (0 for a class the matrix does not hold)."""
        values = self.class_values
        if classified not in values or reference not in values:
            return 0
        return self.matrix[values.index(classified)][values.index(reference)]

    def to_json(self) -> dict[str, Any]:
        """The statistics as the JSON document of the reports: ``orientation``,
        ``classes``, ``class_names``, ``matrix``, ``row_totals`` (classification),
        ``column_totals`` (reference), ``observations``, ``correct``,
        ``overall_accuracy``, per class (lists in ``classes`` order)
        ``producers_accuracy``, ``users_accuracy``, ``f1``, ``iou``, then ``mean_iou``,
        ``mean_f1``, ``notes``, ``kappa``, ``kappa_variance``, ``kappa_ci95``,
        ``kappa_variance_rkappa``, ``conditional_kappa`` (per class),
        ``quantity_disagreement`` and ``allocation_disagreement``."""
        classes = self.classes
        return {
            "orientation": ORIENTATION,
            "classes": [c.value for c in classes],
            "class_names": [c.name for c in classes],
            "matrix": [list(row) for row in self.matrix],
            "row_totals": [c.classified for c in classes],
            "column_totals": [c.reference for c in classes],
            "observations": self.observations,
            "correct": self.correct,
            "overall_accuracy": self.overall_accuracy,
            "producers_accuracy": [c.producers_accuracy for c in classes],
            "users_accuracy": [c.users_accuracy for c in classes],
            "f1": [c.f1 for c in classes],
            "iou": [c.iou for c in classes],
            "mean_iou": self.mean_iou,
            "mean_f1": self.mean_f1,
            "notes": list(self.notes),
            "kappa": self.kappa.value,
            "kappa_variance": self.kappa.variance,
            "kappa_ci95": None if self.kappa.ci95 is None else list(self.kappa.ci95),
            "kappa_variance_rkappa": self.kappa.variance_rkappa,
            "conditional_kappa": [c.conditional_kappa for c in classes],
            "quantity_disagreement": self.quantity_disagreement,
            "allocation_disagreement": self.allocation_disagreement,
        }

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> AgreementStatistics:
        """The statistics of a :meth:`to_json` document (other keys are left aside)."""
        per_class = zip(
            document["classes"],
            document["class_names"],
            document["row_totals"],
            document["column_totals"],
            document["producers_accuracy"],
            document["users_accuracy"],
            document["conditional_kappa"],
            document["f1"],
            document["iou"],
            strict=True,
        )
        ci95 = document["kappa_ci95"]
        return cls(
            classes=tuple(ClassAccuracy(*values) for values in per_class),
            matrix=tuple(tuple(row) for row in document["matrix"]),
            observations=document["observations"],
            correct=document["correct"],
            overall_accuracy=document["overall_accuracy"],
            kappa=Kappa(
                value=document["kappa"],
                variance=document["kappa_variance"],
                ci95=None if ci95 is None else (ci95[0], ci95[1]),
                variance_rkappa=document["kappa_variance_rkappa"],
            ),
            mean_iou=document["mean_iou"],
            mean_f1=document["mean_f1"],
            quantity_disagreement=document["quantity_disagreement"],
            allocation_disagreement=document["allocation_disagreement"],
        )


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
    matrix: np.ndarray | Sequence[Sequence[int]],
    classes: Sequence[int],
    class_names: Mapping[int, str] | None = None,
) -> AgreementStatistics:
    """Statistics of a confusion matrix.

    Args:
        matrix: counts, shape (k, k); ``matrix[i, j]`` = observations of class
            ``classes[i]`` in the classification and ``classes[j]`` in the reference.
        classes: the k class values.
        class_names: optional value -> name (default ``class <value>``).

    Raises:
        ValueError: the matrix is not k x k.
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
    quantity, allocation = _disagreement(counts)
    per_class = zip(
        [int(c) for c in classes],
        default_class_names(classes, class_names),
        [int(v) for v in rows],
        [int(v) for v in cols],
        _ratios(diagonal, cols),
        _ratios(diagonal, rows),
        conditional_kappa(counts),
        f1,
        iou,
        strict=True,
    )
    return AgreementStatistics(
        classes=tuple(ClassAccuracy(*values) for values in per_class),
        matrix=tuple(tuple(row) for row in counts.tolist()),
        observations=total,
        correct=correct,
        overall_accuracy=_ratio(correct, total),
        kappa=cohen_kappa(counts),
        mean_iou=mean_iou,
        mean_f1=mean_f1,
        quantity_disagreement=quantity,
        allocation_disagreement=allocation,
    )


def _disagreement(counts: np.ndarray) -> tuple[float | None, float | None]:
    """Quantity and allocation disagreement (Pontius & Millones 2011), as fractions of
    the observations; they add up to 1 - overall accuracy."""
    total = counts.sum()
    if total == 0:
        return None, None
    p = counts / total
    rows, cols, diagonal = p.sum(axis=1), p.sum(axis=0), np.diag(p)
    quantity = float(np.abs(rows - cols).sum() / 2)
    allocation = float((2 * np.minimum(rows - diagonal, cols - diagonal)).sum() / 2)
    return quantity, allocation
