# SPDX-License-Identifier: GPL-2.0-or-later
"""Classify a raster with a segmentation model into a land-cover GeoTIFF.

The pipeline, for an extent of any size at bounded memory:

1. a reader thread reads one strip of input per row of tiles (:mod:`.image_reader`;
   a warped VRT when the layer must be resampled to the model's resolution),
   reflect-pads it where tiles reach past the raster, cuts the tiles, normalises them
   and groups them into batches; tiles without a valid pixel are skipped, not run;
2. the calling thread runs the model on each batch (ONNX Runtime releases the GIL),
   checks for cancel and reports progress;
3. a writer thread blends the overlapping tile scores (:mod:`.blending`) and writes
   finished rows (:mod:`.classified_output`).

The queues between the stages hold at most two batches each, so peak memory depends on
the batch, tile and stripe sizes, never on the extent. Outputs are written to
temporary files beside the destinations and renamed only when complete: a cancel or an
error leaves nothing behind.
"""

from __future__ import annotations

import ctypes
import os
import queue
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from osgeo import gdal

from ..errors import InputError, LandcoverError
from ..files.atomic import atomic_output
from ..files.inputs import Input, Output, check_outputs
from ..models.resolve import resolve_model
from ..progress import NullProgress, Progress, check_cancelled
from ..raster.grid import Bounds, Grid, Window
from ..raster.reading import open_raster, raster_grid, warp_to_grid
from ..raster.writing import write_qml_paletted
from ..units import format_bytes
from .band_mapping import map_bands
from .blending import StripeBlender
from .classified_output import (
    OutputPaths,
    OutputWriter,
    class_palette,
    looks_like_probabilities,
    qml_path,
)
from .image_reader import GdalReader, ImageReader, describe_gdal_bands
from .model_grid import ModelGrid, plan_model_grid
from .model_input import ModelInput, prepare_input
from .normalization import Normalizer
from .session import CPU, ModelSession, load_session
from .tile_plan import (
    DEFAULT_STRIPE_WIDTH,
    MAX_OVERLAP_PERCENT,
    Stripe,
    TilePlan,
    plan_tiles,
)

gdal.UseExceptions()

CPU_BATCH_SIZE = 4
GPU_BATCH_SIZE = 16
QUEUE_DEPTH = 2
# A run of tiles without valid pixels is passed on in groups of this many batches'
# worth, so progress keeps moving and no long list of skipped tiles piles up.
SKIPPED_PER_BATCH = 8
# Readers drop GDAL's cached input blocks every this many rows: memory stays bounded,
# and only the rows shared by consecutive strips across that line are decoded twice.
RELEASE_ROWS = 1024
MEMORY_FRACTION = 0.5
"""Share of the machine's physical memory the pipeline's arrays may use by default."""
UNKNOWN_MEMORY_LIMIT = 8 * 2**30
"""Memory limit, bytes, where the machine's physical memory cannot be read."""
MODEL_WORKSPACE_FACTOR = 66
"""ONNX Runtime's working memory on the CPU (the network's activations) per byte of a
batch's input. Measured with the shipped 2018 U-Net: peak growth of the process 66-74
times the input's bytes for batches of 1-16 tiles of 256-1024 px. Other networks
differ; this keeps the estimate of the memory a batch needs from being a tenth of it."""
MAX_TILE_ALIGN = 256
"""A tile capped to the extent keeps the power-of-two factor of the requested size,
up to this (networks that halve the tile k times need multiples of 2**k)."""


@dataclass(frozen=True)
class ClassifyOptions:
    """How to run the model.

    Attributes:
        device: ``auto``, ``cpu``, ``cuda`` or ``tensorrt``.
        batch_size: tiles per model call; 0 for automatic (larger on a GPU).
        tile_size: input tile side in pixels, or ``None`` for the model's.
        overlap_percent: overlap between output tiles, or ``None`` for the model's.
        overviews: build overviews in the outputs.
        stripe_width: widest column stripe blended at once, pixels (bounds memory).
        read_ahead_thread: read in a thread of its own; False for readers that must
            stay on the calling thread (QGIS data providers).
        memory_limit_bytes: most memory the pipeline's arrays may use, bytes; ``None``
            for :data:`MEMORY_FRACTION` of the machine's physical memory. An automatic
            batch size is lowered to fit; an explicit batch or tile size that does not
            fit is refused (:func:`fitted_batch_size`).
        input_range: rescale the layer's values from this (low, high) onto the range
            the model expects (clipped), or ``None`` to check them against it as they
            are (:mod:`.model_input`).
    """

    device: str = "auto"
    batch_size: int = 0
    tile_size: int | None = None
    overlap_percent: float | None = None
    overviews: bool = True
    stripe_width: int = DEFAULT_STRIPE_WIDTH
    read_ahead_thread: bool = True
    memory_limit_bytes: int | None = None
    input_range: tuple[float, float] | None = None


@dataclass
class ClassifyResult:
    """What a run produced.

    Attributes:
        outputs: the rasters written.
        execution_provider: the ONNX Runtime provider that ran the model.
        pixels_classified: output pixels that received a class (not nodata).
        grid: the output grid.
        tiles_run: tiles the model ran on; tiles_skipped: tiles without valid pixels.
        seconds: wall time of the pipeline; model_seconds: time inside the model.
        warnings: warnings also sent to the progress receiver.
    """

    outputs: OutputPaths
    execution_provider: str
    pixels_classified: int
    grid: Grid
    tiles_run: int
    tiles_skipped: int
    seconds: float
    model_seconds: float
    warnings: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- batches


@dataclass
class TileJob:
    """One tile of the plan on its way through the pipeline.

    Attributes:
        stripe: index of its stripe; col, row: tile indices in the plan.
        slot: its index in the batch's inputs, or ``None`` when skipped.
        valid: validity of the tile's output pixels, bool (size, size); ``None`` when
            none is valid.
        row_done: the last tile of its stripe's row.
    """

    stripe: int
    col: int
    row: int
    slot: int | None
    valid: np.ndarray | None
    row_done: bool


@dataclass
class TileBatch:
    """Model inputs, float32 (N, bands, tile, tile) or ``None``, and their jobs."""

    inputs: np.ndarray | None
    jobs: list[TileJob]


def iter_batches(
    reader: ImageReader,
    window: Window,
    plan: TilePlan,
    stripes: Sequence[Stripe],
    normalizer: Normalizer,
    bands: int,
    batch_size: int,
    model_input: ModelInput | None = None,
) -> Iterator[TileBatch]:
    """Read the plan's tiles, one strip per stripe and tile row, in batches.

    ``window`` is the output's position in ``reader.grid``; plan offsets are relative
    to it. Strips are read through ``model_input`` (invalid pixels filled, values
    checked and rescaled; :mod:`.model_input`), by default one over ``reader`` that
    fills with 0.
    """
    source = model_input or ModelInput(reader, np.zeros(bands, dtype=np.float32))
    size, margin, tile = plan.output_size, plan.margin, plan.tile_size
    inputs = np.empty((batch_size, bands, tile, tile), dtype=np.float32)
    filled = 0  # slots of ``inputs`` in use
    jobs: list[TileJob] = []

    def flush() -> TileBatch:
        nonlocal inputs, filled, jobs
        batch = normalizer(inputs[:filled]) if filled else None
        done = TileBatch(batch, jobs)
        inputs = np.empty((batch_size, bands, tile, tile), dtype=np.float32)
        filled, jobs = 0, []
        return done

    # Readers that cache (GDAL) drop their cache every RELEASE_ROWS rows.
    release = getattr(reader, "release", None)
    previous_y = 0
    for stripe_index, stripe in enumerate(stripes):
        first, last = stripe.first_tile_col, stripe.last_tile_col
        strip_width = plan.xs[last] - plan.xs[first] + tile
        for row, y in enumerate(plan.ys):
            strip = Window(
                window.col_off + plan.xs[first] - margin,
                window.row_off + y - margin,
                strip_width,
                tile,
            )
            if release is not None and y // RELEASE_ROWS != previous_y // RELEASE_ROWS:
                release()
            previous_y = y
            raw, valid = source.read(strip)
            for col in stripe.tile_cols:
                x = plan.xs[col] - plan.xs[first]
                out_valid = valid[margin : margin + size, x + margin : x + margin + size]
                slot = None
                if out_valid.any():
                    slot = filled
                    inputs[slot] = raw[:, :, x : x + tile]
                    filled += 1
                jobs.append(
                    TileJob(
                        stripe=stripe_index,
                        col=col,
                        row=row,
                        slot=slot,
                        valid=out_valid.copy() if slot is not None else None,
                        row_done=col == last,
                    )
                )
                if filled == batch_size or len(jobs) >= SKIPPED_PER_BATCH * batch_size:
                    yield flush()
    if jobs:
        yield flush()


# --------------------------------------------------------------------------- stages

_END = object()


class _Stage(threading.Thread):
    """A daemon thread running ``target``; on failure it keeps the exception for the
    calling thread and sets ``stop`` so the other stages stop waiting."""

    def __init__(self, name: str, target: Callable[[], None], stop: threading.Event) -> None:
        super().__init__(name=name, daemon=True)
        self._work = target
        self._stop_event = stop
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._work()
        except BaseException as error:  # handed to the calling thread
            self.error = error
            self._stop_event.set()


def _put(channel: queue.Queue[Any], item: Any, stop: threading.Event) -> bool:
    """Put ``item`` unless ``stop`` is set first; False when stopped."""
    while not stop.is_set():
        try:
            channel.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


def _read_ahead(
    batches: Iterator[TileBatch], stop: threading.Event
) -> tuple[Iterator[TileBatch], _Stage]:
    """Produce ``batches`` in a reader thread; iterate them from a bounded queue."""
    channel: queue.Queue[Any] = queue.Queue(maxsize=QUEUE_DEPTH)

    def produce() -> None:
        try:
            for batch in batches:
                if not _put(channel, batch, stop):
                    return
        finally:
            _put(channel, _END, stop)

    stage = _Stage("landcover-read", produce, stop)

    def consume() -> Iterator[TileBatch]:
        while True:
            try:
                item = channel.get(timeout=0.1)
            except queue.Empty:
                if stage.is_alive():
                    continue
                break
            if item is _END:
                break
            yield item
        stage.join()  # the error is recorded after the producer's last put
        if stage.error is not None:
            raise stage.error

    return consume(), stage


class _WriterLoop:
    """The writer stage: blends tile scores stripe by stripe, writes finished rows."""

    def __init__(
        self,
        writer: OutputWriter,
        plan: TilePlan,
        stripes: Sequence[Stripe],
        channels: int,
        writes: queue.Queue[Any],
        stop: threading.Event,
    ) -> None:
        self.writer, self.plan, self.stripes = writer, plan, stripes
        self.channels, self.writes, self.stop = channels, writes, stop

    def run(self) -> None:
        none_valid = np.zeros((self.plan.output_size,) * 2, dtype=bool)
        blender: StripeBlender | None = None
        blender_stripe = -1
        while True:
            try:
                item = self.writes.get(timeout=0.1)
            except queue.Empty:
                if self.stop.is_set():
                    return
                continue
            if item is _END:
                return
            jobs, scores = item
            for job in jobs:
                if blender is None or job.stripe != blender_stripe:
                    blender_stripe = job.stripe
                    blender = StripeBlender(self.plan, self.stripes[job.stripe], self.channels)
                blender.add(
                    job.col,
                    job.row,
                    scores[job.slot] if job.slot is not None else None,
                    job.valid if job.valid is not None else none_valid,
                )
                if job.row_done:
                    rows = blender.finish_row()
                    self.writer.write(
                        rows.row_start, rows.col_start, rows.scores, rows.covered & rows.valid
                    )


# --------------------------------------------------------------------------- pipeline


def run_pipeline(
    reader: ImageReader,
    window: Window,
    session: ModelSession,
    outputs: OutputPaths,
    options: ClassifyOptions | None = None,
    progress: Progress | None = None,
) -> ClassifyResult:
    """Classify ``window`` of ``reader.grid`` with ``session`` into ``outputs``.

    The reader must deliver the model's bands, in the model's order, on the model grid
    (:func:`classify` arranges that for GDAL rasters).
    """
    options = options or ClassifyOptions()
    progress = progress or NullProgress()
    started = time.perf_counter()
    outputs.check()
    contract = session.contract
    tile_size = tile_size_for_window(session, options.tile_size, window, progress)
    overlap = planned_overlap(session, options.overlap_percent, progress)
    plan = plan_tiles(window.width, window.height, tile_size, contract.output_margin, overlap)
    stripes = plan.stripes(options.stripe_width)
    total_tiles = sum(len(plan.ys) * len(s.tile_cols) for s in stripes)
    batch_size = fitted_batch_size(session, options, plan, stripes, total_tiles, progress)
    output_grid = reader.grid.window_grid(window)
    progress.info(
        f"Classifying {window.width} x {window.height} pixels of "
        f"{output_grid.resolution[0]:.6g} x {output_grid.resolution[1]:.6g} CRS units in "
        f"{total_tiles} tiles of {tile_size} px (output {plan.output_size} px, overlap "
        f"{plan.overlap} px), batches of {batch_size}, on {session.provider}."
    )
    # Values checked (and rescaled) before any output is opened.
    model_input = prepare_input(
        reader,
        window,
        contract,
        model=f"the model {session.path.name}",
        input_range=options.input_range,
        progress=progress,
    )
    stop = threading.Event()
    batches = iter_batches(
        reader,
        window,
        plan,
        stripes,
        Normalizer(contract),
        contract.num_bands,
        batch_size,
        model_input,
    )
    writes: queue.Queue[Any] = queue.Queue(maxsize=QUEUE_DEPTH)
    tiles_run = tiles_done = 0
    model_seconds = 0.0
    with ExitStack() as stack:
        temporary = OutputPaths(
            *(stack.enter_context(atomic_output(p)) if p else None for p in _paths(outputs))
        )
        writer = OutputWriter(temporary, output_grid, contract, options.overviews)
        try:
            loop = _WriterLoop(writer, plan, stripes, contract.num_classes, writes, stop)
            writer_stage = _Stage("landcover-write", loop.run, stop)
            writer_stage.start()
            reader_stage = None
            if options.read_ahead_thread:
                batches, reader_stage = _read_ahead(batches, stop)
                reader_stage.start()
            try:
                for batch in batches:
                    check_cancelled(progress)
                    scores = None
                    if batch.inputs is not None:
                        tic = time.perf_counter()
                        scores = run_batch(session, batch.inputs, batch_size)
                        model_seconds += time.perf_counter() - tic
                        if tiles_run == 0:
                            writer.probabilities_in = looks_like_probabilities(scores)
                        tiles_run += batch.inputs.shape[0]
                    if not _put(writes, (batch.jobs, scores), stop):
                        break  # a stage failed: its error is raised below
                    tiles_done += len(batch.jobs)
                    progress.set_progress(100.0 * tiles_done / total_tiles)
                _put(writes, _END, stop)
                writer_stage.join()
            finally:
                stop.set()
                for stage in (reader_stage, writer_stage):
                    if stage is not None and stage.is_alive():
                        stage.join()
            for stage in (reader_stage, writer_stage):
                if stage is not None and stage.error is not None:
                    raise stage.error
            check_cancelled(progress)
            model_input.finish(progress)
            if tiles_done != total_tiles:  # never expected: refuse a partial output
                raise LandcoverError(
                    f"Only {tiles_done} of {total_tiles} tiles were classified; "
                    "the output was not written."
                )
            writer.finish()
        finally:
            writer.close()
    warnings = []
    if writer.pixels_classified == 0:
        message = (
            "The extent holds no valid pixels (nodata, transparent or zero): the output is "
            "entirely nodata."
        )
        progress.warning(message)
        warnings.append(message)
    colors, names = class_palette(contract)
    write_qml_paletted(qml_path(outputs.classes), colors, names)
    progress.set_progress(100.0)
    return ClassifyResult(
        outputs=outputs,
        execution_provider=session.provider,
        pixels_classified=writer.pixels_classified,
        grid=output_grid,
        tiles_run=tiles_run,
        tiles_skipped=tiles_done - tiles_run,
        seconds=time.perf_counter() - started,
        model_seconds=model_seconds,
        warnings=warnings,
    )


def run_batch(session: ModelSession, inputs: np.ndarray, batch_size: int) -> np.ndarray:
    """Scores of ``inputs``; on a GPU a short last batch is padded to ``batch_size``, as
    every new input shape makes CUDA / TensorRT search kernels or build an engine again."""
    count = inputs.shape[0]
    if session.provider == CPU or count == batch_size:
        return session.run(inputs)
    padded = np.zeros((batch_size, *inputs.shape[1:]), dtype=inputs.dtype)
    padded[:count] = inputs
    return session.run(padded)[:count]


def _paths(outputs: OutputPaths) -> tuple[Path | None, Path | None, Path | None]:
    return (outputs.classes, outputs.probabilities, outputs.confidence)


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


# --------------------------------------------------------------------------- bounds


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
    stripe_width = max(s.width for s in stripes)

    def need(batch_size: int, tile_size: int = plan.tile_size) -> int:
        return pipeline_memory_bytes(
            tile_size=tile_size,
            margin=plan.margin,
            bands=contract.num_bands,
            classes=contract.num_classes,
            batch_size=batch_size,
            stripe_width=stripe_width,
            workspace_factor=MODEL_WORKSPACE_FACTOR if session.provider == CPU else 0.0,
        )

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


# --------------------------------------------------------------------------- entry point


def classify(
    source: str | os.PathLike[str] | gdal.Dataset,
    output: str | os.PathLike[str],
    model: str | os.PathLike[str] | ModelSession | None = None,
    *,
    bounds: Bounds | None = None,
    bands: Sequence[int] | None = None,
    probabilities: str | os.PathLike[str] | None = None,
    confidence: str | os.PathLike[str] | None = None,
    options: ClassifyOptions | None = None,
    progress: Progress | None = None,
) -> ClassifyResult:
    """Classify a GDAL-readable raster (GeoTIFF, VRT mosaic, COG, ...).

    Args:
        source: raster path or open dataset; never modified.
        output: the classified GeoTIFF (uint8, nodata 0, colour table, ``.qml``).
        model: ONNX file or loaded session; ``None`` for the catalogue's default model
            (URLs and catalogue names go through
            :func:`~qgis_landcover.core.models.resolve.resolve_model` first).
        bounds: extent (xmin, ymin, xmax, ymax) in the raster's CRS; ``None`` for all.
        bands: 1-based bands feeding the model, in the model's order; ``None`` to
            match them by band name / colour interpretation.
        probabilities, confidence: optional extra GeoTIFFs (uint8, 0-255).
    """
    options = options or ClassifyOptions()
    progress = progress or NullProgress()
    dataset = source if isinstance(source, gdal.Dataset) else open_raster(source)
    outputs = OutputPaths(
        Path(output),
        Path(probabilities) if probabilities else None,
        Path(confidence) if confidence else None,
    )
    check_outputs(
        [
            Input("the input raster", dataset.GetDescription()),
            Input("the model", model.path if isinstance(model, ModelSession) else model),
        ],
        [
            Output("the classified output", outputs.classes, raster=True),
            Output("the probabilities output", outputs.probabilities, raster=True),
            Output("the confidence output", outputs.confidence, raster=True),
        ],
    )
    session = (
        model
        if isinstance(model, ModelSession)
        else load_session(model or resolve_model("", progress=progress), options.device, progress)
    )
    contract = session.contract
    mapping = map_bands(contract.band_names, describe_gdal_bands(dataset), bands, progress)
    progress.info(
        "Bands: "
        + ", ".join(f"{n} <- band {b}" for n, b in zip(contract.band_names, mapping, strict=True))
    )
    layout = plan_model_grid(
        raster_grid(dataset),
        contract.resolution_m,
        bounds,
        context=checked_tile_size(session, options.tile_size),
        progress=progress,
    )
    model_dataset = _model_dataset(dataset, layout)
    sources = [dataset] if model_dataset is not dataset else []
    reader = GdalReader(model_dataset, mapping, sources)
    return run_pipeline(reader, layout.window, session, outputs, options, progress)


def _model_dataset(dataset: gdal.Dataset, layout: ModelGrid) -> gdal.Dataset:
    """``dataset`` itself, or a bilinear warped VRT of it on the model grid."""
    if not layout.resampled:
        return dataset
    return warp_to_grid(dataset, layout.read_grid, "bilinear")
