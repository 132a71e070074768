# SPDX-License-Identifier: GPL-2.0-or-later
"""What the model reads: the layer's raw values, checked against the input the model
expects (its contract's ``input_dtype`` / ``input_range``), rescaled when the user asks,
with the pixels without data filled so that they do not disturb their valid neighbours.

**Values.** Before anything is written, a sample of the extent (a grid of small windows,
read through the same reader as the classification; no statistics are computed or
stored by GDAL) is compared with the range the model expects. Values outside it, or
values far too small for it (e.g. reflectance 0-1 given to an 8-bit model), stop the
run with a message saying what was found and what to do; an explicit rescaling
(``INPUT_RANGE``: the layer's ``low,high`` mapped linearly onto the model's range,
clipped) is the documented way to feed other data. When the sample holds too few valid
pixels, the check goes on over the pixels the run reads.

**Pixels without data** (nodata, transparent, masked or 0 in every band) keep their
place in the output as nodata, but the model still sees them around valid pixels. They
are filled by mirroring the nearest valid pixels: along the row or column in which a
valid pixel is nearest, the pixel at distance ``d`` from it takes the value of the pixel
``d`` beyond it (the reflection that pads the raster's edges), or the nearest valid
pixel's own value when that one has no data too. Pixels farther than
:data:`FILL_DISTANCE` from any valid pixel in their row and column take a neutral
constant (the middle of the model's input range). Mirroring was chosen by measurement
(the 2018 model on the shipped mosaic with parts of it nodata, docs/model_contract.md):
of the valid pixels within 16 px of nodata, 95-100 % keep the class of the run without
nodata, against 62-85 % with the former black fill; a constant or the nearest pixel's
value did no better than mirroring in any case tried, and worse in most.

The fill of a pixel depends only on pixels within ``2 * FILL_DISTANCE`` of it in its
row and column (and on the raster's edges, reflected), so strips are filled with that
much context read around them: the result does not depend on how the work is split.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from ..models.contract import InputExpectation, ModelContract
from ..progress import NullProgress, Progress
from ..raster.grid import Grid, Window
from .image_source import ImageReader, read_padded

FILL_DISTANCE = 128
"""Pixels farther than this (in their row and column) from a valid pixel take the
neutral constant instead of mirrored values."""
FILL_CONTEXT = 2 * FILL_DISTANCE
"""Pixels read around a strip with invalid pixels, so that its fill is exact."""
SAMPLE_GRID = 4
"""The value check samples SAMPLE_GRID x SAMPLE_GRID windows spread over the extent,"""
SAMPLE_SIZE = 64
"""each of SAMPLE_SIZE x SAMPLE_SIZE pixels (at most 65,536 pixels in all)."""
MIN_SAMPLE_PIXELS = 1024
"""Valid pixels the check needs before it decides."""
OUT_OF_RANGE_LIMIT = 0.01
"""Share of sampled values outside the range above which the run stops; below it (and
above 0), a warning."""
SMALL_FRACTION = 1 / 64
"""Values that all stay within this share of the range from its low end are taken for
data on another scale (reflectance 0-1 given to a 0-255 model)."""


# --------------------------------------------------------------------------- rescaling


def parse_value_range(text: str | None) -> tuple[float, float] | None:
    """``'0,10000'`` -> ``(0.0, 10000.0)``; empty -> ``None``.

    Raises:
        InputError: not two numbers, or low >= high.
    """
    if text is None or not str(text).strip():
        return None
    parts = [p.strip() for p in str(text).replace(";", ",").split(",")]
    try:
        low, high = (float(p) for p in parts)
    except ValueError:
        raise InputError(
            f"The input range (INPUT_RANGE) {text!r} must be two numbers 'low,high', e.g. 0,10000."
        ) from None
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise InputError(
            f"The input range (INPUT_RANGE) {text!r} must have low < high, e.g. 0,10000."
        )
    return low, high


@dataclass(frozen=True)
class Rescale:
    """The layer's ``source`` range mapped linearly onto the model's ``target`` range;
    values beyond it are clipped to the target's ends."""

    source: tuple[float, float]
    target: tuple[float, float]

    def __call__(self, raw: np.ndarray) -> np.ndarray:
        """Rescale float32 ``raw`` in place; return it."""
        (s0, s1), (t0, t1) = self.source, self.target
        gain = (t1 - t0) / (s1 - s0)
        raw *= np.float32(gain)
        raw += np.float32(t0 - s0 * gain)
        np.clip(raw, t0, t1, out=raw)
        return raw


# --------------------------------------------------------------------------- value check


@dataclass
class ValueStats:
    """Valid raw values seen so far, against a range (counts are of band values)."""

    pixels: int = 0
    values: int = 0
    outside: int = 0
    low: float = math.inf
    high: float = -math.inf

    def add(
        self, raw: np.ndarray, valid: np.ndarray, value_range: tuple[float, float] | None
    ) -> None:
        """Count the valid pixels of raw (bands, rows, cols)."""
        picked = raw[:, valid]
        if picked.size == 0:
            return
        self.pixels += int(np.count_nonzero(valid))
        self.values += picked.size
        self.low = min(self.low, float(picked.min()))
        self.high = max(self.high, float(picked.max()))
        if value_range is not None:
            self.outside += int(
                np.count_nonzero((picked < value_range[0]) | (picked > value_range[1]))
            )


class InputCheck:
    """Compares the layer's valid raw values with the range the model accepts and stops
    the run (:class:`InputError`) when they do not fit; see the module's docstring.

    Args:
        expectation: the model's expected input, or ``None`` when it declares none.
        data_type: numpy name of the layer's data type, or ``None`` when unknown.
        rescale: the user's rescaling: values are then checked against its source range.
        model: how messages name the model.
    """

    def __init__(
        self,
        expectation: InputExpectation | None,
        data_type: str | None,
        rescale: Rescale | None,
        model: str,
        progress: Progress | None = None,
    ) -> None:
        self.expectation = expectation
        self.data_type = data_type
        self.rescale = rescale
        self.model = model
        self.progress = progress or NullProgress()
        self.accepted = (
            rescale.source
            if rescale is not None
            else (expectation.value_range if expectation is not None else None)
        )
        self.stats = ValueStats()
        self.decided = False

    def add(self, raw: np.ndarray, valid: np.ndarray, *, decide: bool = True) -> None:
        """Take raw (bands, rows, cols) values and their validity into account; with
        ``decide``, decide once enough valid pixels were seen."""
        if self.decided:
            return
        self.stats.add(raw, valid, self.accepted)
        if decide and self.stats.pixels >= MIN_SAMPLE_PIXELS:
            self.decide()

    def finish(self) -> None:
        """Decide with the pixels seen, however few (the end of a run)."""
        if not self.decided and self.stats.pixels > 0:
            self.decide()

    def decide(self) -> None:
        """Raise :class:`InputError` when the values do not fit; report otherwise."""
        self.decided = True
        stats, expectation = self.stats, self.expectation
        layer = f"data type {self.data_type}" if self.data_type else "data type unknown"
        found = f"{stats.low:g} to {stats.high:g}"
        if self.accepted is None:
            self.progress.info(
                f"The model does not declare the input it expects (metadata 'input_range'): "
                f"the layer's values ({layer}, sampled {found}) are not checked."
            )
            return
        low, high = self.accepted
        accepted = f"{low:g}-{high:g}"
        # Without INPUT_RANGE, ``accepted`` came from the model's expectation.
        if self.rescale is not None or expectation is None:
            wanted = f"the input range {accepted} given (INPUT_RANGE)"
        else:
            wanted = (
                f"{self.model} expects {expectation.dtype} values {accepted} ({expectation.origin})"
            )
        share = stats.outside / stats.values
        advice = (
            "Rescale them with the advanced parameter 'Rescale input from range' "
            "(INPUT_RANGE): the range of the layer's values that corresponds to the "
            f"model's {accepted}, e.g. INPUT_RANGE={suggested_range(stats.low, stats.high)} "
            "(0,1 for reflectance 0-1, 0,10000 for reflectance x 10000), or use imagery "
            "of the kind the model was made for."
        )
        if self.rescale is not None:
            advice = "Give INPUT_RANGE the range the layer's values really span."
        if share > OUT_OF_RANGE_LIMIT:
            raise InputError(
                f"The layer's values do not fit the model: {share:.1%} of the sampled valid "
                f"values lie outside {accepted} (found {found}, {layer}), but {wanted}. " + advice
            )
        if stats.high <= low + SMALL_FRACTION * (high - low):
            raise InputError(
                f"The layer's values are far too small for the model: the sampled valid "
                f"values reach only {stats.high:g} ({layer}), but {wanted}; they look like "
                "data on another scale (e.g. reflectance 0-1 instead of 8-bit values). " + advice
            )
        if share > 0:
            what = "clipped to it" if self.rescale is not None else "used as they are"
            self.progress.warning(
                f"{share:.2%} of the sampled valid values lie outside {accepted} (found "
                f"{found}); they are {what}."
            )
        if (
            self.rescale is None
            and expectation is not None
            and self.data_type is not None
            and self.data_type != expectation.dtype
        ):
            self.progress.info(
                f"The layer's data type is {self.data_type}, the model's {expectation.dtype}; "
                f"its values (sampled {found}) fit the model's range {accepted}."
            )


COMMON_MAXIMA = (1, 100, 255, 1023, 2047, 4095, 10000, 16383, 65535)
"""Upper ends of common value ranges (reflectance, percent, 8 to 16 bits), for advice."""


def suggested_range(low: float, high: float) -> str:
    """A plausible ``INPUT_RANGE`` for values sampled between ``low`` and ``high``:
    0 to the smallest common maximum above ``high``, or the sampled range."""
    if low >= 0:
        upper = next((m for m in COMMON_MAXIMA if high <= m), None)
        if upper is not None:
            return f"0,{upper}"
    return f"{math.floor(low):g},{math.ceil(high):g}"


def sample_windows(window: Window) -> list[Window]:
    """Up to :data:`SAMPLE_GRID` squared windows of at most :data:`SAMPLE_SIZE` pixels
    spread evenly over ``window`` (corners included), without duplicates."""
    width, height = min(SAMPLE_SIZE, window.width), min(SAMPLE_SIZE, window.height)

    def offsets(start: int, length: int, size: int) -> list[int]:
        free = length - size
        return sorted({start + free * i // (SAMPLE_GRID - 1) for i in range(SAMPLE_GRID)})

    return [
        Window(col, row, width, height)
        for row in offsets(window.row_off, window.height, height)
        for col in offsets(window.col_off, window.width, width)
    ]


# --------------------------------------------------------------------------- nodata fill


_FAR = 2**30
"""Distance standing for "no valid pixel in this row / column"."""
_PASS_ROWS = 128
"""Rows (or columns) a fill pass handles at once."""


def _mirror_sources(valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Along the last axis of ``valid`` (rows, n): for every pixel, the column its fill
    comes from and the distance to the nearest valid pixel (:data:`_FAR` when none).

    The nearest valid pixel ``a`` (the left one on a tie) is the anchor; the source is
    its mirror ``2a - c`` when that pixel lies in the row and is valid, else ``a``.
    """
    n = valid.shape[-1]
    index = np.arange(n, dtype=np.int32)
    left = np.where(valid, index, np.int32(-1))
    np.maximum.accumulate(left, axis=-1, out=left)
    right = np.where(valid, index, np.int32(n))[..., ::-1]
    right = np.minimum.accumulate(right, axis=-1)[..., ::-1]
    far = np.int32(_FAR)
    to_left = np.where(left >= 0, index - left, far)
    to_right = np.where(right < n, right - index, far)
    use_left = to_left <= to_right
    anchor = np.where(use_left, left, right)
    np.clip(anchor, 0, n - 1, out=anchor)
    mirror = 2 * anchor - index
    inside = (mirror >= 0) & (mirror < n)
    np.clip(mirror, 0, n - 1, out=mirror)
    usable = inside & np.take_along_axis(valid, mirror, axis=-1)
    return np.where(usable, mirror, anchor), np.minimum(to_left, to_right)


def _mirror_pass(valid: np.ndarray, keep: slice) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_mirror_sources` of each row of ``valid``, columns ``keep`` of the result
    only, computed :data:`_PASS_ROWS` rows at a time so that its temporaries stay small
    (about 40 bytes per pixel of a chunk)."""
    rows = valid.shape[0]
    width = len(range(*keep.indices(valid.shape[1])))
    sources = np.empty((rows, width), dtype=np.int32)
    distances = np.empty((rows, width), dtype=np.int32)
    for start in range(0, rows, _PASS_ROWS):
        chunk = slice(start, min(start + _PASS_ROWS, rows))
        source, distance = _mirror_sources(valid[chunk])
        sources[chunk], distances[chunk] = source[:, keep], distance[:, keep]
    return sources, distances


def mirror_fill(
    raw: np.ndarray,
    valid: np.ndarray,
    fallback: Sequence[float] | np.ndarray,
    distance: int = FILL_DISTANCE,
    margin: int = 0,
) -> np.ndarray:
    """Fill the invalid pixels of the centre of raw (bands, rows, cols), ``margin``
    pixels in from each side, by mirroring the nearest valid pixels (see the module's
    docstring), in place; return that centre (a view of ``raw``).

    Each invalid pixel takes its row's fill when a valid pixel is at least as near in
    its row as in its column, else its column's; pixels with no valid pixel within
    ``distance`` in either take ``fallback`` (one value per band). The margin is
    context: it is read, never filled; the centre's fill is exact when the margin is at
    least ``2 * distance``.
    """
    rows, cols = valid.shape
    centre_rows, centre_cols = slice(margin, rows - margin), slice(margin, cols - margin)
    centre = raw[:, centre_rows, centre_cols]
    invalid = ~valid[centre_rows, centre_cols]
    if not invalid.any():
        return centre
    # Row pass over the centre's rows (whole width), column pass over its columns.
    row_source, row_distance = _mirror_pass(valid[centre_rows, :], centre_cols)
    col_source, col_distance = _mirror_pass(valid[:, centre_cols].T, centre_rows)
    col_source, col_distance = col_source.T, col_distance.T
    use_row = (row_distance <= col_distance)[invalid]
    reached = (np.minimum(row_distance, col_distance) <= distance)[invalid]
    at_rows, at_cols = np.nonzero(invalid)
    source_rows = np.where(use_row, at_rows + margin, col_source[invalid])
    source_cols = np.where(use_row, row_source[invalid], at_cols + margin)
    fallback = np.asarray(fallback, dtype=raw.dtype)
    for band in range(raw.shape[0]):
        # Sources are valid pixels, never among those written.
        values = raw[band][source_rows, source_cols]
        centre[band][at_rows, at_cols] = np.where(reached, values, fallback[band])
    return centre


def neutral_values(contract: ModelContract) -> np.ndarray:
    """Raw value per band for pixels far from any valid one: the middle of the model's
    expected input range, or where the range is unknown, the value the normalisation
    takes to 0 (the standardisation mean, or 0)."""
    bands = contract.num_bands
    expectation = contract.expected_input()
    if expectation is not None and expectation.value_range is not None:
        low, high = expectation.value_range
        return np.full(bands, (low + high) / 2, dtype=np.float32)
    mean = np.broadcast_to(
        np.asarray(contract.standardization_mean or [0.0], dtype=np.float64), (bands,)
    )
    return (mean / contract.input_scale).astype(np.float32)


# --------------------------------------------------------------------------- reading


class ModelInput:
    """Reads windows of a reader for the model: padded by reflection past the grid,
    checked, rescaled and with invalid pixels filled.

    Args:
        reader: the layer on the model grid.
        fallback: per-band raw value for pixels far from valid ones
            (:func:`neutral_values`).
        rescale: the user's rescaling, or ``None``.
        check: the value check still to decide during the run, or ``None``.
    """

    def __init__(
        self,
        reader: ImageReader,
        fallback: Sequence[float] | np.ndarray,
        rescale: Rescale | None = None,
        check: InputCheck | None = None,
    ) -> None:
        self.reader = reader
        self.fallback = np.asarray(fallback, dtype=np.float32)
        self.rescale = rescale
        self.check = check

    @property
    def grid(self) -> Grid:
        return self.reader.grid

    def _read(self, window: Window, check: bool) -> tuple[np.ndarray, np.ndarray]:
        raw, valid = read_padded(self.reader, window)
        if check and self.check is not None and not self.check.decided:
            self.check.add(raw, valid)
        if self.rescale is not None:
            raw = self.rescale(raw if raw.flags.writeable else raw.copy())
        return raw, valid

    def read(self, window: Window) -> tuple[np.ndarray, np.ndarray]:
        """Raw values (bands, rows, cols) float32 ready to normalise, invalid pixels
        filled, and the validity (rows, cols) of ``window``, which may reach past the
        grid (reflected). A window without any valid pixel is returned unfilled: the
        model never runs on it."""
        raw, valid = self._read(window, check=True)
        if valid.all() or not valid.any():
            return raw, valid  # nothing to fill, or no tile of it will run
        # Read again with the context the fill needs; only strips with invalid pixels.
        c = FILL_CONTEXT
        grown = Window(
            window.col_off - c, window.row_off - c, window.width + 2 * c, window.height + 2 * c
        )
        context, context_valid = self._read(grown, check=False)
        if not context.flags.writeable:
            context = context.copy()
        return mirror_fill(context, context_valid, self.fallback, margin=c), valid

    def finish(self, progress: Progress) -> None:
        """Decide the value check with all pixels read, if it has not decided yet, and
        pass on what it reported during the run (it ran in the reader's thread)."""
        if self.check is None:
            return
        self.check.finish()
        recorded = self.check.progress
        if isinstance(recorded, NullProgress):
            for message in recorded.messages:
                progress.info(message)
            for message in recorded.warnings:
                progress.warning(message)


def prepare_input(
    reader: ImageReader,
    window: Window,
    contract: ModelContract,
    *,
    model: str,
    input_range: tuple[float, float] | None = None,
    progress: Progress | None = None,
) -> ModelInput:
    """Check a sample of ``window`` against the model's expected input (raising
    :class:`InputError` when it does not fit) and return the :class:`ModelInput` that
    feeds the model.

    Args:
        input_range: the user's rescaling source range (the layer's values mapped onto
            the model's range), or ``None``.
        model: how messages name the model.
    """
    progress = progress or NullProgress()
    expectation = contract.expected_input()
    rescale = None
    if input_range is not None:
        if expectation is None or expectation.value_range is None:
            raise InputError(
                f"{model} does not declare the range of input values it expects (metadata "
                "'input_range'), so the input cannot be rescaled to it (INPUT_RANGE); "
                "leave INPUT_RANGE empty."
            )
        rescale = Rescale(input_range, expectation.value_range)
        progress.info(
            f"Input values {input_range[0]:g}-{input_range[1]:g} are rescaled to the model's "
            f"{expectation.range_text} (values beyond are clipped)."
        )
    check = InputCheck(
        expectation, getattr(reader, "data_type", None), rescale, model, progress=progress
    )
    for sample in sample_windows(window):
        raw, valid = reader.read(sample)
        check.add(raw, valid, decide=False)
    release = getattr(reader, "release", None)
    if release is not None:
        release()
    if check.stats.pixels >= MIN_SAMPLE_PIXELS:
        check.decide()
        return ModelInput(reader, neutral_values(contract), rescale)
    # Too few valid pixels in the sample: decide over the pixels the run reads, in the
    # reader's thread; its messages are recorded and passed on at the end.
    check.progress = NullProgress()
    return ModelInput(reader, neutral_values(contract), rescale, check)
