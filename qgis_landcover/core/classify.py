# SPDX-License-Identifier: GPL-2.0-or-later
"""Classify a raster with a segmentation model into a land-cover GeoTIFF.

The pipeline, for an extent of any size at bounded memory:

1. a reader thread reads one strip of input per row of tiles (:mod:`.image_reader`;
   a warped VRT when the layer must be resampled to the model's resolution),
   reflect-pads it where tiles reach past the raster, cuts the tiles, normalises them
   and groups them into batches; tiles without a valid pixel are skipped, not run;
2. the calling thread runs the model on each batch (ONNX Runtime releases the GIL),
   checks for cancel and reports progress;
3. a writer thread blends the overlapping tile scores (:mod:`.tiling`) and writes
   finished rows (:mod:`.classified_output`).

The queues between the stages hold at most two batches each, so peak memory depends on
the batch, tile and stripe sizes, never on the extent. Outputs are written to
temporary files beside the destinations and renamed only when complete: a cancel or an
error leaves nothing behind.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from osgeo import gdal

from .band_mapping import map_bands
from .classified_output import (
    OutputPaths,
    OutputWriter,
    class_palette,
    looks_like_probabilities,
    qml_path,
)
from .errors import InputError, LandcoverError
from .grid import Bounds, Grid, Window
from .image_reader import GdalReader, ImageReader, describe_gdal_bands, read_padded
from .input_files import Input, Output, check_outputs
from .model_catalog import resolve_model
from .model_grid import ModelGrid, plan_model_grid
from .normalization import Normalizer
from .onnx_session import CPU, ModelSession, load_session
from .progress import NullProgress, Progress, check_cancelled
from .raster_io import atomic_output, open_raster, raster_grid, warp_to_grid, write_qml_paletted
from .tiling import DEFAULT_STRIPE_WIDTH, Stripe, StripeBlender, TilePlan, plan_tiles

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
    """

    device: str = "auto"
    batch_size: int = 0
    tile_size: int | None = None
    overlap_percent: float | None = None
    overviews: bool = True
    stripe_width: int = DEFAULT_STRIPE_WIDTH
    read_ahead_thread: bool = True


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
) -> Iterator[TileBatch]:
    """Read the plan's tiles, one strip per stripe and tile row, in batches.

    ``window`` is the output's position in ``reader.grid``; plan offsets are relative
    to it.
    """
    size, margin, tile = plan.output_size, plan.margin, plan.tile_size
    inputs = np.empty((batch_size, bands, tile, tile), dtype=np.float32)
    masks: list[np.ndarray] = []
    jobs: list[TileJob] = []

    def flush() -> TileBatch:
        nonlocal inputs, masks, jobs
        batch = None
        if masks:
            batch = normalizer(inputs[: len(masks)])
            for slot, tile_valid in enumerate(masks):
                # Invalid pixels get the neutral value (0 after normalisation) rather
                # than their raw nodata value, which would disturb their neighbours.
                batch[slot][:, ~tile_valid] = 0.0
        done = TileBatch(batch, jobs)
        inputs = np.empty((batch_size, bands, tile, tile), dtype=np.float32)
        masks, jobs = [], []
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
            raw, valid = read_padded(reader, strip)
            for col in stripe.tile_cols:
                x = plan.xs[col] - plan.xs[first]
                tile_valid = valid[:, x : x + tile]
                out_valid = tile_valid[margin : margin + size, margin : margin + size]
                slot = None
                if out_valid.any():
                    slot = len(masks)
                    inputs[slot] = raw[:, :, x : x + tile]
                    masks.append(tile_valid)
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
                if len(masks) == batch_size or len(jobs) >= SKIPPED_PER_BATCH * batch_size:
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
    tile_size = checked_tile_size(session, options.tile_size)
    overlap = (
        contract.tiles_overlap_percent
        if options.overlap_percent is None
        else options.overlap_percent
    )
    plan = plan_tiles(window.width, window.height, tile_size, contract.output_margin, overlap)
    stripes = plan.stripes(options.stripe_width)
    batch_size = effective_batch_size(session, options.batch_size)
    total_tiles = sum(len(plan.ys) * len(s.tile_cols) for s in stripes)
    output_grid = reader.grid.window_grid(window)
    progress.info(
        f"Classifying {window.width} x {window.height} pixels of "
        f"{output_grid.resolution[0]:.6g} x {output_grid.resolution[1]:.6g} CRS units in "
        f"{total_tiles} tiles of {tile_size} px (output {plan.output_size} px, overlap "
        f"{plan.overlap} px), batches of {batch_size}, on {session.provider}."
    )
    stop = threading.Event()
    batches = iter_batches(
        reader, window, plan, stripes, Normalizer(contract), contract.num_bands, batch_size
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
            (URLs and catalogue names go through :func:`~.model_catalog.resolve_model`
            first).
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
