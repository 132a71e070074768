# SPDX-License-Identifier: GPL-2.0-or-later
"""How a classification is sized: the tile size, the overlap, the batch size, and the
memory they need.

- tile: the one asked for if the graph accepts it; else, for a model with a free input
  size and an output margin, the tile that computes the fewest input pixels for the
  extent within :data:`TILE_MEMORY_BUDGET` (:func:`choose_tile_size`: margins cost
  less on larger tiles, and tiles run twice where they straddle two stripes); else the
  model's own (metadata ``tile_size``); for models with a free input size capped to
  what the extent needs;
- stripe width: the one asked for, else (:func:`automatic_stripe_width`) a multiple of
  the tile stride, so that without overlap no tile straddles two stripes (it would
  run once for each), near :data:`CPU_STRIPE_WIDTH` on the CPU (memory) and
  :data:`~.tile_plan.DEFAULT_STRIPE_WIDTH` on a GPU;
- overlap: the one asked for, else the model's ``tiles_overlap``, at most
  :data:`~.tile_plan.MAX_OVERLAP_PERCENT`;
- batch: 4 tiles per model call on the CPU (fewer when they do not fit
  :data:`TILE_MEMORY_BUDGET`), 16 on a GPU (or the graph's fixed batch),
  within a memory limit (by default half of the machine's memory): the pipeline's
  arrays and the model's working memory are estimated term by term
  (:func:`pipeline_memory_bytes`); an automatic batch is lowered to fit, a batch or
  tile asked for that does not fit is refused naming one that does.
"""

from __future__ import annotations

import ctypes
import math
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import InputError
from ..progress import Progress
from ..raster.grid import Window
from ..units import format_bytes
from .session import CPU, ModelSession
from .tile_plan import (
    DEFAULT_STRIPE_WIDTH,
    MAX_OVERLAP_PERCENT,
    STRIPE_ALIGN,
    Stripe,
    TilePlan,
    plan_tiles,
)

if TYPE_CHECKING:
    from .pipeline import ClassifyOptions

CPU_BATCH_SIZE = 4
GPU_BATCH_SIZE = 16
QUEUE_DEPTH = 2
"""Batches waiting between two stages of the pipeline (read -> model -> write)."""
MEMORY_FRACTION = 0.5
"""Share of the machine's physical memory the pipeline's arrays may use by default."""
UNKNOWN_MEMORY_LIMIT = 8 * 2**30
"""Memory limit, bytes, where the machine's physical memory cannot be read."""
MODEL_WORKSPACE_FACTOR = 100
"""ONNX Runtime's working memory on the CPU (the network's activations) per byte of a
batch's input, with memory patterns off (:mod:`.session`), for fp32 models. With it the
estimate (:func:`pipeline_memory_bytes`) plus what the process holds before the run
(about 180 MiB: Python, GDAL, ONNX Runtime, the model and its probe run) bounds the
peaks measured with the shipped 2018 U-Net (whole runs on a 2048 x 2048 px VRT, fresh
processes, batch 1, stripes of 1024 px, VmHWM): 468 MiB estimated for 427-432 measured
at 384 px, 684 for 583 at 512 px (ONNX Runtime alone, one 512 px tile: 79 times the
input with the arena off, 140 with ORT's defaults). Other networks differ; this keeps
the estimate of the memory a batch needs from being a tenth of it."""
INT8_WORKSPACE_FACTOR = 28
"""The same for int8 (QDQ) variants (metadata ``provenance.precision`` ``"int8"``),
whose convolutions keep uint8 activations: estimate + 180 MiB against measured peaks of
the shipped int8 variant (same runs): 396 for 320 MiB at 512 px, 509 for 409-424 at
640 px, 645 for 550 at 768 px."""
TILE_MEMORY_BUDGET = 360 * 2**20
"""Bytes the pipeline's estimate (:func:`pipeline_memory_bytes`, for the full stripe
width, whatever the extent, so a large extent gets no larger tile than a small one)
may reach with a tile and batch chosen automatically (at most the memory limit): keeps
a run's peak memory small and flat on a laptop. With the 2018 U-Net (4 bands, 5
classes, margin 64) and automatic stripes it admits 384 px fp32 tiles (estimate
288 MiB; 416 px would need stripes of 2304 px: 387 MiB) and 640 px int8 tiles
(329 MiB; 672 px: 361 MiB), whose runs peak at 427-432 MiB (fp32) and 409-424 MiB
(int8; 421 MiB on an 8192 x 8192 px VRT)."""
CPU_STRIPE_WIDTH = 1024
"""Target width, pixels, of the automatic stripes on the CPU: the blending buffers of
4096 px stripes added about 160 MiB to a run with 768 px int8 tiles (707 against
550 MiB peak), at no measurable speed gain."""
MAX_AUTO_TILE = 4096
"""Largest tile side, pixels, tried by the automatic choice."""
AUTO_TILE_ALIGN = 32
"""Tiles chosen automatically are multiples of this (U-Nets halving their input five
times need it; the 2018 U-Net needs multiples of 8)."""
MAX_TILE_ALIGN = 256
"""A tile capped to the extent keeps the power-of-two factor of the requested size,
up to this (networks that halve the tile k times need multiples of 2**k)."""


def checked_tile_size(session: ModelSession, requested: int | None) -> int:
    """The tile size to use: the model's, or ``requested`` if the model accepts it."""
    contract = session.contract
    if not requested:
        return contract.tile_size
    if session.fixed_tile is not None and requested != session.fixed_tile:
        raise InputError(
            f"The model {session.path.name} only accepts tiles of {session.fixed_tile} pixels; "
            f"a tile size of {requested} cannot be used."
        )
    if requested <= 2 * contract.output_margin:
        raise InputError(
            f"A tile size of {requested} is too small: the model crops "
            f"{contract.output_margin} pixels from each side."
        )
    return requested


def effective_batch_size(session: ModelSession, requested: int) -> int:
    """Tiles per model call: the graph's fixed batch, else ``requested``, else 4 on the
    CPU and 16 on a GPU."""
    if session.fixed_batch is not None:
        return session.fixed_batch
    if requested > 0:
        return requested
    return CPU_BATCH_SIZE if session.provider == CPU else GPU_BATCH_SIZE


@dataclass(frozen=True)
class TileChoice:
    """A tile size chosen for an extent, and what it costs.

    Attributes:
        tile_size: model input side, pixels.
        tile_count: tiles over the extent.
        computed_pixels: input pixels the model runs on (``tile_count * tile_size**2``).
        output_pixels: pixels of the extent.
        largest_fitting: the largest candidate tile within the memory budget, pixels.
    """

    tile_size: int
    tile_count: int
    computed_pixels: int
    output_pixels: int
    largest_fitting: int

    @property
    def overhead_share(self) -> float:
        """Share of the model's compute spent on margins, overlaps and padding past the
        extent (0-1)."""
        return 1.0 - self.output_pixels / self.computed_pixels


def choose_tile_size(
    *,
    margin: int,
    width: int,
    height: int,
    overlap_percent: float,
    fits: Callable[[int], bool],
    stripe_width: Callable[[TilePlan], int] | None = None,
    align: int = AUTO_TILE_ALIGN,
) -> TileChoice:
    """The tile, a multiple of ``align`` with output beyond the margins, that runs the
    model on the fewest input pixels for a ``width`` x ``height`` extent (tiles run,
    times the tile's area: the network's cost is proportional to it), among those
    ``fits(tile)`` accepts (memory; not monotonic when the stripe width depends on the
    tile) and no larger than the smallest one covering the extent nor
    :data:`MAX_AUTO_TILE`. Tiles run are those of :func:`~.tile_plan.plan_tiles`, per
    stripe of ``stripe_width(plan)`` pixels when given (a tile straddling two stripes
    runs in both). Ties go to the smaller tile (less memory).

    Raises:
        InputError: when not even the smallest tile fits.
    """
    smallest = align * ((2 * margin) // align + 1)
    covering = -(-(max(width, height) + 2 * margin) // align) * align
    best: TileChoice | None = None
    largest = 0
    for tile in range(smallest, max(smallest, min(covering, MAX_AUTO_TILE)) + 1, align):
        if not fits(tile):
            continue
        largest = tile
        plan = plan_tiles(width, height, tile, margin, overlap_percent)
        count = plan.tile_count
        if stripe_width is not None:
            stripes = plan.stripes(stripe_width(plan))
            count = len(plan.ys) * sum(len(s.tile_cols) for s in stripes)
        computed = count * tile * tile
        if best is None or computed < best.computed_pixels:
            best = TileChoice(tile, count, computed, width * height, 0)
    if best is None:
        raise InputError(
            f"Not even one tile of {smallest} px (the smallest with output beyond the "
            f"model's margin of {margin} px) fits in memory."
        )
    return TileChoice(
        best.tile_size, best.tile_count, best.computed_pixels, best.output_pixels, largest
    )


def automatic_stripe_width(stride: int, target: int) -> int:
    """The widest stripe, pixels, that is a multiple of both the tile ``stride`` and
    :data:`~.tile_plan.STRIPE_ALIGN` (the output's block size) and at most ``target``
    (at least one such multiple); ``target`` itself when that multiple is wider than
    :data:`~.tile_plan.DEFAULT_STRIPE_WIDTH` (tiles then straddle stripes).

    Stripe boundaries fall on multiples of the stripe width and tiles without overlap
    start at multiples of the stride, so no tile (but the last of a row, aligned to the
    extent's end) straddles a boundary and runs twice."""
    common = math.lcm(stride, STRIPE_ALIGN)
    if common > DEFAULT_STRIPE_WIDTH:
        return target
    return max(1, target // common) * common


def stripe_width_for(session: ModelSession, options: ClassifyOptions, plan: TilePlan) -> int:
    """The stripe width for ``plan``: ``options.stripe_width`` when set, else
    :func:`automatic_stripe_width` near :data:`CPU_STRIPE_WIDTH` on the CPU (memory)
    or :data:`~.tile_plan.DEFAULT_STRIPE_WIDTH` on a GPU."""
    if options.stripe_width:
        return options.stripe_width
    target = CPU_STRIPE_WIDTH if session.provider == CPU else DEFAULT_STRIPE_WIDTH
    return automatic_stripe_width(plan.stride, target)


def automatic_tile_size(
    session: ModelSession,
    options: ClassifyOptions,
    window: Window,
    overlap_percent: float,
    progress: Progress,
) -> int | None:
    """:func:`choose_tile_size` for a model with a free input size and an output margin
    (where larger tiles waste less) when no tile size was asked for, within
    :data:`TILE_MEMORY_BUDGET` and the memory limit, logged with its reason; ``None``
    otherwise (the model's own tile size is used)."""
    contract = session.contract
    if options.tile_size or session.fixed_tile is not None or contract.output_margin <= 0:
        return None
    limit, _ = memory_limit(options)
    budget = min(limit, TILE_MEMORY_BUDGET)
    batch = session.fixed_batch or 1

    def stripe_width(plan: TilePlan) -> int:
        return stripe_width_for(session, options, plan)

    def fits(tile: int) -> bool:
        # The stripe for this tile over the widest extent (memory must not grow with it).
        plan = plan_tiles(DEFAULT_STRIPE_WIDTH, tile, tile, contract.output_margin, overlap_percent)
        needed = session_memory_bytes(
            session,
            tile_size=tile,
            margin=contract.output_margin,
            batch_size=batch,
            stripe_width=stripe_width(plan),
        )
        return needed <= budget

    choice = choose_tile_size(
        margin=contract.output_margin,
        width=window.width,
        height=window.height,
        overlap_percent=overlap_percent,
        fits=fits,
        stripe_width=stripe_width,
    )
    progress.info(
        f"Tile size {choice.tile_size} px chosen for the model's margin of "
        f"{contract.output_margin} px per side (metadata 'tile_size' {contract.tile_size} px): "
        f"the fewest pixels computed for this {window.width} x {window.height} px extent among "
        f"multiples of {AUTO_TILE_ALIGN} px up to {choice.largest_fitting} px (the largest "
        f"within {format_bytes(budget)} of memory); {choice.tile_count} tiles, "
        f"{choice.overhead_share:.0%} of the model's compute on margins, overlaps and padding "
        f"(memory estimate {workspace_label(session)}). Set TILE_SIZE to override."
    )
    return choice.tile_size


def tile_size_for_window(
    session: ModelSession, requested: int | None, window: Window, progress: Progress
) -> int:
    """The tile size for classifying ``window``: :func:`checked_tile_size`, capped for
    models with a free input size to the smallest tile whose output covers the whole
    window (a larger one would only add reflected padding, and memory).

    The capped tile stays a multiple of the largest power of two dividing the requested
    one (at most :data:`MAX_TILE_ALIGN`), so networks that halve it keep working.
    """
    tile = checked_tile_size(session, requested)
    if session.fixed_tile is not None:
        return tile
    align = min(tile & -tile, MAX_TILE_ALIGN)  # largest power of two dividing tile
    needed = max(window.width, window.height) + 2 * session.contract.output_margin
    capped = -(-needed // align) * align
    if capped >= tile:
        return tile
    progress.info(
        f"Tiles of {tile} px are larger than the {window.width} x {window.height} px extent "
        f"needs (with the model's margin of {session.contract.output_margin} px per side): "
        f"tiles of {capped} px are used."
    )
    return capped


def planned_overlap(session: ModelSession, requested: float | None, progress: Progress) -> float:
    """The overlap between output tiles, percent: ``requested`` (checked by
    :func:`~.tile_plan.plan_tiles`), else the model's metadata ``tiles_overlap``, used at
    :data:`~.tile_plan.MAX_OVERLAP_PERCENT` when it is larger."""
    if requested is not None:
        return requested
    overlap = session.contract.tiles_overlap_percent
    if overlap > MAX_OVERLAP_PERCENT:
        progress.info(
            f"The model's tile overlap of {overlap:g} % (metadata 'tiles_overlap') is above "
            f"{MAX_OVERLAP_PERCENT:g} %: {MAX_OVERLAP_PERCENT:g} % is used."
        )
        return MAX_OVERLAP_PERCENT
    return overlap


def session_memory_bytes(
    session: ModelSession, *, tile_size: int, margin: int, batch_size: int, stripe_width: int
) -> int:
    """:func:`pipeline_memory_bytes` for ``session``'s model: its bands and classes, and
    ONNX Runtime's working memory counted only on the CPU (on a GPU it is the GPU's)."""
    contract = session.contract
    return pipeline_memory_bytes(
        tile_size=tile_size,
        margin=margin,
        bands=contract.num_bands,
        classes=contract.num_classes,
        batch_size=batch_size,
        stripe_width=stripe_width,
        workspace_factor=workspace_factor(session),
    )


def is_int8(session: ModelSession) -> bool:
    """Whether the model is an int8 variant (metadata ``provenance.precision``)."""
    return session.contract.provenance.get("precision") == "int8"


def workspace_factor(session: ModelSession) -> float:
    """ONNX Runtime's working memory per byte of input counted for ``session``:
    :data:`INT8_WORKSPACE_FACTOR` or :data:`MODEL_WORKSPACE_FACTOR` on the CPU, 0 on a
    GPU (that memory is the GPU's)."""
    if session.provider != CPU:
        return 0.0
    return INT8_WORKSPACE_FACTOR if is_int8(session) else MODEL_WORKSPACE_FACTOR


def workspace_label(session: ModelSession) -> str:
    """How the model's working memory is counted, for the log."""
    if session.provider != CPU:
        return "without the model's working memory, on the GPU"
    kind = "int8" if is_int8(session) else "fp32"
    return f"with {workspace_factor(session):g} times the input for {kind} activations"


def pipeline_memory_bytes(
    *,
    tile_size: int,
    margin: int,
    bands: int,
    classes: int,
    batch_size: int,
    stripe_width: int,
    workspace_factor: float = MODEL_WORKSPACE_FACTOR,
) -> int:
    """Bytes of memory the pipeline needs at once, estimated: its own arrays, at most,
    plus the model's working memory as ``workspace_factor`` times the bytes of one
    batch's inputs (0 on a GPU, where that memory is the GPU's).

    All float32 unless noted, ``out = tile_size - 2 * margin``, ``span = stripe_width +
    2 * out`` (tiles reach past a stripe's core on both sides):

    - inputs (batch, bands, tile, tile) and scores (batch, classes, out, out), each
      ``QUEUE_DEPTH + 2`` times: one batch being filled / blended, ``QUEUE_DEPTH`` queued,
      one in the model call;
    - an input strip (bands, tile, span + 2 margin) and its validity (bool), twice:
      as read and reflect-padded;
    - the blender's sums (classes, out, span), weights (out, span), validity (bool);
    - one tile's weights (out, out) and weighted scores (classes, out, out);
    - finished rows (classes, out, stripe_width) and their probabilities (same), their
      argmax and class values (int64, out x stripe_width each), and the uint8 planes
      (classes + 2) the writer holds until they fill a row of 256-pixel GeoTIFF blocks.
    """
    out = tile_size - 2 * margin
    span = stripe_width + 2 * out
    strip = tile_size * (span + 2 * margin)
    inputs = batch_size * 4 * bands * tile_size**2
    batches = (QUEUE_DEPTH + 2) * (inputs + batch_size * 4 * classes * out**2)
    workspace = int(workspace_factor * inputs)
    reading = 2 * (4 * bands * strip + strip)
    blending = 4 * classes * out * span + 4 * out * span + out * span
    per_tile = 4 * out**2 + 4 * classes * out**2
    finished = 2 * 4 * classes * out * stripe_width + 2 * 8 * out * stripe_width
    finished += (classes + 2) * (256 + out) * stripe_width
    return batches + workspace + reading + blending + per_tile + finished


def physical_memory_bytes() -> int | None:
    """The machine's physical memory in bytes, or ``None`` when it cannot be read."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        pass
    if sys.platform == "win32":

        class MemoryStatus(ctypes.Structure):
            _fields_ = [
                ("dwLength", ctypes.c_ulong),
                ("dwMemoryLoad", ctypes.c_ulong),
                ("ullTotalPhys", ctypes.c_ulonglong),
                ("ullAvailPhys", ctypes.c_ulonglong),
                ("ullTotalPageFile", ctypes.c_ulonglong),
                ("ullAvailPageFile", ctypes.c_ulonglong),
                ("ullTotalVirtual", ctypes.c_ulonglong),
                ("ullAvailVirtual", ctypes.c_ulonglong),
                ("ullAvailExtendedVirtual", ctypes.c_ulonglong),
            ]

        status = MemoryStatus()
        status.dwLength = ctypes.sizeof(MemoryStatus)
        if ctypes.windll.kernel32.GlobalMemoryStatusEx(ctypes.byref(status)):  # type: ignore[attr-defined]
            return int(status.ullTotalPhys)
    return None


def memory_limit(options: ClassifyOptions) -> tuple[int, str]:
    """The memory limit in bytes and how it was set, for messages."""
    if options.memory_limit_bytes is not None:
        return options.memory_limit_bytes, "the memory limit given"
    physical = physical_memory_bytes()
    if physical is None:
        return UNKNOWN_MEMORY_LIMIT, "the default, as this machine's memory is unknown"
    return (
        int(physical * MEMORY_FRACTION),
        f"{MEMORY_FRACTION:.0%} of this machine's {format_bytes(physical)}",
    )


def fitted_batch_size(
    session: ModelSession,
    options: ClassifyOptions,
    plan: TilePlan,
    stripes: Sequence[Stripe],
    total_tiles: int,
    progress: Progress,
) -> int:
    """Tiles per model call, within the memory limit (:func:`memory_limit`).

    The batch is :func:`effective_batch_size`, at most ``total_tiles`` (more would only
    hold empty slots) unless the graph fixes it. When the batch does not fit: an
    automatic one is lowered (with an info line); a batch the caller or the graph set is
    refused with the largest that fits; a tile too large for even one is refused with
    the largest tile size that fits.

    Raises:
        InputError: naming the memory needed, the limit and what to set instead.
    """
    contract = session.contract
    batch = effective_batch_size(session, options.batch_size)
    if session.fixed_batch is None:
        batch = min(batch, total_tiles)
    limit, why = memory_limit(options)
    automatic = options.batch_size == 0 and session.fixed_batch is None
    stripe_width = max(s.width for s in stripes)

    def need(batch_size: int, tile_size: int = plan.tile_size) -> int:
        return session_memory_bytes(
            session,
            tile_size=tile_size,
            margin=plan.margin,
            batch_size=batch_size,
            stripe_width=stripe_width,
        )

    needed = need(batch)
    if automatic and batch > 1 and TILE_MEMORY_BUDGET < needed <= limit:
        # Large tiles run fewer per call: on the CPU one 512 px tile per call is as fast
        # per pixel as two (measured), and memory stays small.
        per_tile = need(1) - need(0)
        batch = int(max(1, min(batch, (TILE_MEMORY_BUDGET - need(0)) // per_tile)))
        needed = need(batch)
    if needed <= limit:
        return batch
    per_tile = need(1) - need(0)
    fits = max(0, (limit - need(0)) // per_tile)
    size = f"{batch} tile{'s' if batch != 1 else ''} of {plan.tile_size} px"
    over = (
        f"need about {format_bytes(needed)} of memory, more than the limit of "
        f"{format_bytes(limit)} ({why})"
    )
    if fits >= 1:
        if options.batch_size == 0 and session.fixed_batch is None:
            progress.info(f"Batches of {size} would {over}: batches of {fits} are used.")
            return int(fits)
        if session.fixed_batch is None:
            raise InputError(
                f"Batches of {size} {over}: set the batch size (BATCH_SIZE) to {fits} or "
                "less, or to 0 to choose it automatically."
            )
    if session.fixed_batch is not None:
        raise InputError(
            f"The model {session.path.name} runs batches of {size} (fixed in its graph), which "
            f"{over}; it cannot run on this machine"
            + (" with this tile size." if session.fixed_tile is None else ".")
        )
    if session.fixed_tile is not None:
        raise InputError(
            f"The model {session.path.name} only takes tiles of {plan.tile_size} px; one "
            f"needs about {format_bytes(need(1))} of memory, more than the limit of "
            f"{format_bytes(limit)} ({why}): it cannot run on this machine."
        )
    # The largest tile (a multiple of 32 with some output) one of which fits.
    low, high = (2 * plan.margin) // 32 + 1, plan.tile_size // 32
    while low <= high:
        middle = (low + high) // 2
        if need(1, 32 * middle) <= limit:
            low = middle + 1
        else:
            high = middle - 1
    origin = (
        ""
        if options.tile_size
        else f" (the model's tile size, metadata 'tile_size', is {contract.tile_size} px)"
    )
    advice = (
        f"set the tile size (TILE_SIZE) to {32 * high} px or less"
        if high * 32 > 2 * plan.margin
        else "this machine has too little memory for this model"
    )
    raise InputError(
        f"One tile of {plan.tile_size} px needs about {format_bytes(need(1))} of memory, "
        f"more than the limit of {format_bytes(limit)} ({why}){origin}: {advice}."
    )
