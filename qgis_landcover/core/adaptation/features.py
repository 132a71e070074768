# SPDX-License-Identifier: GPL-2.0-or-later
"""The model's own features at labelled pixels, and its map's class shares over an
extent: the two things adaptation needs from the imagery.

Labels are points in a CRS; each falls on one pixel of the model grid (the layer's
grid at the model's resolution, as :func:`~..inference.classify.classify` plans it).
The model runs over small windows around them, read, checked, filled and normalised
exactly as classification reads its tiles (:class:`~..inference.model_input.ModelInput`,
:class:`~..inference.normalization.Normalizer`), each window with the model's
``output_margin`` of context, so a label's features are those the classification sees.
Labels are grouped into square cells of one size for the whole run, chosen to read
the fewest pixels: one cell per label when they are sparse, shared cells when dense
(500 labels on a 768 x 512 px area: about 24 cells of 128 px, 1.6 Mpx read).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from osgeo import osr

from ..errors import InputError, ModelContractError
from ..inference.band_mapping import map_bands
from ..inference.image_source import Extent, ImageSource
from ..inference.model_grid import ModelGrid, plan_model_grid
from ..inference.model_input import ModelInput, prepare_input
from ..inference.normalization import Normalizer
from ..inference.session import ModelSession
from ..models.contract import FeaturesOutput
from ..progress import NullProgress, Progress, check_cancelled
from ..raster.grid import Window
from .head import neighbourhoods

CELL_SIZES = (16, 32, 64, 128, 256)
"""Output cell sides tried (pixels, before rounding the window to :data:`TILE_MULTIPLE`)."""
TILE_MULTIPLE = 32
"""Window sides are multiples of this (U-Nets halve the size several times)."""
BATCH_WINDOWS = 4
"""Windows per model call."""
AREA_TILES = 3
"""The class shares of the unadapted map are counted on up to AREA_TILES x AREA_TILES
model tiles spread evenly over the extent."""


@dataclass(frozen=True)
class LabelPoints:
    """Labelled points.

    Attributes:
        x, y: (n,) coordinates in ``crs_wkt``.
        values: (n,) class values as the model writes them (its ``class_values``).
        crs_wkt: the points' CRS as WKT; ``''`` for the raster's own CRS.
    """

    x: np.ndarray
    y: np.ndarray
    values: np.ndarray
    crs_wkt: str = ""

    def __post_init__(self) -> None:
        if not (len(self.x) == len(self.y) == len(self.values)):
            raise InputError("Label points need as many x, y and class values.")

    def __len__(self) -> int:
        return len(self.x)


@dataclass(frozen=True)
class LabelledFeatures:
    """The model's features and scores at the labelled pixels.

    Attributes:
        neighbourhood: float32 (n, channels * k * k) each label's neighbourhood
            features, flattened as the head's weight (:func:`~.head.neighbourhoods`).
        scores: float32 (n, classes) the unadapted model's scores there.
        pixels: (n, 2) int (row, col) of each label on the model grid (``grid``).
        cells: windows the model ran on; cell_size: their output side, pixels.
        seconds: time spent reading and running the model.
    """

    neighbourhood: np.ndarray
    scores: np.ndarray
    pixels: np.ndarray
    cells: int
    cell_size: int
    seconds: float


def require_features(session: ModelSession) -> FeaturesOutput:
    """The model's ``features_output``, or a :class:`ModelContractError` saying why a
    model without it cannot be adapted and how to get one that can."""
    features = session.contract.features_output
    if features is None:
        raise ModelContractError(
            f"The model {session.path.name} does not expose its penultimate features "
            "(metadata 'features_output', docs/model_contract.md), so its last layer cannot "
            "be re-fitted. Models converted or exported by model_training have it; add it "
            "to an exported model with: python -m model_training.export --add-features "
            "MODEL.onnx."
        )
    return features


def plan_reading(
    source: ImageSource,
    session: ModelSession,
    *,
    extent: Extent | None = None,
    bands: Sequence[int] | None = None,
    input_range: tuple[float, float] | None = None,
    progress: Progress | None = None,
) -> tuple[ModelGrid, ModelInput]:
    """The model grid over ``extent`` (all of the source for ``None``) and the input
    reader on it, as classification plans them (bands, resolution, value check)."""
    progress = progress or NullProgress()
    contract = session.contract
    mapping = map_bands(contract.band_names, source.bands(), bands, progress)
    source_grid = source.grid(contract.resolution_m, extent)
    layout = plan_model_grid(
        source_grid,
        contract.resolution_m,
        extent.bounds_in(source_grid.crs_wkt) if extent is not None else None,
        context=session.fixed_tile or contract.tile_size,
        progress=progress,
    )
    reader = source.reader(layout, mapping)
    model_input = prepare_input(
        reader,
        layout.window,
        contract,
        model=f"the model {session.path.name}",
        input_range=input_range,
        progress=progress,
    )
    return layout, model_input


def label_pixels(points: LabelPoints, layout: ModelGrid) -> np.ndarray:
    """(n, 2) int (row, col) of each point on ``layout.read_grid``.

    Raises:
        InputError: points outside the raster (or the extent), naming how many and the
            first of them.
    """
    grid = layout.read_grid
    x, y = np.asarray(points.x, np.float64), np.asarray(points.y, np.float64)
    if points.crs_wkt and grid.crs_wkt:
        source = osr.SpatialReference()
        source.ImportFromWkt(points.crs_wkt)
        target = osr.SpatialReference()
        target.ImportFromWkt(grid.crs_wkt)
        if not source.IsSame(target):
            for srs in (source, target):
                srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
            transform = osr.CoordinateTransformation(source, target)
            moved = np.asarray(transform.TransformPoints(np.column_stack([x, y])))
            x, y = moved[:, 0], moved[:, 1]
    x0, dx, _, y0, _, dy = grid.geotransform
    with np.errstate(invalid="ignore"):
        cols = np.floor((x - x0) / dx)
        rows = np.floor((y - y0) / dy)
    window = layout.window
    inside = (
        np.isfinite(cols)
        & np.isfinite(rows)
        & (cols >= window.col_off)
        & (cols < window.col_off + window.width)
        & (rows >= window.row_off)
        & (rows < window.row_off + window.height)
    )
    if not inside.all():
        first = int(np.flatnonzero(~inside)[0])
        raise InputError(
            f"{int((~inside).sum())} of {len(points)} labels lie outside the raster or the "
            f"extent (the first, label {first + 1}, at x={points.x[first]:.6g}, "
            f"y={points.y[first]:.6g}): remove them or check the labels' CRS."
        )
    return np.column_stack([rows, cols]).astype(np.int64)


def window_side(output: int, margin: int) -> int:
    """The input window side for an output cell of at least ``output`` pixels: output
    plus both margins, rounded up to :data:`TILE_MULTIPLE`."""
    return TILE_MULTIPLE * math.ceil((output + 2 * margin) / TILE_MULTIPLE)


def choose_cells(pixels: np.ndarray, margin: int, fixed_tile: int | None) -> tuple[int, dict]:
    """The output cell side that reads the fewest pixels, and the labels of each cell:
    ``{(cell_row, cell_col): [label indices]}``."""
    best: tuple[int, int, dict] | None = None
    sides = [fixed_tile] if fixed_tile else [window_side(s, margin) for s in CELL_SIZES]
    for side in sorted(set(sides)):
        cell = side - 2 * margin
        if cell <= 0:
            continue
        groups: dict[tuple[int, int], list[int]] = {}
        for index, (row, col) in enumerate(pixels):
            groups.setdefault((int(row) // cell, int(col) // cell), []).append(index)
        cost = len(groups) * side * side
        if best is None or cost < best[0]:
            best = (cost, cell, groups)
    if best is None:
        raise InputError(f"The model's output margin {margin} leaves no output in its tiles.")
    return best[1], best[2]


def _run(session: ModelSession, names: list[str], batch: np.ndarray) -> list[np.ndarray]:
    try:
        return session.session.run(names, {session.input_name: batch})
    except Exception as error:  # ORT raises its own (pybind) exception classes
        raise InputError(f"The model {session.path.name} failed on a window: {error}") from error


def extract_features(
    session: ModelSession,
    layout: ModelGrid,
    model_input: ModelInput,
    pixels: np.ndarray,
    progress: Progress | None = None,
) -> LabelledFeatures:
    """The features (``features_output``) and scores of the unadapted model at each
    labelled pixel (``pixels`` from :func:`label_pixels`).

    Raises:
        InputError: labels on pixels without data (naming how many and the first).
    """
    progress = progress or NullProgress()
    started = time.perf_counter()
    description = require_features(session)
    contract = session.contract
    margin = contract.output_margin
    cell, groups = choose_cells(pixels, margin, session.fixed_tile)
    side = cell + 2 * margin
    offset = margin - description.margin  # output pixel -> feature map pixel
    normalizer = Normalizer(contract)
    count = len(pixels)
    neighbourhood = np.zeros((count, description.neighbourhood_features), np.float32)
    scores = np.zeros((count, contract.num_classes), np.float32)
    invalid: list[int] = []
    keys = sorted(groups)
    progress.info(
        f"Reading the model's features at {count} labels: {len(keys)} windows of {side} px "
        f"(output cells of {cell} px)."
    )
    names = [session.output_name, description.name]
    for start in range(0, len(keys), BATCH_WINDOWS):
        check_cancelled(progress)
        chunk = keys[start : start + BATCH_WINDOWS]
        batch = np.empty((len(chunk), contract.num_bands, side, side), np.float32)
        for slot, (cell_row, cell_col) in enumerate(chunk):
            window = Window(cell_col * cell - margin, cell_row * cell - margin, side, side)
            raw, valid = model_input.read(window)
            batch[slot] = raw
            for index in groups[(cell_row, cell_col)]:
                row, col = pixels[index]
                if not valid[row - window.row_off, col - window.col_off]:
                    invalid.append(index)
        normalizer(batch)
        window_scores, features = _run(session, names, batch)
        for slot, (cell_row, cell_col) in enumerate(chunk):
            members = groups[(cell_row, cell_col)]
            rows = pixels[members, 0] - cell_row * cell
            cols = pixels[members, 1] - cell_col * cell
            neighbourhood[members] = neighbourhoods(
                features[slot], rows + offset, cols + offset, description.kernel_size
            )
            scores[members] = window_scores[slot][:, rows, cols].T
        progress.set_progress(100.0 * min(start + BATCH_WINDOWS, len(keys)) / len(keys))
    if invalid:
        first = min(invalid)
        raise InputError(
            f"{len(invalid)} of {count} labels fall on pixels without data (nodata, "
            f"transparent or 0 in every band), the first is label {first + 1}: remove them."
        )
    return LabelledFeatures(
        neighbourhood, scores, pixels, len(keys), cell, time.perf_counter() - started
    )


@dataclass(frozen=True)
class AreaSample:
    """The unadapted model over the extent, from a sample of its tiles.

    Attributes:
        shares: {channel: share of the map} over the argmax channels (sums to 1).
        neighbourhood: float32 (m, channels * k * k) neighbourhood features of up to
            :data:`AREA_PIXELS` valid pixels drawn at random from those tiles (the
            area's features: the metric of the pull toward the original head).
        tiles: tiles run.
    """

    shares: dict[int, float]
    neighbourhood: np.ndarray
    tiles: int


AREA_PIXELS = 2048
"""Pixels whose features represent the area (at most)."""


def sample_area(
    session: ModelSession,
    layout: ModelGrid,
    model_input: ModelInput,
    *,
    seed: int = 0,
    progress: Progress | None = None,
) -> AreaSample:
    """Run the unadapted model on up to :data:`AREA_TILES` x :data:`AREA_TILES` model
    tiles spread evenly over ``layout.window``: its map's class shares (valid pixels)
    and the features of a random sample of pixels."""
    progress = progress or NullProgress()
    description = require_features(session)
    contract = session.contract
    margin = contract.output_margin
    side = session.fixed_tile or contract.tile_size
    output = side - 2 * margin
    offset = margin - description.margin
    window = layout.window

    def starts(first: int, length: int) -> list[int]:
        if length <= output:
            return [first + (length - output) // 2]
        count = min(AREA_TILES, math.ceil(length / output))
        return [first + round(i * (length - output) / max(count - 1, 1)) for i in range(count)]

    origins = [(r, c) for r in starts(window.row_off, window.height)
               for c in starts(window.col_off, window.width)]  # fmt: skip
    per_tile = max(1, AREA_PIXELS // len(origins))
    generator = np.random.default_rng(seed)
    channels = contract.class_channels
    counts = np.zeros(contract.num_classes, np.int64)
    samples: list[np.ndarray] = []
    normalizer = Normalizer(contract)
    names = [session.output_name, description.name]
    for row, col in origins:
        check_cancelled(progress)
        raw, valid = model_input.read(Window(col - margin, row - margin, side, side))
        inner = valid[margin : margin + output, margin : margin + output].copy()
        # Only pixels of the extent count (a tile may reach past it).
        rows_in = np.arange(row, row + output)
        cols_in = np.arange(col, col + output)
        inner &= ((rows_in >= window.row_off) & (rows_in < window.row_off + window.height))[:, None]
        inner &= ((cols_in >= window.col_off) & (cols_in < window.col_off + window.width))[None]
        if not inner.any():
            continue
        batch = normalizer(raw[None].copy())
        tile_scores, features = _run(session, names, batch)
        classes = np.asarray(channels)[tile_scores[0][channels].argmax(axis=0)]
        counts += np.bincount(classes[inner], minlength=contract.num_classes)
        r, c = np.nonzero(inner)
        pick = generator.choice(len(r), size=min(per_tile, len(r)), replace=False)
        samples.append(
            neighbourhoods(features[0], r[pick] + offset, c[pick] + offset, description.kernel_size)
        )
    total = counts[channels].sum()
    if total == 0:
        raise InputError("The extent holds no valid pixels to measure the map's class shares.")
    return AreaSample(
        {c: float(counts[c] / total) for c in channels}, np.concatenate(samples), len(origins)
    )
