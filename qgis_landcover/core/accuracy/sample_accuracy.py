# SPDX-License-Identifier: GPL-2.0-or-later
"""Area-adjusted accuracy of a classified raster from validation points.

One pass over the classified raster counts the mapped pixels of each class (the
strata sizes) and reads the class under every point; the points' reference classes
then give the sample counts for the estimators of Olofsson et al. (2014)
(:mod:`.area_estimation`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ..errors import InputError
from ..progress import NullProgress, Progress, check_cancelled
from ..raster.class_raster import ClassBand, area_units, crs_name, open_class_band
from ..raster.grid import TARGET_PIXELS, Grid, aligned_windows, format_bounds
from ..raster.read_ahead import read_windows_ahead
from .area_estimation import AreaEstimate, area_adjusted_accuracy
from .confusion import ClassCounts, ConfusionMatrix
from .remap import format_remap, format_values
from .statistics import ORIENTATION, AgreementStatistics, accuracy_statistics
from .value_codes import DEFAULT_IGNORE_VALUES, ClassRule


@dataclass(frozen=True)
class PointCounts:
    """What became of the validation points.

    Attributes:
        total: points given.
        used: points counted in the samples.
        outside_raster: points off the classified raster.
        ignored: points on the raster left out (nodata, or an ignored class on either
            side).
        skipped_features: features the caller left out before (e.g. a NULL reference
            value or no geometry); ``None`` when the caller does not say.
    """

    total: int
    used: int
    outside_raster: int
    ignored: int
    skipped_features: int | None = None

    def to_json(self) -> dict[str, int]:
        document = {
            "total": self.total,
            "used": self.used,
            "outside_raster": self.outside_raster,
            "ignored": self.ignored,
        }
        if self.skipped_features is not None:
            document["skipped_features"] = self.skipped_features
        return document


@dataclass(frozen=True)
class SampleAccuracyInputs:
    """What was assessed, as the report states it."""

    classified: str
    points: str
    crs: str
    pixel_size: str
    classified_remap: str
    reference_remap: str
    ignore_values: str


@dataclass(frozen=True)
class SampleAccuracyReport:
    """Outcome of :func:`assess_sample_accuracy`.

    Attributes:
        area_adjusted: the Olofsson et al. (2014) estimates.
        samples: statistics of the unweighted sample counts.
        mapped_pixels: pixels of each map class (the strata sizes), ascending class.
        pixel_area: the area of one pixel, in the estimate's ``area_unit``.
        points: what became of the points.
        inputs: what was assessed.
        class_colors: class value -> ``'#rrggbb'`` from the raster's colour table.
        warnings: what the reader should know (the estimate has its own).
        title: the report's title.
    """

    area_adjusted: AreaEstimate
    samples: AgreementStatistics
    mapped_pixels: Mapping[int, int]
    pixel_area: float
    points: PointCounts
    inputs: SampleAccuracyInputs
    class_colors: Mapping[int, str] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    title: str = "Area-adjusted accuracy from validation points"

    @property
    def overall_accuracy(self) -> float | None:
        """The area-weighted overall accuracy."""
        return self.area_adjusted.overall_accuracy

    def to_json(self) -> dict[str, Any]:
        """The report as the JSON document the algorithm writes: ``title``,
        ``orientation``, ``overall_accuracy`` (area-weighted), ``area_adjusted``
        (:meth:`AreaEstimate.to_json`), ``samples`` (:meth:`AgreementStatistics.to_json`),
        ``mapped_pixels``, ``pixel_area``, ``points``, ``class_colors``, ``warnings``,
        ``inputs``."""
        return {
            "title": self.title,
            "orientation": ORIENTATION,
            "overall_accuracy": self.overall_accuracy,
            "area_adjusted": self.area_adjusted.to_json(),
            "samples": self.samples.to_json(),
            "mapped_pixels": {str(c): n for c, n in self.mapped_pixels.items()},
            "pixel_area": self.pixel_area,
            "points": self.points.to_json(),
            "class_colors": {str(c): color for c, color in self.class_colors.items()},
            "warnings": list(self.warnings),
            "inputs": asdict(self.inputs),
        }


def pixel_indices(grid: Grid, xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row and column of the pixel holding each point (x, y in the grid's CRS); -1 for
    points outside the grid. Returns two int64 arrays shaped like ``xs``."""
    x0, dx, _, y0, _, dy = grid.geotransform
    col_float = np.floor((np.asarray(xs, dtype=np.float64) - x0) / dx)
    row_float = np.floor((np.asarray(ys, dtype=np.float64) - y0) / dy)
    outside = ~np.isfinite(col_float) | ~np.isfinite(row_float)
    outside |= (col_float < 0) | (col_float >= grid.width)
    outside |= (row_float < 0) | (row_float >= grid.height)
    rows = np.where(outside, -1, row_float).astype(np.int64)
    cols = np.where(outside, -1, col_float).astype(np.int64)
    return rows, cols


def count_and_sample(
    classified: ClassBand,
    rows: np.ndarray,
    cols: np.ndarray,
    counter: ClassCounts,
    progress: Progress,
    target_pixels: int = TARGET_PIXELS,
) -> np.ndarray:
    """Stream ``classified`` once: count its pixels into ``counter`` and return the raw
    value at each (row, col) (int64; points with row -1 get 0 and must be skipped)."""
    grid = classified.grid
    values = np.zeros(len(rows), dtype=np.int64)
    parts = aligned_windows(grid.full_window, classified.block_size, target_pixels)
    done = 0
    for part, (block,) in read_windows_ahead([classified.read], parts):
        check_cancelled(progress)
        counter.update(block)
        inside = (
            (rows >= part.row_off)
            & (rows < part.row_off + part.height)
            & (cols >= part.col_off)
            & (cols < part.col_off + part.width)
        )
        values[inside] = block[rows[inside] - part.row_off, cols[inside] - part.col_off]
        done += part.width * part.height
        progress.set_progress(100.0 * done / (grid.width * grid.height))
    return values


def assess_sample_accuracy(
    classified_path: str | os.PathLike[str],
    xs: np.ndarray,
    ys: np.ndarray,
    reference_values: np.ndarray,
    *,
    classified_band: int | None = None,
    classified_remap: Mapping[int, int] | None = None,
    reference_remap: Mapping[int, int] | None = None,
    ignore_values: Iterable[int] | None = None,
    class_names: Mapping[int, str] | None = None,
    points_description: str = "",
    skipped_features: int | None = None,
    progress: Progress | None = None,
) -> SampleAccuracyReport:
    """Area-adjusted accuracy and area estimates from validation points.

    Args:
        classified_path: the classification (map); its classes are the strata.
        xs, ys: point coordinates in the classified raster's CRS, shape (n,).
        reference_values: reference class of each point, integers, shape (n,).
        classified_remap, reference_remap: value -> class value before comparing.
        ignore_values: class values (after the remaps) left out on both sides;
            ``None`` = ``(0,)``; the raster's nodata is left out in any case.
        class_names: value -> name for the report.
        points_description: how the report names the points (e.g. the layer).
        skipped_features: features the caller left out before (NULL reference value,
            no geometry), for the report's point counts.

    Raises:
        InputError: unusable raster, mismatched arrays, no usable point.
    """
    progress = progress or NullProgress()
    xs, ys = np.asarray(xs, dtype=np.float64), np.asarray(ys, dtype=np.float64)
    references = np.asarray(reference_values)
    if not (xs.shape == ys.shape == references.shape) or xs.ndim != 1:
        raise ValueError("xs, ys and reference_values must be 1-D arrays of one length")
    if references.size and references.dtype.kind not in "iub":
        raise InputError("The reference class values of the points must be integers.")
    if not xs.size:
        raise InputError(
            "There are no validation points: give at least one point (with its reference "
            "class) in every map class."
        )
    classified = open_class_band(classified_path, classified_band, "classified raster")
    classified_remap, reference_remap = dict(classified_remap or {}), dict(reference_remap or {})
    ignore = sorted(set(DEFAULT_IGNORE_VALUES if ignore_values is None else ignore_values))
    map_rule = ClassRule.build(classified_remap, classified.nodata_values(), ignore)
    reference_rule = ClassRule.build(reference_remap, (), ignore)

    grid = classified.grid
    rows, cols = pixel_indices(grid, xs, ys)
    inside = rows >= 0
    if not inside.any():
        raise InputError(
            f"None of the {len(xs)} points fall on the classified raster "
            f"({format_bounds(grid.bounds)}, {crs_name(grid.crs_wkt)}): check that the "
            "points cover the map and that their layer's CRS is right."
        )
    progress.info(
        f"{int(inside.sum())} of {len(xs)} points fall on the classified raster; counting "
        f"its {grid.width} x {grid.height} pixels."
    )
    counter = ClassCounts(map_rule)
    sampled = count_and_sample(classified, rows, cols, counter, progress)

    samples = ConfusionMatrix(predicted=map_rule, reference=reference_rule)
    samples.update(sampled[inside], references[inside].astype(np.int64))
    if samples.observations == 0:
        raise InputError(_unusable_points(sampled[inside], map_rule, ignore))
    mapped = counter.counts()
    classes = sorted(set(mapped) | set(samples.classes))
    sample_counts = samples.aligned_matrix(classes)
    pixel_area = grid.resolution[0] * grid.resolution[1]
    unit, hectares = area_units(grid.crs_wkt)
    # Category names belong to raw values: with a remap they would name the wrong class.
    names = {} if classified_remap else classified.category_names()
    names.update(class_names or {})
    estimate = area_adjusted_accuracy(
        sample_counts,
        [mapped.get(c, 0) * pixel_area for c in classes],
        classes,
        names,
        area_unit=unit,
        hectares_per_unit=hectares,
    )
    warnings = []
    if hectares is None:
        warnings.append(
            f"The classified raster's CRS ({crs_name(grid.crs_wkt)}) is not projected: areas "
            f"are in {unit}, not hectares. Proportions and accuracies are unaffected."
        )
    unmapped = [c for c in samples.classes if c not in mapped]
    if unmapped:
        warnings.append(
            "Reference classes never mapped (producer's accuracy 0, area from the samples "
            f"of other strata only): {', '.join(map(str, unmapped))}."
        )
    colors = classified.category_colors() if not classified_remap else {}
    outside = int((~inside).sum())
    report = SampleAccuracyReport(
        area_adjusted=estimate,
        samples=accuracy_statistics(sample_counts, classes, names),
        mapped_pixels={c: int(mapped.get(c, 0)) for c in classes},
        pixel_area=pixel_area,
        points=PointCounts(
            total=len(xs),
            used=samples.observations,
            outside_raster=outside,
            ignored=int(inside.sum()) - samples.observations,
            skipped_features=skipped_features,
        ),
        inputs=SampleAccuracyInputs(
            classified=classified.describe(),
            points=points_description or f"{len(xs)} points",
            crs=crs_name(grid.crs_wkt),
            pixel_size=f"{grid.resolution[0]:g} x {grid.resolution[1]:g}",
            classified_remap=format_remap(classified_remap),
            reference_remap=format_remap(reference_remap),
            ignore_values=format_values(ignore),
        ),
        class_colors={c: colors[c] for c in classes if c in colors},
        warnings=tuple(warnings),
    )
    if outside:
        progress.warning(f"{outside} points fall outside the classified raster and are skipped.")
    # The estimator's own warnings (strata without samples bias every estimate) belong in
    # the log as much as in the report.
    for message in [*warnings, *estimate.warnings]:
        progress.warning(message)
    return report


def _unusable_points(mapped: np.ndarray, map_rule: ClassRule, ignore: list[int]) -> str:
    """Why none of the points on the raster (raw map values ``mapped``, shape (n,)) can
    be used when nothing was counted: how many fall on nodata or an ignored map class;
    the others must have an ignored reference class."""
    on_nodata = np.isin(mapped, list(map_rule.nodata))
    map_classes, _ = map_rule.classify(mapped.astype(np.int64))
    ignored = ~on_nodata & np.isin(map_classes, ignore)
    reference_ignored = ~on_nodata & ~ignored
    return (
        f"None of the {len(mapped)} points on the classified raster can be used: "
        f"{int(on_nodata.sum())} fall on its nodata, {int(ignored.sum())} on an ignored map "
        f"class and {int(reference_ignored.sum())} have an ignored reference class (ignore "
        f"values: {format_values(ignore)})."
    )
