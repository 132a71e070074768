# SPDX-License-Identifier: GPL-2.0-or-later
"""Training pairs (image raster + label raster) and windowed reads from them.

A pair is read through windows with GDAL (:mod:`qgis_landcover.core.raster.reading`), so a
raster of any size costs only the window's memory; ``cache=True`` loads the pair's
area once per process instead. When the label grid differs from the image grid, the
labels are warped onto the image grid (nearest neighbour) on the fly. The project's
``.npz`` patches (image channels 0-3, label channel 8) are read directly.
"""

from __future__ import annotations

import csv
import glob
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from osgeo import gdal

from qgis_landcover.core.errors import InputError
from qgis_landcover.core.inference.tile_plan import reflect_pad
from qgis_landcover.core.raster.grid import Window
from qgis_landcover.core.raster.reading import (
    band_nodata,
    check_band,
    open_raster,
    raster_grid,
    read_window,
    same_grid,
    warp_to_grid,
)

from .labels import IGNORE_INDEX, LabelMapper

gdal.UseExceptions()


@dataclass(frozen=True)
class PairSpec:
    """One training pair.

    Attributes:
        image: image raster (or ``.npz`` patch, then ``label`` is ``None``).
        label: label raster, ``None`` for ``.npz``.
        window: optional area of the image to use, ``Window`` in image pixels.
    """

    image: str
    label: str | None = None
    window: Window | None = None

    @property
    def name(self) -> str:
        suffix = "" if self.window is None else f"[{window_text(self.window)}]"
        return Path(self.image).name + suffix


def window_text(window: Window) -> str:
    return f"{window.col_off} {window.row_off} {window.width} {window.height}"


def parse_window(value: Any, where: str) -> Window | None:
    """``[col, row, width, height]`` or ``"col row width height"`` -> Window."""
    if value is None or value == "":
        return None
    parts = value.replace(",", " ").split() if isinstance(value, str) else list(value)
    try:
        col, row, width, height = (int(p) for p in parts)
    except (TypeError, ValueError):
        raise InputError(
            f"{where}: window must be 'col row width height', not {value!r}."
        ) from None
    if col < 0 or row < 0 or width <= 0 or height <= 0:
        raise InputError(f"{where}: window {value!r} must have offsets >= 0 and sizes > 0.")
    return Window(col, row, width, height)


def resolve_pairs(
    entries: Iterable[Any], image_suffix: str = "_naip.tif", label_suffix: str = "_labels.tif"
) -> list[PairSpec]:
    """Expand data entries into pairs.

    Each entry is a pairs CSV (columns ``image,label[,window]``, paths relative to the
    CSV), a folder (``<name><image_suffix>`` + ``<name><label_suffix>`` and ``*.npz``), a
    ``.npz`` file, a glob of those, or a mapping ``{image, label, window}``.
    """
    pairs: list[PairSpec] = []
    for entry in entries:
        if isinstance(entry, dict):
            unknown = set(entry) - {"image", "label", "window"}
            if "image" not in entry or unknown:
                raise InputError(f"Data entry {entry!r} must have 'image' (and 'label', 'window').")
            pairs.append(pair_from_paths(entry["image"], entry.get("label"), entry.get("window")))
            continue
        text = os.fspath(entry)
        matches = sorted(glob.glob(text)) if glob.has_magic(text) else [text]
        if not matches:
            raise InputError(f"No file matches {text}.")
        for match in matches:
            pairs += pairs_from_path(Path(match), image_suffix, label_suffix)
    return pairs


def pair_from_paths(image: str, label: str | None, window: Any = None) -> PairSpec:
    where = f"pair {image}"
    if not str(image).lower().endswith(".npz") and not label:
        raise InputError(f"{where}: a label raster is required.")
    return PairSpec(str(image), str(label) if label else None, parse_window(window, where))


def pairs_from_path(path: Path, image_suffix: str, label_suffix: str) -> list[PairSpec]:
    if path.is_dir():
        return pairs_from_folder(path, image_suffix, label_suffix)
    if not path.is_file():
        raise InputError(f"Training data not found: {path}")
    if path.suffix.lower() == ".npz":
        return [PairSpec(str(path))]
    if path.suffix.lower() == ".csv":
        return pairs_from_csv(path)
    raise InputError(f"{path}: expected a pairs CSV, a folder or a .npz patch.")


def pairs_from_csv(path: Path) -> list[PairSpec]:
    with path.open(newline="", encoding="utf-8") as stream:
        reader = csv.DictReader(stream)
        if reader.fieldnames is None or "image" not in reader.fieldnames:
            raise InputError(f"{path}: the pairs CSV needs a header with 'image' and 'label'.")
        pairs = []
        for number, row in enumerate(reader, start=2):
            image = (row.get("image") or "").strip()
            if not image:
                raise InputError(f"{path}, line {number}: empty image path.")
            label = (row.get("label") or "").strip() or None
            pairs.append(
                pair_from_paths(
                    str(path.parent / image),
                    str(path.parent / label) if label else None,
                    row.get("window"),
                )
            )
    if not pairs:
        raise InputError(f"{path} lists no pairs.")
    return pairs


def pairs_from_folder(folder: Path, image_suffix: str, label_suffix: str) -> list[PairSpec]:
    pairs = [PairSpec(str(p)) for p in sorted(folder.glob("*.npz"))]
    for image in sorted(folder.glob(f"*{image_suffix}")):
        label = image.with_name(image.name[: -len(image_suffix)] + label_suffix)
        if not label.exists():
            raise InputError(f"{image} has no label raster {label.name} beside it.")
        pairs.append(PairSpec(str(image), str(label)))
    if not pairs:
        raise InputError(
            f"No pairs in {folder}: expected '*{image_suffix}' + '*{label_suffix}' or '*.npz'."
        )
    return pairs


class PairSource(Protocol):
    """Windowed access to one pair's usable area (windows are relative to it)."""

    name: str
    width: int
    height: int

    def read_target(self, window: Window) -> np.ndarray:
        """uint8 targets (rows, cols): channel indices, ``IGNORE_INDEX`` where unlabelled."""

    def read_image(self, window: Window) -> np.ndarray:
        """float32 raw DN (bands, rows, cols); sets nothing to ignore (see ``image_valid``)."""

    def image_valid(self, image: np.ndarray) -> np.ndarray:
        """bool (rows, cols): False where the image itself is no data."""


class RasterPair:
    """A GDAL image raster + label raster.

    GDAL handles are opened lazily in each process (DataLoader workers fork), and are
    never shared between processes.
    """

    def __init__(
        self,
        spec: PairSpec,
        mapper: LabelMapper,
        bands: Sequence[int],
        label_band: int = 1,
        cache: bool = False,
    ) -> None:
        self.spec = spec
        self.mapper = mapper
        self.bands = list(bands)
        self.label_band = label_band
        self.cache = cache
        self.name = spec.name
        self.pid = -1
        image = open_raster(spec.image)
        for band in self.bands:
            check_band(image, band)
        grid = raster_grid(image)
        area = spec.window or grid.full_window
        if area.col_off + area.width > grid.width or area.row_off + area.height > grid.height:
            raise InputError(
                f"{spec.name}: the window lies outside the image ({grid.width} x {grid.height})."
            )
        self.area = area
        self.width, self.height = area.width, area.height
        self.image_nodata = [band_nodata(image, b) for b in self.bands]
        self.open_in_process(image)

    def open_in_process(self, image: gdal.Dataset | None = None) -> None:
        image = image or open_raster(self.spec.image)
        assert self.spec.label is not None
        label = open_raster(self.spec.label)
        check_band(label, self.label_band)
        nodata = band_nodata(label, self.label_band)
        image_grid, label_grid = raster_grid(image), raster_grid(label)
        if not same_grid(image_grid, label_grid):
            if label.RasterCount != 1 and self.label_band != 1:
                raise InputError(f"{self.spec.label}: warping needs a single-band label raster.")
            if nodata is None:
                # Pixels outside the label raster must read as no data, never as a class.
                nodata = 65535 if label.GetRasterBand(1).DataType != gdal.GDT_Byte else 255
            label = warp_to_grid(label, image_grid, "near", source_nodata=nodata)
        self.label_nodata = nodata
        self.image_ds, self.label_ds = image, label
        self.image_cache: np.ndarray | None = None
        self.target_cache: np.ndarray | None = None
        if self.cache:
            whole = Window(0, 0, self.width, self.height)
            self.image_cache = self.read_image_raw(whole)
            self.target_cache = self.read_target_raw(whole)
            self.close()  # everything is in memory now
        self.pid = os.getpid()

    def close(self) -> None:
        """Release the GDAL datasets (cached arrays stay)."""
        self.image_ds = self.label_ds = None

    def ensure_open(self) -> None:
        # Cached arrays survive a fork (copy-on-write); GDAL handles must not be reused.
        if self.pid != os.getpid() and self.target_cache is None:
            self.open_in_process()

    def absolute(self, window: Window) -> Window:
        return Window(
            window.col_off + self.area.col_off,
            window.row_off + self.area.row_off,
            window.width,
            window.height,
        )

    def read_image_raw(self, window: Window) -> np.ndarray:
        return read_window(self.image_ds, self.absolute(window), self.bands).astype(np.float32)

    def read_target_raw(self, window: Window) -> np.ndarray:
        labels = read_window(self.label_ds, self.absolute(window), self.label_band)
        return self.mapper.encode(labels, self.label_nodata)

    def read_target(self, window: Window) -> np.ndarray:
        self.ensure_open()
        if self.target_cache is not None:
            return self.target_cache[window_slices(window)].copy()
        return self.read_target_raw(window)

    def read_image(self, window: Window) -> np.ndarray:
        self.ensure_open()
        if self.image_cache is not None:
            return self.image_cache[(slice(None), *window_slices(window))].copy()
        return self.read_image_raw(window)

    def image_valid(self, image: np.ndarray) -> np.ndarray:
        if all(v is None for v in self.image_nodata):
            return np.ones(image.shape[1:], dtype=bool)
        # A pixel is no data when every band holds its band's nodata value.
        missing = np.ones(image.shape[1:], dtype=bool)
        for band, nodata in zip(image, self.image_nodata, strict=True):
            missing &= band == nodata if nodata is not None else False
        return ~missing

    def __getstate__(self) -> dict[str, Any]:
        # GDAL datasets cannot be pickled; the worker reopens them.
        state = self.__dict__.copy()
        for key in ("image_ds", "label_ds", "image_cache", "target_cache"):
            state[key] = None
        state["pid"] = -1
        return state


class NpzPatch:
    """One ``.npz`` patch (array ``arr_0`` of shape (1, channels, rows, cols) or
    (channels, rows, cols)), loaded once; the image is ``image_channels``, the label
    ``label_channel``."""

    def __init__(
        self,
        spec: PairSpec,
        mapper: LabelMapper,
        image_channels: Sequence[int],
        label_channel: int,
    ) -> None:
        self.name = spec.name
        try:
            with np.load(spec.image) as archive:
                array = archive[archive.files[0]]
        except (OSError, ValueError, IndexError) as error:
            raise InputError(f"Cannot read the patch {spec.image}: {error}") from error
        if array.ndim == 4:
            array = array[0]
        channels = [*image_channels, label_channel]
        if array.ndim != 3 or max(channels) >= array.shape[0]:
            raise InputError(
                f"{spec.image}: expected (channels, rows, cols) with channel {max(channels)}, "
                f"got shape {array.shape}."
            )
        area = spec.window or Window(0, 0, array.shape[2], array.shape[1])
        array = array[:, area.row_off : area.row_off + area.height, :]
        array = array[:, :, area.col_off : area.col_off + area.width]
        if array.shape[1:] != (area.height, area.width):
            raise InputError(f"{spec.name}: the window lies outside the patch.")
        self.image = np.ascontiguousarray(array[list(image_channels)], dtype=np.float32)
        self.target = mapper.encode(array[label_channel])
        self.height, self.width = self.target.shape

    def read_target(self, window: Window) -> np.ndarray:
        return self.target[window_slices(window)].copy()

    def read_image(self, window: Window) -> np.ndarray:
        return self.image[(slice(None), *window_slices(window))].copy()

    def image_valid(self, image: np.ndarray) -> np.ndarray:
        return np.ones(image.shape[1:], dtype=bool)


def window_slices(window: Window) -> tuple[slice, slice]:
    return (
        slice(window.row_off, window.row_off + window.height),
        slice(window.col_off, window.col_off + window.width),
    )


def open_sources(
    pairs: Sequence[PairSpec],
    mapper: LabelMapper,
    bands: Sequence[int],
    label_band: int = 1,
    npz_image_channels: Sequence[int] = (0, 1, 2, 3),
    npz_label_channel: int = 8,
    cache: bool = False,
) -> list[PairSource]:
    """Open every pair (checking files, bands and windows up front)."""
    sources: list[PairSource] = []
    for spec in pairs:
        if spec.label is None:
            sources.append(NpzPatch(spec, mapper, npz_image_channels, npz_label_channel))
        else:
            sources.append(RasterPair(spec, mapper, bands, label_band, cache))
    return sources


def read_patch(source: PairSource, window: Window, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Image (bands, size, size) float32 and target (size, size) uint8 for ``window``
    clipped to the source; the part outside is padded with 0 / ``IGNORE_INDEX``, and
    pixels where the image is no data are ignored."""
    clipped = Window(
        window.col_off,
        window.row_off,
        min(window.width, source.width - window.col_off),
        min(window.height, source.height - window.row_off),
    )
    target = source.read_target(clipped)
    image = source.read_image(clipped)
    target[~source.image_valid(image)] = IGNORE_INDEX
    return pad_patch(image, target, size)


def read_with_context(source: PairSource, window: Window) -> tuple[np.ndarray, np.ndarray]:
    """Image (bands, rows, cols) float32 and target (rows, cols) uint8 for ``window``,
    which may reach past the source on any side (validation tiles grown by the model's
    margin). As the plugin's classifier does, the image is filled by reflection outside
    the source; the target is ``IGNORE_INDEX`` there and where the image is no data."""
    col0, row0 = max(window.col_off, 0), max(window.row_off, 0)
    col1 = min(window.col_off + window.width, source.width)
    row1 = min(window.row_off + window.height, source.height)
    if col1 <= col0 or row1 <= row0:
        raise ValueError(f"window {window} does not overlap the source")
    inside = Window(col0, row0, col1 - col0, row1 - row0)
    target = source.read_target(inside)
    image = source.read_image(inside)
    target[~source.image_valid(image)] = IGNORE_INDEX
    before = (row0 - window.row_off, col0 - window.col_off)
    after = (window.row_off + window.height - row1, window.col_off + window.width - col1)
    pad = ((before[0], after[0]), (before[1], after[1]))
    return reflect_pad(image, before, after), np.pad(target, pad, constant_values=IGNORE_INDEX)


def pad_patch(image: np.ndarray, target: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    rows, cols = target.shape
    if (rows, cols) == (size, size):
        return image, target
    padded_image = np.zeros((image.shape[0], size, size), dtype=np.float32)
    padded_target = np.full((size, size), IGNORE_INDEX, dtype=np.uint8)
    padded_image[:, :rows, :cols] = image
    padded_target[:rows, :cols] = target
    return padded_image, padded_target
