# SPDX-License-Identifier: GPL-2.0-or-later
"""``python -m qgis_landcover.tiles classify --model M --output DIR INPUT...``

Classify many input rasters as one mosaic, chunk by chunk, on local worker processes
(``--scheduler local``, the default) or on a Dask cluster (``--scheduler local-dask``
for a ``LocalCluster`` here, or a scheduler address such as ``tcp://host:8786``; needs
``pip install "dask[distributed]"``). Writes the chunks, ``classified.vrt``,
``manifest.gpkg`` and ``areas.csv`` into ``--output``; running the same command again
skips the chunks already done. Exit status: 0 all chunks done, 1 some failed,
2 bad input, 130 cancelled (Ctrl-C; the done chunks are kept).
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from collections.abc import Sequence
from typing import Any, TextIO

from ..core.errors import CancelledError, LandcoverError
from ..core.inference.image_source import Extent
from ..core.inference.pipeline import ClassifyOptions
from ..core.models.resolve import resolve_model
from ..core.tiles.executor import executor_for
from ..core.tiles.job import DEFAULT_CHUNK_SIZE, build_job
from ..core.tiles.run import run_tiles_job

BAR_WIDTH = 30


class TextProgress:
    """A :class:`~..core.progress.Progress` for a terminal: a one-line bar (redrawn in
    place on a terminal, a new line every 10 % otherwise), log lines, and cancel on
    the first Ctrl-C (the second one stops at once)."""

    def __init__(self, stream: TextIO = sys.stderr, quiet: bool = False) -> None:
        self.stream = stream
        self.quiet = quiet
        self.cancelled = False
        self.started = time.monotonic()
        self.last_step = -1
        self.tty = stream.isatty()

    def set_progress(self, percent: float) -> None:
        percent = max(0.0, min(100.0, percent))
        if self.tty:
            filled = round(BAR_WIDTH * percent / 100)
            elapsed = time.monotonic() - self.started
            bar = "#" * filled + "-" * (BAR_WIDTH - filled)
            self.stream.write(f"\r[{bar}] {percent:5.1f} %  {elapsed:7.0f} s")
            self.stream.flush()
            if percent >= 100:
                self.stream.write("\n")
        elif int(percent // 10) > self.last_step:
            self.last_step = int(percent // 10)
            self.stream.write(f"{percent:5.1f} %\n")
            self.stream.flush()

    def is_cancelled(self) -> bool:
        return self.cancelled

    def info(self, message: str) -> None:
        if not self.quiet:
            self._line(message)

    def warning(self, message: str) -> None:
        self._line(f"Warning: {message}")

    def _line(self, message: str) -> None:
        self.stream.write(("\n" if self.tty else "") + message + "\n")
        self.stream.flush()

    def on_interrupt(self, number: int, frame: Any) -> None:
        if self.cancelled:
            raise KeyboardInterrupt
        self.cancelled = True
        self._line("Cancelling: no new chunks start (Ctrl-C again to stop at once).")


def parse_extent(text: str) -> Extent:
    """``xmin,ymin,xmax,ymax`` (the mosaic's CRS) or ``xmin,ymin,xmax,ymax,EPSG:4326``."""
    parts = [p.strip() for p in text.split(",")]
    if len(parts) not in (4, 5):
        raise LandcoverError(f"--extent wants xmin,ymin,xmax,ymax[,CRS], got {text!r}.")
    try:
        xmin, ymin, xmax, ymax = (float(p) for p in parts[:4])
    except ValueError as error:
        raise LandcoverError(f"--extent has a value that is not a number: {text!r}.") from error
    if xmin >= xmax or ymin >= ymax:
        raise LandcoverError(f"--extent is empty: {text!r} (xmin < xmax and ymin < ymax).")
    crs = ""
    if len(parts) == 5:
        from osgeo import osr

        srs = osr.SpatialReference()
        try:
            srs.SetFromUserInput(parts[4])
        except RuntimeError as error:
            raise LandcoverError(f"--extent has an unknown CRS {parts[4]!r}.") from error
        crs = srs.ExportToWkt()
    return Extent((xmin, ymin, xmax, ymax), crs)


def parser() -> argparse.ArgumentParser:
    main = argparse.ArgumentParser(
        prog="python -m qgis_landcover.tiles", description=__doc__.split("\n\n")[0]
    )
    commands = main.add_subparsers(dest="command", required=True)
    classify = commands.add_parser(
        "classify", help="classify many rasters as one mosaic, chunk by chunk (resumable)"
    )
    classify.add_argument("inputs", nargs="*", help="input rasters (same CRS, bands, pixel size)")
    classify.add_argument("--folder", help="a folder of input rasters (with --pattern)")
    classify.add_argument("--pattern", default="*.tif", help="glob in --folder (default *.tif)")
    classify.add_argument("--tile-index", help="a vector tile index whose features name rasters")
    classify.add_argument(
        "--path-field", help="the tile index's field with the raster paths (default location)"
    )
    classify.add_argument("--model", required=True, help="ONNX file, catalogue name or URL")
    classify.add_argument("--output", required=True, help="output folder (created)")
    classify.add_argument(
        "--scheduler",
        default="local",
        help="local (worker processes, default), local-dask, or a Dask address tcp://host:8786",
    )
    classify.add_argument("--workers", type=int, help="workers (default: from cores and memory)")
    classify.add_argument(
        "--chunk-size",
        type=int,
        default=DEFAULT_CHUNK_SIZE,
        help=f"chunk side in output pixels (default {DEFAULT_CHUNK_SIZE})",
    )
    classify.add_argument("--extent", help="xmin,ymin,xmax,ymax[,CRS]; default: all inputs")
    classify.add_argument("--mask", help="polygon layer: only chunks and pixels inside it")
    classify.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda", "tensorrt"))
    classify.add_argument("--bands", help="1-based input bands feeding the model, e.g. 1,2,3,4")
    classify.add_argument("--tile-size", type=int, help="model tile size in pixels")
    classify.add_argument("--batch-size", type=int, default=0, help="tiles per model call")
    classify.add_argument("--quiet", action="store_true", help="only the bar and warnings")
    return main


def classify_command(arguments: argparse.Namespace, progress: TextProgress) -> int:
    model = resolve_model(arguments.model, progress=progress)
    options = ClassifyOptions(
        device=arguments.device, batch_size=arguments.batch_size, tile_size=arguments.tile_size
    )
    bands = None
    if arguments.bands:
        try:
            bands = [int(b) for b in arguments.bands.split(",")]
        except ValueError as error:
            message = f"--bands wants numbers like 1,2,3,4, got {arguments.bands!r}."
            raise LandcoverError(message) from error
    job = build_job(
        arguments.inputs,
        model=model,
        output_folder=arguments.output,
        folder=arguments.folder,
        pattern=arguments.pattern,
        tile_index=arguments.tile_index,
        path_field=arguments.path_field,
        chunk_size=arguments.chunk_size,
        extent=parse_extent(arguments.extent) if arguments.extent else None,
        mask=arguments.mask,
        bands=bands,
        options=options,
        progress=progress,
    )
    executor = executor_for(arguments.scheduler, arguments.workers)
    result = run_tiles_job(job, executor, progress)
    progress.set_progress(100.0)
    print(f"mosaic: {result.mosaic}")
    print(f"manifest: {result.manifest}")
    print(f"areas: {result.areas_csv}")
    print(
        f"chunks: {result.chunks_done} done, {result.chunks_skipped} skipped, "
        f"{result.chunks_failed} failed; pixels: {result.pixels_classified}"
    )
    return 1 if result.chunks_failed else 0


def main(argv: Sequence[str] | None = None) -> int:
    arguments = parser().parse_args(argv)
    progress = TextProgress(quiet=arguments.quiet)
    previous = signal.signal(signal.SIGINT, progress.on_interrupt)
    try:
        return classify_command(arguments, progress)
    except CancelledError as error:
        print(f"\n{error}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("\nStopped.", file=sys.stderr)
        return 130
    except LandcoverError as error:
        print(f"\nError: {error}", file=sys.stderr)
        return 2
    finally:
        signal.signal(signal.SIGINT, previous)


if __name__ == "__main__":
    sys.exit(main())
