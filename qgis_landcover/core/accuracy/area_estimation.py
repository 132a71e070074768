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
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from .statistics import ORIENTATION, default_class_names

Z_95 = 1.96
"""The normal quantile Olofsson et al. use for 95 % confidence intervals."""


@dataclass(frozen=True)
class ClassAreaEstimate:
    """The estimates of one class; areas in the estimate's ``area_unit``; ``_se`` a
    standard error, ``_ci95`` the half-width of the 95 % interval (1.96 standard errors).

    Attributes:
        value, name: the class and its name in reports.
        samples: samples in the map class (its stratum), n_i.
        mapped_area: the class's area in the map.
        mapped_proportion: its share of the mapped area, W_i.
        area_proportion, area_proportion_se: the estimated share of the class in the
            reference (eq. 9, 10).
        area, area_se, area_ci95: the estimated area of the class.
        users_accuracy, users_accuracy_se, users_accuracy_ci95: eq. 2, 6.
        producers_accuracy, producers_accuracy_se, producers_accuracy_ci95: eq. 3, 7.
    """

    value: int
    name: str
    samples: int
    mapped_area: float | None
    mapped_proportion: float | None
    area_proportion: float | None
    area_proportion_se: float | None
    area: float | None
    area_se: float | None
    area_ci95: float | None
    users_accuracy: float | None
    users_accuracy_se: float | None
    users_accuracy_ci95: float | None
    producers_accuracy: float | None
    producers_accuracy_se: float | None
    producers_accuracy_ci95: float | None


@dataclass(frozen=True)
class AreaEstimate:
    """Area-weighted accuracy and estimated class areas (:func:`area_adjusted_accuracy`).

    Attributes:
        classes: one record per class, ascending.
        sample_counts: n_ij, rows = map class (strata), columns = reference class.
        error_matrix_proportions: p_ij (eq. 4).
        unsampled_proportion: the share of the map in strata without samples, left out
            of every estimate (the overall accuracy is at most 1 minus it).
        overall_accuracy, overall_accuracy_se, overall_accuracy_ci95: eq. 1, 5.
        area_unit: the unit of the areas.
        hectares_per_unit: hectares in one ``area_unit``; ``None`` when the unit is not
            an area (square degrees, unknown units).
        warnings: what the estimates cannot stand for (strata without samples or with
            a single sample).
    """

    classes: tuple[ClassAreaEstimate, ...]
    sample_counts: tuple[tuple[int, ...], ...]
    error_matrix_proportions: tuple[tuple[float | None, ...], ...]
    unsampled_proportion: float | None
    overall_accuracy: float | None
    overall_accuracy_se: float | None
    overall_accuracy_ci95: float | None
    area_unit: str
    hectares_per_unit: float | None
    warnings: tuple[str, ...]

    method: ClassVar[str] = "Olofsson et al. (2014) stratified estimators, map classes as strata"
    z_95: ClassVar[float] = Z_95

    @property
    def samples(self) -> int:
        """All samples used."""
        return sum(c.samples for c in self.classes)

    @property
    def report_unit(self) -> str:
        """The unit the reports give areas in: ``ha`` when the area unit converts to
        hectares, else the area unit."""
        return "ha" if self.hectares_per_unit is not None else self.area_unit

    def in_report_unit(self, area: float | None) -> float | None:
        """``area`` (in ``area_unit``) in :attr:`report_unit`."""
        if area is None or self.hectares_per_unit is None:
            return area
        return _scalar(area * self.hectares_per_unit)

    def to_json(self) -> dict[str, Any]:
        """The estimate as the JSON document of the reports: ``method``,
        ``orientation``, ``classes``, ``class_names``, ``area_unit``, ``sample_counts``,
        ``samples``, ``samples_per_map_class``, then per class (lists in ``classes``
        order) ``mapped_area``, ``mapped_proportion``, with ``unsampled_proportion``
        and ``error_matrix_proportions`` between, ``area_proportion`` (``_se``),
        ``area`` (``_se``, ``_ci95``), ``overall_accuracy`` (``_se``, ``_ci95``),
        ``users_accuracy`` and ``producers_accuracy`` (``_se``, ``_ci95``), ``z_95``,
        ``warnings``, and with hectares ``mapped_area_ha``, ``area_ha``, ``area_se_ha``
        and ``area_ci95_ha``."""
        classes = self.classes
        document: dict[str, Any] = {
            "method": self.method,
            "orientation": ORIENTATION,
            "classes": [c.value for c in classes],
            "class_names": [c.name for c in classes],
            "area_unit": self.area_unit,
            "sample_counts": [list(row) for row in self.sample_counts],
            "samples": self.samples,
            "samples_per_map_class": [c.samples for c in classes],
            "mapped_area": [c.mapped_area for c in classes],
            "mapped_proportion": [c.mapped_proportion for c in classes],
            "unsampled_proportion": self.unsampled_proportion,
            "error_matrix_proportions": [list(row) for row in self.error_matrix_proportions],
            "area_proportion": [c.area_proportion for c in classes],
            "area_proportion_se": [c.area_proportion_se for c in classes],
            "area": [c.area for c in classes],
            "area_se": [c.area_se for c in classes],
            "area_ci95": [c.area_ci95 for c in classes],
            "overall_accuracy": self.overall_accuracy,
            "overall_accuracy_se": self.overall_accuracy_se,
            "overall_accuracy_ci95": self.overall_accuracy_ci95,
            "users_accuracy": [c.users_accuracy for c in classes],
            "users_accuracy_se": [c.users_accuracy_se for c in classes],
            "users_accuracy_ci95": [c.users_accuracy_ci95 for c in classes],
            "producers_accuracy": [c.producers_accuracy for c in classes],
            "producers_accuracy_se": [c.producers_accuracy_se for c in classes],
            "producers_accuracy_ci95": [c.producers_accuracy_ci95 for c in classes],
            "z_95": self.z_95,
            "warnings": list(self.warnings),
        }
        if self.hectares_per_unit is not None:
            for key in ("mapped_area", "area", "area_se", "area_ci95"):
                document[f"{key}_ha"] = [self.in_report_unit(v) for v in document[key]]
        return document


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
) -> AreaEstimate:
    """Area-weighted accuracy and estimated class areas with standard errors.

    Args:
        sample_counts: shape (k, k), rows = map class (strata), columns = reference
            class.
        mapped_area: area of each map class in the map, shape (k,), in ``area_unit``
            (pixel counts times the pixel area).
        classes: the k class values.
        class_names: value -> name for the report (default ``class <value>``).
        area_unit: name of the unit of ``mapped_area`` for the report.
        hectares_per_unit: hectares in one ``area_unit``; when given, the reports also
            give areas in hectares.

    Undefined values (strata without samples, standard errors of a single sample) are
    ``None``; strata without samples or with a single sample are named in the
    estimate's ``warnings``.

    Raises:
        ValueError: the shapes of the counts and the areas do not match the classes.
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
    if total_area <= 0:
        warnings.append("The map classes cover no area: nothing can be estimated.")
    per_class = zip(
        [int(c) for c in classes],
        names,
        [int(v) for v in n_row],
        _clean(area),
        _clean(weight),
        _clean(proportion),
        _clean(proportion_se),
        _clean(area_estimate),
        _clean(area_se),
        _clean(Z_95 * area_se),
        _clean(users),
        _clean(np.sqrt(users_var)),
        _clean(Z_95 * np.sqrt(users_var)),
        _clean(producers),
        _clean(producers_se),
        _clean(Z_95 * producers_se),
        strict=True,
    )
    return AreaEstimate(
        classes=tuple(ClassAreaEstimate(*values) for values in per_class),
        sample_counts=tuple(tuple(row) for row in n.astype(np.int64).tolist()),
        error_matrix_proportions=tuple(tuple(_clean(row)) for row in p),
        unsampled_proportion=_scalar(float(weight[n_row == 0].sum())),
        overall_accuracy=_scalar(overall),
        overall_accuracy_se=_scalar(np.sqrt(overall_var)),
        overall_accuracy_ci95=_scalar(Z_95 * np.sqrt(overall_var)),
        area_unit=area_unit,
        hectares_per_unit=hectares_per_unit,
        warnings=tuple(warnings),
    )


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
