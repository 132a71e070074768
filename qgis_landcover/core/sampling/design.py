# SPDX-License-Identifier: GPL-2.0-or-later
"""Stratified random sample designs for the accuracy assessment of a classified raster.

Olofsson, Foody, Herold, Stehman, Woodcock & Wulder (2014), "Good practices for
estimating area and assessing accuracy of land change", Remote Sensing of Environment
148:42-57, section 5.1: the map classes are the strata; the total sample size comes
from the expected user's accuracies U_i and the target standard error S(O) of the
overall accuracy (their eq. 13, Cochran 1977 eq. 5.25 without the finite population
correction)::

    n = (sum_i W_i S_i / S(O))^2,   S_i = sqrt(U_i (1 - U_i)),

with W_i the share of the mapped area in class i; each rare class gets a minimum sample
(they suggest 50-100) and the rest is allocated in proportion to area. Points are
pixel centres drawn without replacement, uniformly within each class; nodata and
ignored values are never drawn. :mod:`qgis_landcover.core.accuracy.sample_accuracy`
then estimates accuracy and areas from the points' reference classes.

The raster is streamed twice in the same windows (:func:`~..raster.grid.aligned_windows`):
once to count the pixels of each class, once to pick the pixels whose rank within their
class was drawn, so memory does not depend on the raster's size.
"""

from __future__ import annotations

import math
import os
import re
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ..accuracy.confusion import ClassCounts
from ..accuracy.remap import format_values
from ..accuracy.value_codes import DEFAULT_IGNORE_VALUES, ClassRule
from ..errors import InputError
from ..progress import NullProgress, Progress, check_cancelled
from ..raster.class_raster import ClassBand, open_class_band
from ..raster.grid import TARGET_PIXELS, Grid, Window, aligned_windows
from ..raster.read_ahead import read_windows_ahead

DEFAULT_USERS_ACCURACY = 0.85
"""Expected user's accuracy of classes given none (a common guess for land cover)."""

DEFAULT_TARGET_STANDARD_ERROR = 0.01
"""Target standard error of the overall accuracy (Olofsson et al.'s example)."""

DEFAULT_MIN_PER_CLASS = 50
"""Minimum sample of a class (Olofsson et al. suggest 50-100 for rare classes)."""

_TOKENS = re.compile(r"[,;\s]+")


@dataclass(frozen=True)
class ExpectedAccuracies:
    """Expected user's accuracies: one for every class (``default``) and/or per class.

    Attributes:
        default: the accuracy of classes not listed; ``None``: every class must be listed.
        per_class: class value -> expected user's accuracy (0-1].
    """

    default: float | None = DEFAULT_USERS_ACCURACY
    per_class: Mapping[int, float] | None = None

    def for_classes(self, classes: Sequence[int]) -> list[float]:
        """The expected accuracy of each of ``classes``; raises :class:`InputError`
        naming the classes without one."""
        listed = dict(self.per_class or {})
        missing = [c for c in classes if c not in listed]
        if missing and self.default is None:
            raise InputError(
                f"No expected user's accuracy for class{'es' if len(missing) > 1 else ''} "
                f"{format_values(missing)}: give one for every mapped class (e.g. "
                f"'{','.join(f'{c}:0.8' for c in classes)}') or one value for all (e.g. '0.85')."
            )
        return [listed.get(c, self.default) for c in classes]  # type: ignore[misc]


def _accuracy(text: str, where: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise InputError(
            f"Cannot read the expected user's accuracies: {where} is not a number."
        ) from None
    if not 0.0 < value <= 1.0:
        raise InputError(
            f"Expected user's accuracies are proportions in (0, 1]: {where} is not "
            "(e.g. 0.85, not 85)."
        )
    return value


def parse_expected_accuracies(text: str | None) -> ExpectedAccuracies:
    """Read expected user's accuracies: ``'0.85'`` (every class), ``'1:0.7,2:0.6'``
    (per class; then every mapped class must be listed) or both (``'0.9,1:0.7'``: 0.7
    for class 1, 0.9 for the others). Blank: :data:`DEFAULT_USERS_ACCURACY` for all.

    Raises:
        InputError: a token that is not a number or a ``class:accuracy`` pair, an
            accuracy outside (0, 1], two defaults, a class listed twice.
    """
    if text is None or not str(text).strip():
        return ExpectedAccuracies()
    default: float | None = None
    per_class: dict[int, float] = {}
    for token in _TOKENS.split(str(text).strip()):
        if not token:
            continue
        if ":" in token or "=" in token:
            key, _, value = token.replace("=", ":").partition(":")
            if not re.fullmatch(r"[+-]?\d+", key.strip()):
                raise InputError(
                    f"Cannot read the expected user's accuracies: {token!r} is not a "
                    "'class:accuracy' pair (e.g. '1:0.7,2:0.6')."
                )
            if int(key) in per_class:
                raise InputError(f"The expected user's accuracies give class {int(key)} twice.")
            per_class[int(key)] = _accuracy(value.strip(), repr(token))
        else:
            if default is not None:
                raise InputError(
                    "The expected user's accuracies give two values for every class "
                    f"({default:g} and {token}): give one, and 'class:accuracy' pairs for "
                    "the others."
                )
            default = _accuracy(token, repr(token))
    return ExpectedAccuracies(default, per_class)


def cochran_sample_size(
    weights: Sequence[float], users_accuracies: Sequence[float], target_standard_error: float
) -> float:
    """Olofsson et al. (2014) eq. 13: ``(sum W_i S_i / S(O))^2`` with
    ``S_i = sqrt(U_i (1 - U_i))``, unrounded (the design draws its ceiling).

    Args:
        weights: W_i, the mapped area's share of each class (summing to 1).
        users_accuracies: U_i, the expected user's accuracy of each class.
        target_standard_error: S(O), the standard error of the overall accuracy aimed at.
    """
    if not 0.0 < target_standard_error < 0.5:
        raise InputError(
            f"The target standard error of the overall accuracy is a proportion in (0, 0.5) "
            f"(e.g. 0.01), not {target_standard_error:g}."
        )
    w = np.asarray(weights, dtype=np.float64)
    u = np.asarray(users_accuracies, dtype=np.float64)
    spread = np.sqrt(u * (1.0 - u))
    return float((np.sum(w * spread) / target_standard_error) ** 2)


def _largest_remainder(shares: np.ndarray, total: int) -> np.ndarray:
    """Integers summing to ``total`` in proportion to ``shares`` (Hamilton's method:
    floors, then one more to the largest remainders; ties to the first)."""
    exact = shares / shares.sum() * total
    counts = np.floor(exact).astype(np.int64)
    left = total - int(counts.sum())
    if left > 0:
        order = np.argsort(-(exact - counts), kind="stable")
        counts[order[:left]] += 1
    return counts


def allocate_samples(
    total: int, weights: Sequence[float], min_per_class: int
) -> tuple[np.ndarray, list[str]]:
    """Olofsson et al.'s allocation of ``total`` points to strata with area shares
    ``weights``: every class whose proportional share falls below ``min_per_class``
    gets that minimum, the others share the rest in proportion to their area (repeated
    until no proportional share is below the minimum), rounded by largest remainders.

    When the minimums alone exceed ``total``, every class gets the minimum (the sample
    grows; a warning says so). Returns (int64 sizes, warnings).
    """
    w = np.asarray(weights, dtype=np.float64)
    if total < 0 or min_per_class < 0:
        raise InputError("Sample sizes cannot be negative.")
    warnings: list[str] = []
    count = len(w)
    if count * min_per_class >= total:
        if count * min_per_class > total:
            warnings.append(
                f"The minimum of {min_per_class} points in each of the {count} classes "
                f"needs {count * min_per_class} points, more than the {total} the target "
                "standard error needs: every class gets the minimum."
            )
        return np.full(count, min_per_class, dtype=np.int64), warnings
    at_minimum = np.zeros(count, dtype=bool)
    while True:
        remaining = total - min_per_class * int(at_minimum.sum())
        free = ~at_minimum
        shares = np.where(free, w, 0.0)
        proportional = remaining * shares / shares.sum()
        below = free & (proportional < min_per_class)
        if not below.any():
            break
        at_minimum |= below
    sizes = np.full(count, min_per_class, dtype=np.int64)
    sizes[~at_minimum] = _largest_remainder(w[~at_minimum], remaining)
    return sizes, warnings


@dataclass(frozen=True)
class Stratum:
    """One map class of a sample design.

    Attributes:
        value, name: the class and its name.
        mapped_pixels: its pixels in the map (the stratum's size).
        weight: its share of the mapped pixels, W_i.
        expected_users_accuracy: U_i, as given.
        proportional: ``n * W_i``, the size of a proportional allocation (unrounded).
        samples: points allocated to it.
        drawn: points drawn in it (fewer than ``samples`` only when the class has
            fewer pixels).
    """

    value: int
    name: str
    mapped_pixels: int
    weight: float
    expected_users_accuracy: float
    proportional: float
    samples: int
    drawn: int


@dataclass(frozen=True)
class SampleDesign:
    """A stratified random sample (:func:`design_sample`).

    Attributes:
        strata: one record per map class, ascending value.
        cochran_size: eq. 13's n, unrounded.
        total: points drawn.
        target_standard_error: S(O) aimed at.
        expected_standard_error: the standard error of the overall accuracy this
            allocation gives if the expected user's accuracies hold (Olofsson et al.
            eq. 5: ``sqrt(sum W_i^2 U_i (1 - U_i) / (n_i - 1))``); ``None`` when a class
            has fewer than 2 points.
        min_per_class: the minimum per class used.
        seed: the random seed (the same raster and arguments with it give the same
            points).
        grid: the classified raster's grid (the points' CRS is ``grid.crs_wkt``).
        xs, ys: pixel centres of the points in that CRS, float64 (n,).
        rows, cols: their pixels, int64 (n,).
        map_classes: their map class, int64 (n,).
        warnings: what the user should know about the design.
    """

    strata: tuple[Stratum, ...]
    cochran_size: float
    total: int
    target_standard_error: float
    expected_standard_error: float | None
    min_per_class: int
    seed: int
    grid: Grid
    xs: np.ndarray
    ys: np.ndarray
    rows: np.ndarray
    cols: np.ndarray
    map_classes: np.ndarray
    warnings: tuple[str, ...] = ()


def expected_standard_error(
    weights: Sequence[float], users_accuracies: Sequence[float], sizes: Sequence[int]
) -> float | None:
    """``sqrt(sum W_i^2 U_i (1 - U_i) / (n_i - 1))`` (Olofsson et al. eq. 5 with the
    expected accuracies); ``None`` when some class with weight has fewer than 2 points."""
    w = np.asarray(weights, dtype=np.float64)
    u = np.asarray(users_accuracies, dtype=np.float64)
    n = np.asarray(sizes, dtype=np.float64)
    used = w > 0
    if np.any(n[used] < 2):
        return None
    return float(np.sqrt(np.sum(w[used] ** 2 * u[used] * (1 - u[used]) / (n[used] - 1))))


def pixel_centres(grid: Grid, rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """x, y (float64, in the grid's CRS) of the centres of pixels (rows, cols)."""
    x0, dx, _, y0, _, dy = grid.geotransform
    xs = x0 + (np.asarray(cols, dtype=np.float64) + 0.5) * dx
    ys = y0 + (np.asarray(rows, dtype=np.float64) + 0.5) * dy
    return xs, ys


def count_classes(
    band: ClassBand,
    rule: ClassRule,
    windows: Sequence[Window],
    progress: Progress,
    percent: tuple[float, float] = (0.0, 100.0),
) -> dict[int, int]:
    """Pixels of each class (after ``rule``: nodata and ignored values left out) of
    ``band`` read in ``windows``; progress from ``percent[0]`` to ``percent[1]``."""
    counter = ClassCounts(rule)
    total = sum(w.size for w in windows)
    done = 0
    for window, (block,) in read_windows_ahead([band.read], windows):
        check_cancelled(progress)
        counter.update(block)
        done += window.size
        progress.set_progress(percent[0] + (percent[1] - percent[0]) * done / total)
    return counter.counts()


def draw_stratified(
    band: ClassBand,
    sizes: Mapping[int, int],
    counts: Mapping[int, int],
    windows: Sequence[Window],
    rng: np.random.Generator,
    progress: Progress,
    percent: tuple[float, float] = (0.0, 100.0),
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw ``sizes[c]`` distinct pixels of each class ``c`` uniformly at random.

    ``counts[c]`` must be the pixels of value ``c`` in ``windows`` (as
    :func:`count_classes` counts them in the same windows): the ranks of the chosen
    pixels within their class are drawn first, then one pass in the same order picks
    those pixels. Returns (rows, cols, classes), int64, grouped by class.
    """
    chosen = {
        c: np.sort(rng.choice(counts[c], size=min(n, counts[c]), replace=False))
        for c, n in sizes.items()
        if n > 0 and counts.get(c, 0) > 0
    }
    seen = dict.fromkeys(chosen, 0)
    picked: dict[int, list[np.ndarray]] = {c: [] for c in chosen}
    total = sum(w.size for w in windows)
    done = 0
    for window, (block,) in read_windows_ahead([band.read], windows):
        check_cancelled(progress)
        for value, ranks in chosen.items():
            mask = block == value
            found = int(np.count_nonzero(mask))
            if not found:
                continue
            start = seen[value]
            low, high = np.searchsorted(ranks, [start, start + found])
            if high > low:
                positions = np.flatnonzero(mask)[ranks[low:high] - start]
                rows = window.row_off + positions // window.width
                cols = window.col_off + positions % window.width
                picked[value].append(np.stack([rows, cols]))
            seen[value] = start + found
        done += window.size
        progress.set_progress(percent[0] + (percent[1] - percent[0]) * done / total)
    parts = [(np.concatenate(picked[c], axis=1), c) for c in sorted(picked) if picked[c]]
    if not parts:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty.copy(), empty.copy()
    rows = np.concatenate([p[0][0] for p in parts]).astype(np.int64)
    cols = np.concatenate([p[0][1] for p in parts]).astype(np.int64)
    classes = np.concatenate([np.full(p[0].shape[1], p[1], dtype=np.int64) for p in parts])
    return rows, cols, classes


def design_sample(
    classified_path: str | os.PathLike[str],
    *,
    classified_band: int | None = None,
    expected_accuracies: ExpectedAccuracies | None = None,
    target_standard_error: float = DEFAULT_TARGET_STANDARD_ERROR,
    min_per_class: int = DEFAULT_MIN_PER_CLASS,
    total: int | None = None,
    seed: int | None = None,
    ignore_values: Iterable[int] | None = None,
    class_names: Mapping[int, str] | None = None,
    progress: Progress | None = None,
    target_pixels: int = TARGET_PIXELS,
) -> SampleDesign:
    """A stratified random sample of a classified raster for its accuracy assessment.

    Args:
        classified_path: the classification (integer classes); its classes are strata.
        classified_band: its band (``None`` for single-band rasters).
        expected_accuracies: expected user's accuracies (default 0.85 for every class).
        target_standard_error: S(O), the standard error of the overall accuracy aimed at.
        min_per_class: the minimum points of a class (0: proportional allocation).
        total: the number of points instead of eq. 13's (then only allocated).
        seed: the random seed; ``None`` draws one (returned in the design).
        ignore_values: class values never sampled (``None``: ``(0,)``, as
            ``landcover:sample_accuracy`` ignores them); the raster's nodata never is.
        class_names: value -> name; default the raster's category names.

    Raises:
        InputError: unusable raster, a raster without any class pixel, bad numbers.
    """
    progress = progress or NullProgress()
    expected_accuracies = expected_accuracies or ExpectedAccuracies()
    if min_per_class < 0:
        raise InputError(f"The minimum points per class cannot be negative ({min_per_class}).")
    if total is not None and total < 1:
        raise InputError(f"The sample size must be at least 1 point, not {total}.")
    seed = secrets.randbelow(2**31) if seed is None else int(seed)
    if seed < 0:
        raise InputError(f"The random seed must be 0 or more, not {seed}.")
    band = open_class_band(classified_path, classified_band, "classified raster")
    ignore = sorted(set(DEFAULT_IGNORE_VALUES if ignore_values is None else ignore_values))
    rule = ClassRule.build({}, band.nodata_values(), ignore)
    grid = band.grid
    windows = aligned_windows(grid.full_window, band.block_size, target_pixels)
    progress.info(f"Counting the classes of {grid.width} x {grid.height} pixels.")
    counts = count_classes(band, rule, windows, progress, (0.0, 50.0))
    if not counts:
        raise InputError(
            f"The classified raster {band.describe()} has no class pixels to sample: every "
            f"pixel is nodata or an ignored value ({format_values(ignore)})."
        )
    classes = list(counts)
    mapped = np.array([counts[c] for c in classes], dtype=np.float64)
    weights = mapped / mapped.sum()
    accuracies = expected_accuracies.for_classes(classes)
    size = cochran_sample_size(weights, accuracies, target_standard_error)
    wanted = total if total is not None else max(1, math.ceil(size - 1e-9))
    sizes, warnings = allocate_samples(wanted, weights, min_per_class)
    short = [
        f"{c} ({counts[c]} pixels for {n} points)"
        for c, n in zip(classes, sizes, strict=True)
        if n > counts[c]
    ]
    if short:
        warnings.append(
            "Classes with fewer pixels than points allocated get every pixel: "
            + ", ".join(short)
            + "."
        )
    rng = np.random.default_rng(seed)
    rows, cols, values = draw_stratified(
        band,
        dict(zip(classes, (int(n) for n in sizes), strict=True)),
        counts,
        windows,
        rng,
        progress,
        (50.0, 100.0),
    )
    # Shuffled, so that whoever labels the points in order does not see them class by class.
    order = rng.permutation(len(rows))
    rows, cols, values = rows[order], cols[order], values[order]
    xs, ys = pixel_centres(grid, rows, cols)
    names = band.category_names()
    names.update(class_names or {})
    drawn = {c: int(np.count_nonzero(values == c)) for c in classes}
    strata = tuple(
        Stratum(
            value=c,
            name=names.get(c, f"class {c}"),
            mapped_pixels=int(counts[c]),
            weight=float(w),
            expected_users_accuracy=float(u),
            proportional=float(wanted * w),
            samples=int(n),
            drawn=drawn[c],
        )
        for c, w, u, n in zip(classes, weights, accuracies, sizes, strict=True)
    )
    design = SampleDesign(
        strata=strata,
        cochran_size=size,
        total=len(rows),
        target_standard_error=target_standard_error,
        expected_standard_error=expected_standard_error(
            weights, accuracies, [drawn[c] for c in classes]
        ),
        min_per_class=min_per_class,
        seed=seed,
        grid=grid,
        xs=xs,
        ys=ys,
        rows=rows,
        cols=cols,
        map_classes=values,
        warnings=tuple(warnings),
    )
    progress.info(
        f"Sample size n = {size:.1f} (eq. 13, target standard error {target_standard_error:g})"
        + (f", {total} points asked for" if total is not None else "")
        + f"; {design.total} points drawn with seed {seed}: "
        + ", ".join(f"{s.name} {s.drawn}" for s in strata)
        + "."
    )
    for message in warnings:
        progress.warning(message)
    return design
