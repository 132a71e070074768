# SPDX-License-Identifier: GPL-2.0-or-later
"""Cohen's kappa of a confusion matrix: the estimate, its large-sample variance, its
95 % interval, and the conditional kappa of each map class.

Orientation: rows = classification (map), columns = reference. Undefined values (no
observations, total chance agreement, an empty map class) are ``None``.

References:
    Cohen (1960) kappa; its large-sample variance: Fleiss, Cohen & Everitt (1969),
    Psychological Bulletin 72(5):323-327 (the delta method, as in Congalton & Green,
    *Assessing the Accuracy of Remotely Sensed Data*, and SAS PROC FREQ); GRASS GIS
    ``r.kappa``'s variance is given beside it (see :data:`KAPPA_VARIANCE_NOTE`).
    Conditional (user's) kappa per class: Rosenfield & Fitzpatrick-Lins (1986).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

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


@dataclass(frozen=True)
class Kappa:
    """Cohen's kappa with its variance and 95 % interval; every value is ``None`` when
    kappa is undefined (no observations, or chance agreement is total).

    Attributes:
        value: kappa, at most 1.
        variance: the large-sample variance of Fleiss, Cohen & Everitt (1969).
        ci95: (low, high), kappa ± 1.96 standard deviations.
        variance_rkappa: the variance as GRASS ``r.kappa`` computes it (for comparison).
    """

    value: float | None = None
    variance: float | None = None
    ci95: tuple[float, float] | None = None
    variance_rkappa: float | None = None


def cohen_kappa(counts: np.ndarray) -> Kappa:
    """Kappa, its variance (and r.kappa's) and its 95 % interval of ``counts`` (k, k).

    With p the matrix as proportions, p_i+ row (map) and p_+j column (reference)
    totals, p0 = sum p_ii and pc = sum p_i+ p_+i:

    * kappa = (p0 - pc) / (1 - pc)
    * variance (Fleiss, Cohen & Everitt 1969) =
      [sum_i p_ii ((1 - pc) - (1 - p0)(p_i+ + p_+i))^2
      + (1 - p0)^2 sum_{i != j} p_ij (p_+i + p_j+)^2
      - (p0 pc - 2 pc + p0)^2] / (1 - pc)^4 / n.
      The off-diagonal cell (i, j) goes with the *reference* total of class i and the
      *map* total of class j: d pc / d p_ij = p_+i + p_j+ (the delta method).
      GRASS ``r.kappa`` uses (p_i+ + p_+j)^2 there (``variance_rkappa``).
    * 95 % interval = kappa ± 1.96 sqrt(variance)
    """
    counts = np.asarray(counts, dtype=np.int64)
    k = counts.shape[0]
    total = counts.sum()
    if total == 0:
        return Kappa()
    p = counts / total
    rows, cols, diagonal = p.sum(axis=1), p.sum(axis=0), np.diag(p)
    p0 = float(diagonal.sum())
    pc = float((rows * cols).sum())
    if 1 - pc <= 0:
        # Both maps hold a single, identical class: chance agreement is total.
        return Kappa()
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
    return Kappa(
        value=float(kappa),
        variance=float(fleiss),
        ci95=(float(kappa - half_width), float(kappa + half_width)),
        variance_rkappa=float(rkappa),
    )


def conditional_kappa(counts: np.ndarray) -> list[float | None]:
    """Conditional kappa of each map class (row) of ``counts`` (k, k):
    (p_ii - p_i+ p_+i) / (p_i+ - p_i+ p_+i); ``None`` for a class never mapped or
    when the denominator is 0."""
    counts = np.asarray(counts, dtype=np.int64)
    k = counts.shape[0]
    total = counts.sum()
    if total == 0:
        return [None] * k
    p = counts / total
    rows, cols, diagonal = p.sum(axis=1), p.sum(axis=0), np.diag(p)
    result: list[float | None] = []
    for i in range(k):
        denominator = rows[i] - rows[i] * cols[i]
        defined = rows[i] > 0 and denominator
        result.append(
            float(diagonal[i] - rows[i] * cols[i]) / float(denominator) if defined else None
        )
    return result
