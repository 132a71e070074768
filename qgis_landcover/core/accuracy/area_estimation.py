# SPDX-License-Identifier: GPL-2.0-or-later
"""Sample-based, area-adjusted accuracy and area estimation (Olofsson et al. 2014).

Olofsson, Foody, Herold, Stehman, Woodcock & Wulder (2014), "Good practices for
estimating area and assessing accuracy of land change", Remote Sensing of Environment
148:42-57, equations 2-11. The map classes are the strata of a stratified random
sample; ``n_ij`` counts the samples of map class i whose reference class is j, and
``W_i`` is the share of the mapped area in map class i.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .statistics import ORIENTATION, default_class_names

Z_95 = 1.96
"""The normal quantile Olofsson et al. use for 95 % confidence intervals."""


def _clean(values: np.ndarray) -> list[float | None]:
    """Floats, with every non-finite value (an undefined estimate) as ``None``."""
    return [float(v) if np.isfinite(v) else None for v in np.asarray(values, dtype=float)]


def _scalar(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def area_adjusted_accuracy(
    sample_counts: np.ndarray,
    mapped_area: Sequence[float],
    classes: Sequence[int],
    class_names: Mapping[int, str] | None = None,
    *,
    area_unit: str = "map units²",
    hectares_per_unit: float | None = None,
) -> dict[str, Any]:
    """Area-weighted accuracy and estimated class areas with standard errors.

    Args:
        sample_counts: shape (k, k), rows = map class (strata), columns = reference
            class.
        mapped_area: area of each map class in the map, shape (k,), in ``area_unit``
            (pixel counts times the pixel area).
        classes: the k class values.
        area_unit: name of the unit of ``mapped_area`` for the report.
        hectares_per_unit: hectares in one ``area_unit``; when given, areas are also
            reported in hectares (keys ending in ``_ha``).

    Returns:
        JSON-ready dict: ``classes``, ``class_names``, ``orientation``,
        ``sample_counts``, ``samples``, ``mapped_area``, ``mapped_proportion`` (W_i),
        ``unsampled_proportion`` (the share of the map in strata without samples, left
        out of every estimate: the overall accuracy is at most 1 minus it),
        ``error_matrix_proportions`` (p_ij), ``area_proportion`` and its ``_se``,
        ``area`` with ``area_se`` and ``area_ci95`` (half-width of the 95 % interval),
        ``overall_accuracy`` / ``users_accuracy`` / ``producers_accuracy`` each with
        ``_se`` and ``_ci95``, and ``warnings`` (strata without samples or with a single
        sample, whose estimates are biased or whose standard errors are undefined).
        Undefined values are ``None``.
    """
    n = np.asarray(sample_counts, dtype=np.float64)
    area = np.asarray(mapped_area, dtype=np.float64)
    k = len(classes)
    if n.shape != (k, k) or area.shape != (k,):
        raise ValueError(f"sample counts {n.shape} / mapped areas {area.shape} do not match {k}")
    names = default_class_names(classes, class_names)
    total_area = float(area.sum())
    n_row = n.sum(axis=1)
    warnings = _warnings(n_row, area, names, area_unit)

    with np.errstate(divide="ignore", invalid="ignore"):
        weight = area / total_area if total_area > 0 else np.full(k, np.nan)
        # Strata without samples contribute nothing (and are reported in warnings).
        share = np.where(n_row[:, None] > 0, n / n_row[:, None], 0.0)  # n_ij / n_i.
        p = weight[:, None] * share  # eq. 4
        proportion = p.sum(axis=0)  # eq. 9
        # Per-stratum variance term of a proportion, eq. 10: share (1 - share) / (n_i. - 1)
        stratum_var = share * (1 - share) / (n_row[:, None] - 1)
        stratum_var = np.where(n_row[:, None] > 0, stratum_var, 0.0)
        proportion_se = np.sqrt((weight[:, None] ** 2 * stratum_var).sum(axis=0))

        diagonal_share = np.diag(share)
        users = np.where(n_row > 0, diagonal_share, np.nan)  # eq. 2
        users_var = np.where(n_row > 0, np.diag(stratum_var), np.nan)  # eq. 6
        overall = float(np.trace(p))  # eq. 1
        overall_var = float((weight**2 * np.diag(stratum_var)).sum())  # eq. 5

        producers = np.diag(p) / proportion  # eq. 3
        producers_se = _producers_se(n, n_row, area, users, producers)

    area_estimate = proportion * total_area
    area_se = proportion_se * total_area
    result: dict[str, Any] = {
        "method": "Olofsson et al. (2014) stratified estimators, map classes as strata",
        "orientation": ORIENTATION,
        "classes": [int(c) for c in classes],
        "class_names": names,
        "area_unit": area_unit,
        "sample_counts": n.astype(np.int64).tolist(),
        "samples": int(n.sum()),
        "samples_per_map_class": [int(v) for v in n_row],
        "mapped_area": _clean(area),
        "mapped_proportion": _clean(weight),
        "unsampled_proportion": _scalar(float(weight[n_row == 0].sum())),
        "error_matrix_proportions": [_clean(row) for row in p],
        "area_proportion": _clean(proportion),
        "area_proportion_se": _clean(proportion_se),
        "area": _clean(area_estimate),
        "area_se": _clean(area_se),
        "area_ci95": _clean(Z_95 * area_se),
        "overall_accuracy": _scalar(overall),
        "overall_accuracy_se": _scalar(np.sqrt(overall_var)),
        "overall_accuracy_ci95": _scalar(Z_95 * np.sqrt(overall_var)),
        "users_accuracy": _clean(users),
        "users_accuracy_se": _clean(np.sqrt(users_var)),
        "users_accuracy_ci95": _clean(Z_95 * np.sqrt(users_var)),
        "producers_accuracy": _clean(producers),
        "producers_accuracy_se": _clean(producers_se),
        "producers_accuracy_ci95": _clean(Z_95 * producers_se),
        "z_95": Z_95,
        "warnings": warnings,
    }
    if total_area <= 0:
        result["warnings"].append("The map classes cover no area: nothing can be estimated.")
    if hectares_per_unit is not None:
        for key in ("mapped_area", "area", "area_se", "area_ci95"):
            result[f"{key}_ha"] = _clean(np.asarray(_nan(result[key])) * hectares_per_unit)
    return result


def _nan(values: list[float | None]) -> list[float]:
    return [np.nan if v is None else v for v in values]


def _producers_se(
    n: np.ndarray, n_row: np.ndarray, area: np.ndarray, users: np.ndarray, producers: np.ndarray
) -> np.ndarray:
    """Standard error of producer's accuracy, Olofsson et al. (2014) eq. 7.

    V(P_j) = [N_j.^2 (1 - P_j)^2 U_j (1 - U_j) / (n_j. - 1)
              + P_j^2 sum_{i != j} N_i.^2 (n_ij / n_i.)(1 - n_ij / n_i.) / (n_i. - 1)]
             / N_.j^2,  with N_.j = sum_i N_i. n_ij / n_i. the estimated reference total.
    """
    k = len(area)
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(n_row[:, None] > 0, n / n_row[:, None], 0.0)
        reference_total = (area[:, None] * share).sum(axis=0)
        term = np.where(
            n_row[:, None] > 0, area[:, None] ** 2 * share * (1 - share) / (n_row[:, None] - 1), 0.0
        )
        variance = np.empty(k)
        for j in range(k):
            own = (
                area[j] ** 2 * (1 - producers[j]) ** 2 * users[j] * (1 - users[j]) / (n_row[j] - 1)
            )
            others = term[:, j].sum() - term[j, j]
            variance[j] = (own + producers[j] ** 2 * others) / reference_total[j] ** 2
    return np.sqrt(variance)


def _warnings(n_row: np.ndarray, area: np.ndarray, names: list[str], unit: str) -> list[str]:
    """What the estimates cannot stand for: map classes (strata) without samples, and
    strata with a single sample (undefined standard errors)."""
    notes = []
    total = float(area.sum())
    missing = [i for i in range(len(names)) if area[i] > 0 and n_row[i] == 0]
    if missing and total > 0:
        share = float(area[missing].sum()) / total
        listed = ", ".join(
            f"{names[i]!r} ({100 * area[i] / total:.2f} % of the mapped area, {area[i]:.6g} {unit})"
            for i in missing
        )
        notes.append(
            f"Map classes with no samples: {listed}. Their strata ({100 * share:.2f} % of the "
            "map) are left out of the estimates, which are biased by their omission: the "
            "overall accuracy counts that part of the map as not correct, so it is at most "
            f"{100 * (1 - share):.2f} %; the estimated class areas add up to only "
            f"{100 * (1 - share):.2f} % of the mapped area; producer's accuracies miss the "
            "errors made there; these classes have no user's accuracy. Add sample points in "
            "every map class."
        )
    for count, name in zip(n_row, names, strict=True):
        if count == 1:
            notes.append(
                f"Map class {name!r} has a single sample: standard errors that depend on it "
                "are undefined (at least two samples per class are needed)."
            )
    return notes
