# SPDX-License-Identifier: GPL-2.0-or-later
"""The points a model is least sure of: where a user's label teaches an adapted model
the most (the loop suggest, label, adapt, classify).

The uncertainty of a pixel is its *margin*: the probability of the model's top class
minus that of the second (0 = a tie, 1 = certain). Points are chosen with the lowest
margins, but spread out:

- in space: the extent is cut into square cells of ``min_distance`` pixels and each cell
  offers only its lowest-margin pixel; chosen points are also at least ``min_distance``
  pixels apart across cell edges (neighbouring pixels teach little more than one);
- across predicted classes: classes take turns (round robin), each offering its
  next lowest-margin candidate, so that no class's border takes every point.

:func:`suggest_points` runs the core classify (:func:`~..inference.classify.classify`)
with its probabilities output into a temporary folder and reads the margins from it
stripe by stripe (memory does not grow with the extent); :func:`cell_candidates` and
:func:`select_points` work on any score map.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..files.temporary import registered_temporary
from ..inference.classified_output import NODATA, OutputPaths
from ..inference.classify import classify
from ..inference.image_source import Extent, ImageSource
from ..inference.pipeline import ClassifyOptions
from ..inference.session import ModelSession, load_session
from ..progress import NullProgress, Progress, check_cancelled
from ..raster.grid import TARGET_PIXELS, Grid, Window
from ..raster.reading import open_raster, raster_grid, read_window
from .design import pixel_centres

PROBABILITY_SCALE = 255.0
"""The classify probabilities output stores ``round(255 p)``: margins come in steps of
1/255."""


@dataclass(frozen=True)
class Candidates:
    """The lowest-margin valid pixel of each cell (:func:`cell_candidates`).

    Attributes:
        rows, cols: the pixels, int64 (n,), in the score map's pixel grid.
        margins: top-1 minus top-2 probability, float64 (n,).
        classes: the predicted class value, int64 (n,).
    """

    rows: np.ndarray
    cols: np.ndarray
    margins: np.ndarray
    classes: np.ndarray

    @staticmethod
    def concatenate(parts: Sequence[Candidates]) -> Candidates:
        """One :class:`Candidates` of all ``parts``."""
        if not parts:
            empty = np.zeros(0, dtype=np.int64)
            return Candidates(empty, empty, np.zeros(0), empty)
        return Candidates(
            *(np.concatenate([getattr(p, f) for p in parts]) for f in Candidates.__annotations__)
        )


def top_two_margin(probabilities: np.ndarray) -> np.ndarray:
    """Top-1 minus top-2 of ``probabilities`` (K, rows, cols) along axis 0, float64
    (rows, cols); 1 where there is a single class."""
    scores = np.asarray(probabilities, dtype=np.float64)
    if scores.shape[0] < 2:
        return np.ones(scores.shape[1:], dtype=np.float64)
    top = np.partition(scores, scores.shape[0] - 2, axis=0)[-2:]
    return top[1] - top[0]


def cell_candidates(
    margins: np.ndarray,
    classes: np.ndarray,
    valid: np.ndarray,
    cell: int,
    row_off: int = 0,
    col_off: int = 0,
) -> Candidates:
    """The lowest-margin valid pixel of each ``cell`` x ``cell`` square.

    Args:
        margins: (rows, cols) margins; classes: (rows, cols) predicted class values;
            valid: (rows, cols) bool, False for pixels never to suggest (nodata).
        cell: the cells' side in pixels; cells start at multiples of ``cell`` from the
            score map's origin, so ``row_off`` (the array's first row in the map) must
            be a multiple of ``cell`` when the map is read in stripes.
        row_off, col_off: the array's offset in the map (the candidates' pixels are
            in the map's grid).
    """
    if cell < 1:
        raise ValueError("cell must be at least 1 pixel")
    if row_off % cell:
        raise ValueError("stripes must start on a cell edge")
    rows, cols = margins.shape
    cell_rows, cell_cols = math.ceil(rows / cell), math.ceil(cols / cell)
    padded = np.full((cell_rows * cell, cell_cols * cell), np.inf)
    padded[:rows, :cols] = np.where(valid, margins, np.inf)
    # (cell row, cell col, pixel within the cell) so that one argmin finds each cell's best.
    blocks = padded.reshape(cell_rows, cell, cell_cols, cell).transpose(0, 2, 1, 3)
    blocks = blocks.reshape(cell_rows, cell_cols, cell * cell)
    best = np.argmin(blocks, axis=2)
    best_margin = np.take_along_axis(blocks, best[..., np.newaxis], axis=2)[..., 0]
    keep = np.isfinite(best_margin)
    cell_row, cell_col = np.nonzero(keep)
    inside = best[keep]
    pixel_rows = cell_row * cell + inside // cell
    pixel_cols = cell_col * cell + inside % cell
    return Candidates(
        rows=(pixel_rows + row_off).astype(np.int64),
        cols=(pixel_cols + col_off).astype(np.int64),
        margins=best_margin[keep].astype(np.float64),
        classes=np.asarray(classes)[pixel_rows, pixel_cols].astype(np.int64),
    )


def select_points(candidates: Candidates, count: int, min_distance: float) -> np.ndarray:
    """Indices into ``candidates`` of up to ``count`` points: predicted classes take
    turns (the class with the lowest next margin first in each round), each giving its
    lowest-margin candidate at least ``min_distance`` pixels from every point chosen
    before. Ties in margin go to the candidate first in raster order."""
    if count < 1:
        return np.zeros(0, dtype=np.int64)
    order = np.lexsort((candidates.cols, candidates.rows, candidates.margins))
    queues = {
        int(c): [int(i) for i in order if candidates.classes[i] == c]
        for c in np.unique(candidates.classes)
    }
    positions = dict.fromkeys(queues, 0)
    chosen: list[int] = []
    chosen_rows = np.zeros(count, dtype=np.float64)
    chosen_cols = np.zeros(count, dtype=np.float64)
    limit = float(min_distance) ** 2

    def far_enough(index: int) -> bool:
        n = len(chosen)
        if n == 0 or limit <= 0:
            return True
        d2 = (chosen_rows[:n] - candidates.rows[index]) ** 2
        d2 += (chosen_cols[:n] - candidates.cols[index]) ** 2
        return bool(d2.min() >= limit)

    while len(chosen) < count and queues:
        # Each round: every class with candidates left, lowest next margin first.
        turn = sorted(queues, key=lambda c: candidates.margins[queues[c][positions[c]]])
        for value in turn:
            queue = queues[value]
            while positions[value] < len(queue) and not far_enough(queue[positions[value]]):
                positions[value] += 1
            if positions[value] < len(queue):
                index = queue[positions[value]]
                positions[value] += 1
                chosen_rows[len(chosen)] = candidates.rows[index]
                chosen_cols[len(chosen)] = candidates.cols[index]
                chosen.append(index)
                if len(chosen) == count:
                    break
        queues = {c: q for c, q in queues.items() if positions[c] < len(q)}
    return np.asarray(chosen, dtype=np.int64)


def automatic_cell(pixels: int, count: int) -> int:
    """The cell side (pixels) when no distance is given: half the spacing of a square
    grid of ``count`` points over ``pixels``, so about 4 candidates per point."""
    return max(1, int(0.5 * math.sqrt(pixels / max(count, 1))))


@dataclass(frozen=True)
class SuggestedPoints:
    """Points to label (:func:`suggest_points`), lowest margin first within each round.

    Attributes:
        grid: the classification's grid (the points' CRS is ``grid.crs_wkt``).
        xs, ys: pixel centres, float64 (n,).
        rows, cols: their pixels in ``grid``, int64 (n,).
        classes: the predicted class value of each, int64 (n,).
        margins: top-1 minus top-2 probability of each, float64 (n,), in steps of 1/255.
        class_names: class value -> name, from the model.
        min_distance: the distance kept between points, pixels of ``grid``.
        candidates: cells that offered a point.
        warnings: what the user should know (fewer points than asked for).
    """

    grid: Grid
    xs: np.ndarray
    ys: np.ndarray
    rows: np.ndarray
    cols: np.ndarray
    classes: np.ndarray
    margins: np.ndarray
    class_names: dict[int, str]
    min_distance: int
    candidates: int
    warnings: tuple[str, ...] = ()


def raster_candidates(
    probabilities_path: Path,
    classes_path: Path,
    cell: int,
    progress: Progress,
    target_pixels: int = TARGET_PIXELS,
) -> Candidates:
    """:func:`cell_candidates` of a classify run's probabilities and classes rasters,
    read in full-width stripes of whole cells (nodata 0 in the classes is skipped)."""
    probabilities = open_raster(probabilities_path)
    classes = open_raster(classes_path)
    grid = raster_grid(classes)
    stripe = max(cell, (target_pixels // max(grid.width, 1)) // cell * cell)
    parts = []
    for row in range(0, grid.height, stripe):
        check_cancelled(progress)
        window = Window(0, row, grid.width, min(stripe, grid.height - row))
        values = read_window(classes, window, 1)
        margins = top_two_margin(read_window(probabilities, window) / PROBABILITY_SCALE)
        parts.append(cell_candidates(margins, values, values != NODATA, cell, row_off=row))
    return Candidates.concatenate(parts)


def suggest_points(
    source: ImageSource,
    model: str | os.PathLike[str] | ModelSession,
    count: int,
    *,
    extent: Extent | None = None,
    bands: Sequence[int] | None = None,
    min_distance: float | None = None,
    options: ClassifyOptions | None = None,
    progress: Progress | None = None,
) -> SuggestedPoints:
    """Up to ``count`` points of ``extent`` where ``model`` is least sure, spread out in
    space and across predicted classes.

    Args:
        source, model, extent, bands, options: as for the core classify.
        count: the points wanted.
        min_distance: the least distance between points in the source's CRS units
            (metres for projected imagery); ``None`` or 0: half the spacing of a square
            grid of ``count`` points over the extent.

    Raises:
        InputError: bad input (as classify), a count below 1, a negative distance, an
            extent without any classified pixel; CancelledError when cancelled.
    """
    progress = progress or NullProgress()
    options = options or ClassifyOptions()
    if count < 1:
        raise InputError(f"Ask for at least 1 point, not {count}.")
    if min_distance is not None and min_distance < 0:
        raise InputError(
            f"The minimum distance between points cannot be negative ({min_distance:g})."
        )
    session = (
        model if isinstance(model, ModelSession) else load_session(model, options.device, progress)
    )
    # Scratch rasters in a temporary folder, registered so that a SIGTERM removes them too.
    with tempfile.TemporaryDirectory(prefix="landcover-suggest-") as folder, ExitStack() as stack:
        outputs = OutputPaths(
            stack.enter_context(registered_temporary(Path(folder) / "classes.tif")),
            probabilities=stack.enter_context(
                registered_temporary(Path(folder) / "probabilities.tif")
            ),
        )
        result = classify(
            source,
            session,
            outputs,
            extent=extent,
            bands=bands,
            options=replace(options, overviews=False),
            progress=progress,
        )
        grid = result.grid
        if min_distance:
            cell = max(1, math.ceil(min_distance / grid.resolution[0]))
        else:
            cell = automatic_cell(grid.width * grid.height, count)
        progress.info(
            f"Choosing {count} points among cells of {cell} x {cell} pixels "
            f"({cell * grid.resolution[0]:g} units apart at least)."
        )
        candidates = raster_candidates(outputs.probabilities, outputs.classes, cell, progress)
    if not len(candidates.rows):
        raise InputError("The extent has no classified pixel to suggest (all nodata).")
    chosen = select_points(candidates, count, cell)
    rows, cols = candidates.rows[chosen], candidates.cols[chosen]
    xs, ys = pixel_centres(grid, rows, cols)
    contract = session.contract
    names = {contract.class_values[c]: contract.class_names[c] for c in contract.class_channels}
    warnings = []
    if len(chosen) < count:
        warnings.append(
            f"Only {len(chosen)} of the {count} points fit {cell} pixels apart in the extent: "
            "give a smaller minimum distance or a larger extent for more."
        )
    for message in warnings:
        progress.warning(message)
    return SuggestedPoints(
        grid=grid,
        xs=xs,
        ys=ys,
        rows=rows,
        cols=cols,
        classes=candidates.classes[chosen],
        margins=candidates.margins[chosen],
        class_names=names,
        min_distance=cell,
        candidates=len(candidates.rows),
        warnings=tuple(warnings),
    )
