# SPDX-License-Identifier: GPL-2.0-or-later
"""The rasters a classification writes, block by block.

- classes: uint8 GeoTIFF, nodata 0, colour table and category names from the model
  contract, and a QGIS style (``.qml``) beside it so it opens styled with a legend;
- probabilities (optional): one uint8 band per class, ``round(255 * p)``; pixels
  without data are 0 in every band;
- confidence (optional): uint8 ``round(255 * max p)`` (at least 1), nodata 0.

Rasters are tiled, DEFLATE-compressed, with internal overviews (optional).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from osgeo import gdal

from ..errors import InputError
from ..files.atomic import check_output_path
from ..models.contract import ModelContract
from ..raster.grid import Grid
from ..raster.writing import create_geotiff, hex_to_rgb

gdal.UseExceptions()

NODATA = 0
OUTPUT_SUFFIXES = (".tif", ".tiff")

FALLBACK_COLORS = (
    "#1f78b4", "#33a02c", "#b2df8a", "#e31a1c", "#ff7f00", "#6a3d9a",
    "#a6cee3", "#fb9a99", "#fdbf6f", "#cab2d6", "#ffff99", "#b15928",
)  # fmt: skip
"""ColorBrewer "Paired", for models whose metadata has no ``class_colors``."""


@dataclass(frozen=True)
class OutputPaths:
    """Where the results go: the classified raster and the optional extras."""

    classes: Path
    probabilities: Path | None = None
    confidence: Path | None = None

    def all(self) -> list[Path]:
        """The paths given, classes first."""
        return [p for p in (self.classes, self.probabilities, self.confidence) if p is not None]

    def check(self) -> None:
        """Raise :class:`InputError` for a folder, a non-GeoTIFF name, a path used twice or
        one where no file can be written
        (:func:`~qgis_landcover.core.files.atomic.check_output_path`)."""
        paths = self.all()
        for path in paths:
            if path.is_dir():
                raise InputError(f"The output {path} is a folder: give a file name (.tif).")
            if path.suffix.lower() not in OUTPUT_SUFFIXES:
                raise InputError(f"Outputs are GeoTIFF files: give {path.name} a .tif extension.")
            check_output_path(path)
        if len({p.resolve() for p in paths}) != len(paths):
            raise InputError(
                "The classified, probability and confidence outputs need distinct files."
            )


def softmax(scores: np.ndarray) -> np.ndarray:
    """Softmax over axis 0 of (channels, ...) float32 scores (numerically stable)."""
    shifted = scores - scores.max(axis=0, keepdims=True)
    np.exp(shifted, out=shifted)
    shifted /= shifted.sum(axis=0, keepdims=True)
    return shifted


def looks_like_probabilities(scores: np.ndarray) -> bool:
    """True when model outputs (N, channels, rows, cols) are already probabilities
    (a softmax inside the model, as Deepness models have): every value in [0, 1] and
    each pixel's channels summing to 1."""
    if scores.size == 0 or scores.min() < -1e-4 or scores.max() > 1 + 1e-4:
        return False
    return bool(np.allclose(scores.sum(axis=1), 1.0, atol=1e-3))


def class_palette(
    contract: ModelContract,
) -> tuple[dict[int, tuple[int, int, int]], dict[int, str]]:
    """Colours and names keyed by output value, for the class channels."""
    colors, names = {}, {}
    for index, channel in enumerate(contract.class_channels):
        value = contract.class_values[channel]
        color = contract.class_colors.get(channel) or FALLBACK_COLORS[index % len(FALLBACK_COLORS)]
        colors[value] = hex_to_rgb(color)
        names[value] = contract.class_names[channel]
    return colors, names


def qml_path(raster: Path) -> Path:
    """The style file QGIS loads with ``raster`` (same name, ``.qml``)."""
    return raster.with_suffix(".qml")


def overview_levels(width: int, height: int, smallest: int = 256) -> list[int]:
    """Overview factors 2, 4, 8, ... until the overview's longer side is at most
    ``smallest`` pixels; none for rasters already that small."""
    levels = []
    factor = 2
    while max(width, height) > smallest * factor // 2 and min(width, height) >= factor:
        levels.append(factor)
        factor *= 2
    return levels


def build_overviews(dataset: gdal.Dataset, method: str) -> None:
    """Internal DEFLATE-compressed overviews (``method``: NEAREST for classes, AVERAGE
    for probabilities) so QGIS draws large outputs quickly."""
    levels = overview_levels(dataset.RasterXSize, dataset.RasterYSize)
    if not levels:
        return
    previous = gdal.GetConfigOption("COMPRESS_OVERVIEW")
    gdal.SetConfigOption("COMPRESS_OVERVIEW", "DEFLATE")
    try:
        dataset.BuildOverviews(method, levels)
    except RuntimeError as error:
        raise InputError(f"Cannot build overviews: {error}") from error
    finally:
        gdal.SetConfigOption("COMPRESS_OVERVIEW", previous)


def _write_band(band: gdal.Band, array: np.ndarray, col: int, row: int) -> None:
    try:
        band.WriteArray(array, col, row)
    except RuntimeError as error:
        raise InputError(f"Cannot write the output: {error}") from error


class OutputWriter:
    """Writes blended scores as classes (and probabilities, confidence) to GeoTIFFs on
    ``grid``. Used by one thread at a time."""

    def __init__(
        self, paths: OutputPaths, grid: Grid, contract: ModelContract, overviews: bool = True
    ) -> None:
        self.overviews = overviews
        self.channels = contract.class_channels
        self.values = np.array([contract.class_values[c] for c in self.channels], dtype=np.uint8)
        self.probabilities_in = False  # True: the model outputs probabilities already
        self.pixels_classified = 0
        self.height = grid.height
        self._pending: np.ndarray | None = None  # (planes, rows, cols) not yet written
        self._pending_row = 0
        self._pending_col = 0
        self.classes: gdal.Dataset | None = None
        self.probabilities: gdal.Dataset | None = None
        self.confidence: gdal.Dataset | None = None
        colors, names = class_palette(contract)
        self.classes = create_geotiff(
            paths.classes,
            grid,
            1,
            gdal.GDT_Byte,
            nodata=NODATA,
            colors=colors,
            names={NODATA: "no data", **names},
        )
        band = self.classes.GetRasterBand(1)
        band.SetDescription("land cover class")
        self.block_rows = band.GetBlockSize()[1]
        if paths.probabilities is not None:
            self.probabilities = create_geotiff(
                paths.probabilities, grid, len(self.channels), gdal.GDT_Byte
            )
            for index, channel in enumerate(self.channels, start=1):
                self.probabilities.GetRasterBand(index).SetDescription(
                    f"probability of {contract.class_names[channel]} (x 255)"
                )
        if paths.confidence is not None:
            self.confidence = create_geotiff(
                paths.confidence, grid, 1, gdal.GDT_Byte, nodata=NODATA
            )
            band = self.confidence.GetRasterBand(1)
            band.SetDescription("confidence: top probability (x 255)")

    def write(self, row: int, col: int, scores: np.ndarray, ok: np.ndarray) -> None:
        """Write blended ``scores`` (channels, rows, cols) at pixel (``row``, ``col``);
        ``ok`` (rows, cols) marks the pixels that get a class, the rest get nodata.

        Calls for one column range must come top to bottom (a stripe at a time)."""
        class_scores = scores[self.channels]
        winner = np.argmax(class_scores, axis=0)
        classes = self.values[winner]
        classes[~ok] = NODATA
        self.pixels_classified += int(np.count_nonzero(ok))
        arrays: list[np.ndarray] = [classes[np.newaxis]]
        if self.probabilities is not None or self.confidence is not None:
            if self.probabilities_in:
                total = class_scores.sum(axis=0, keepdims=True)
                probabilities = class_scores / np.where(total > 0, total, 1.0)
            else:
                probabilities = softmax(class_scores)
            probabilities = np.clip(probabilities, 0.0, 1.0)
            if self.probabilities is not None:
                scaled = np.rint(probabilities * 255.0).astype(np.uint8)
                scaled[:, ~ok] = 0
                arrays.append(scaled)
            if self.confidence is not None:
                top = np.take_along_axis(probabilities, winner[np.newaxis], axis=0)[0]
                confidence = np.clip(np.rint(top * 255.0), 1, 255).astype(np.uint8)
                confidence[~ok] = NODATA
                arrays.append(confidence[np.newaxis])
        self._queue(row, col, np.concatenate(arrays))

    def _queue(self, row: int, col: int, planes: np.ndarray) -> None:
        """Hold rows until they fill whole rows of GeoTIFF blocks, then write those and
        drop them from GDAL's cache: every block is compressed once, and the memory
        held does not grow with the raster."""
        if self._pending is None:
            self._pending, self._pending_row, self._pending_col = planes, row, col
        elif (row, col) == (self._pending_row + self._pending.shape[1], self._pending_col):
            self._pending = np.concatenate([self._pending, planes], axis=1)
        else:
            raise ValueError(f"rows written out of order at row {row}, column {col}")
        end = self._pending_row + self._pending.shape[1]
        boundary = end if end >= self.height else end - end % self.block_rows
        count = boundary - self._pending_row
        if count <= 0:
            return
        ready, self._pending = self._pending[:, :count], self._pending[:, count:]
        self._write_planes(self._pending_row, col, ready)
        self._pending_row = boundary
        if self._pending.shape[1] == 0:
            self._pending = None

    def _write_planes(self, row: int, col: int, planes: np.ndarray) -> None:
        index = 0
        for dataset in (self.classes, self.probabilities, self.confidence):
            if dataset is None:
                continue
            for band in range(1, dataset.RasterCount + 1):
                _write_band(dataset.GetRasterBand(band), planes[index], col, row)
                index += 1
            dataset.FlushCache()

    def finish(self) -> None:
        """Build overviews and close the files (flushing them)."""
        if self._pending is not None:
            raise ValueError("rows are missing at the bottom of a stripe")
        if self.overviews:
            for dataset, method in (
                (self.classes, "NEAREST"),
                (self.probabilities, "AVERAGE"),
                (self.confidence, "AVERAGE"),
            ):
                if dataset is not None:
                    build_overviews(dataset, method)
        self.close()

    def close(self) -> None:
        """Flush and close every file; safe to call twice."""
        for name in ("classes", "probabilities", "confidence"):
            dataset = getattr(self, name)
            if dataset is not None:
                dataset.FlushCache()
                setattr(self, name, None)
