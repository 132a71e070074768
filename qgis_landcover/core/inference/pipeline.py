# SPDX-License-Identifier: GPL-2.0-or-later
"""The classify pipeline: three stages in threads, for an extent of any size at bounded
memory.

1. a reader thread (:class:`~..raster.read_ahead.ReadAhead`) reads one strip of input
   per row of tiles (:mod:`.model_input`: reflect-padded past the raster, values
   checked, pixels without data filled), cuts the tiles, normalises them and groups
   them into batches; tiles without a valid pixel are skipped, not run;
2. the calling thread runs the model on each batch (ONNX Runtime releases the GIL),
   checks for cancel and reports progress;
3. a writer thread blends the overlapping tile scores (:mod:`.blending`) and writes
   finished rows (:mod:`.classified_output`).

The queues between the stages hold at most :data:`~.planning.QUEUE_DEPTH` batches each,
so peak memory depends on the batch, tile and stripe sizes (:mod:`.planning`), never
on the extent. Outputs are written to temporary files beside the destinations and
renamed only when complete: a cancel or an error leaves nothing behind.
"""

from __future__ import annotations

import ctypes
import platform
import queue
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import LandcoverError
from ..files.atomic import atomic_output
from ..progress import NullProgress, Progress, TimeEstimate, check_cancelled
from ..raster.grid import Grid, Window
from ..raster.read_ahead import POLL_SECONDS, ReadAhead, Stage, put_unless_stopped
from ..raster.writing import write_qml_paletted
from .blending import StripeBlender
from .classified_output import (
    OutputPaths,
    OutputWriter,
    class_palette,
    looks_like_probabilities,
    qml_path,
)
from .image_source import ImageReader
from .model_input import ModelInput, prepare_input
from .normalization import Normalizer
from .planning import (
    QUEUE_DEPTH,
    automatic_tile_size,
    fitted_batch_size,
    planned_overlap,
    stripe_width_for,
    tile_size_for_window,
)
from .session import CPU, ModelSession
from .tile_plan import Stripe, TilePlan, plan_tiles

# A run of tiles without valid pixels is passed on in groups of this many batches'
# worth, so progress keeps moving and no long list of skipped tiles piles up.
SKIPPED_PER_BATCH = 8
# Readers drop GDAL's cached input blocks every this many rows: memory stays bounded,
# and only the rows shared by consecutive strips across that line are decoded twice.
RELEASE_ROWS = 1024
_END = object()  # the end of the writer stage's queue


def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, or ``None`` where the C library is not glibc."""
    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        return None
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim  # type: ignore[no-any-return]
    except (OSError, AttributeError):
        return None


_TRIM = _malloc_trim()


def release_free_memory() -> bool:
    """Give the memory glibc's malloc holds free back to the system
    (``malloc_trim(0)``), where the C library is glibc; returns whether it could.

    The pipeline frees arrays of a few MB per tile in three threads; glibc raises its
    mmap threshold after such frees, so later ones come from per-thread heaps whose
    freed pages stay resident and whose fragments grow with the run. Called once per
    finished row of tiles (milliseconds); unlike ``mallopt`` or ``MALLOC_*`` variables
    it changes no setting of the process (QGIS's). Measured with the int8 2018 U-Net,
    640 px tiles, VRTs of the shipped mosaic, fresh processes (VmHWM): 8192 x 8192 px
    peaks at 406 MiB with it against 456 MiB without (2048 x 2048 px: 399 MiB), as
    with one malloc arena (``MALLOC_ARENA_MAX=1``: 407 MiB)."""
    if _TRIM is None:
        return False
    _TRIM(0)
    return True


@dataclass(frozen=True)
class ClassifyOptions:
    """How to run the model.

    Attributes:
        device: ``auto``, ``cpu``, ``cuda`` or ``tensorrt``.
        batch_size: tiles per model call; 0 for automatic (larger on a GPU).
        tile_size: input tile side in pixels, or ``None`` for the model's.
        overlap_percent: overlap between output tiles, or ``None`` for the model's.
        overviews: build overviews in the outputs.
        stripe_width: widest column stripe blended at once, pixels (bounds memory), or
            ``None`` for a multiple of the tile stride chosen for the device
            (:func:`~.planning.stripe_width_for`).
        memory_limit_bytes: most memory the pipeline's arrays may use, bytes; ``None``
            for :data:`MEMORY_FRACTION` of the machine's physical memory. An automatic
            batch size is lowered to fit; an explicit batch or tile size that does not
            fit is refused (:func:`~.planning.fitted_batch_size`).
        input_range: rescale the layer's values from this (low, high) onto the range
            the model expects (clipped), or ``None`` to check them against it as they
            are (:mod:`.model_input`).
    """

    device: str = "auto"
    batch_size: int = 0
    tile_size: int | None = None
    overlap_percent: float | None = None
    overviews: bool = True
    stripe_width: int | None = None
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
        tile_size: the model input side used, pixels (chosen or requested);
        batch_size: tiles per model call.
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
    tile_size: int = 0
    batch_size: int = 0


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


# --------------------------------------------------------------------------- writer


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
                item = self.writes.get(timeout=POLL_SECONDS)
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
                    del rows
                    release_free_memory()


# --------------------------------------------------------------------------- pipeline


def run_pipeline(
    reader: ImageReader,
    window: Window,
    session: ModelSession,
    outputs: OutputPaths,
    options: ClassifyOptions | None = None,
    progress: Progress | None = None,
    *,
    read_ahead: bool = True,
) -> ClassifyResult:
    """Classify ``window`` of ``reader.grid`` with ``session`` into ``outputs``.

    The reader must deliver the model's bands, in the model's order, on the model grid
    (:func:`~.classify.classify` arranges that for any image source).

    Args:
        read_ahead: read in a thread of its own (:class:`~..raster.read_ahead.ReadAhead`);
            False for readers that must stay on the calling thread (QGIS data providers).
    """
    options = options or ClassifyOptions()
    progress = progress or NullProgress()
    started = time.perf_counter()
    outputs.check()
    contract = session.contract
    overlap = planned_overlap(session, options.overlap_percent, progress)
    tile_size = automatic_tile_size(session, options, window, overlap, progress)
    if tile_size is None:
        tile_size = tile_size_for_window(session, options.tile_size, window, progress)
    plan = plan_tiles(window.width, window.height, tile_size, contract.output_margin, overlap)
    stripe_width = stripe_width_for(session, options, plan)
    stripes = plan.stripes(stripe_width)
    total_tiles = sum(len(plan.ys) * len(s.tile_cols) for s in stripes)
    batch_size = fitted_batch_size(session, options, plan, stripes, total_tiles, progress)
    output_grid = reader.grid.window_grid(window)
    progress.info(
        f"Classifying {window.width} x {window.height} pixels of "
        f"{output_grid.resolution[0]:.6g} x {output_grid.resolution[1]:.6g} CRS units in "
        f"{total_tiles} tiles of {tile_size} px (output {plan.output_size} px, overlap "
        f"{plan.overlap} px), batches of {batch_size}, blended in stripes of up to "
        f"{stripe_width} px ({total_tiles - plan.tile_count} tiles run twice on their "
        f"edges), on {session.provider}."
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
    estimate = TimeEstimate(total_tiles, "tiles", progress)
    with ExitStack() as stack:
        temporary = OutputPaths(
            *(stack.enter_context(atomic_output(p)) if p else None for p in _paths(outputs))
        )
        writer = OutputWriter(temporary, output_grid, contract, options.overviews)
        try:
            loop = _WriterLoop(writer, plan, stripes, contract.num_classes, writes, stop)
            writer_stage = Stage("landcover-write", loop.run, stop)
            writer_stage.start()
            try:
                with ExitStack() as reading:
                    stream: Iterable[TileBatch] = batches
                    if read_ahead:
                        stream = reading.enter_context(
                            ReadAhead(batches, stop=stop, depth=QUEUE_DEPTH)
                        )
                    for batch in stream:
                        check_cancelled(progress)
                        scores = None
                        if batch.inputs is not None:
                            tic = time.perf_counter()
                            scores = run_batch(session, batch.inputs, batch_size)
                            model_seconds += time.perf_counter() - tic
                            if tiles_run == 0:
                                writer.probabilities_in = looks_like_probabilities(scores)
                            tiles_run += batch.inputs.shape[0]
                        if not put_unless_stopped(writes, (batch.jobs, scores), stop):
                            break  # the writer failed: its error is raised below
                        tiles_done += len(batch.jobs)
                        progress.set_progress(100.0 * tiles_done / total_tiles)
                        estimate.update(tiles_done)
                put_unless_stopped(writes, _END, stop)
                writer_stage.join()
            finally:
                stop.set()
                if writer_stage.is_alive():
                    writer_stage.join()
            if writer_stage.error is not None:
                raise writer_stage.error
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
        tile_size=plan.tile_size,
        batch_size=batch_size,
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
