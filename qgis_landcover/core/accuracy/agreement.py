# SPDX-License-Identifier: GPL-2.0-or-later
"""Agreement of a classified raster with a reference raster, block by block.

The comparison runs on the classified raster's grid. When the reference differs in
CRS, pixel size or alignment it is resampled on the fly with nearest neighbour through
a GDAL warped VRT; nothing is loaded whole, so memory does not depend on raster size.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from osgeo import gdal

from ..errors import InputError
from ..files.atomic import atomic_output
from ..progress import NullProgress, Progress, check_cancelled
from ..raster.class_raster import ClassBand, crs_name, open_class_band
from ..raster.grid import (
    TARGET_PIXELS,
    Bounds,
    Grid,
    Window,
    aligned_windows,
    format_bounds,
    intersect_bounds,
)
from ..raster.read_ahead import read_windows_ahead
from ..raster.reading import same_crs, transform_bounds, warp_to_grid
from ..raster.writing import create_geotiff, hex_to_rgb, write_qml_paletted
from .confusion import AGREE, DISAGREE, IGNORED, ConfusionMatrix
from .remap import check_class_names, format_remap, format_values
from .statistics import AgreementStatistics, accuracy_statistics
from .value_codes import DEFAULT_IGNORE_VALUES, ClassRule

DISAGREEMENT_COLORS = {IGNORED: "#bdbdbd", AGREE: "#1a9641", DISAGREE: "#d7191c"}
DISAGREEMENT_NAMES = {IGNORED: "ignored", AGREE: "agree", DISAGREE: "disagree"}


@dataclass(frozen=True)
class AgreementInputs:
    """What was compared, as the report states it."""

    classified: str
    reference: str
    comparison_grid: str
    extent: str
    reference_resampled: bool
    classified_remap: str
    reference_remap: str
    ignore_values: str
    classified_nodata: str
    reference_nodata: str


@dataclass(frozen=True)
class AgreementReport:
    """Outcome of :func:`assess_agreement`.

    Attributes:
        statistics: the statistics of the confusion matrix (rows = classification,
            columns = reference).
        ignored_pixels: pixels left out (nodata or an ignore value on either side).
        compared_pixels: pixels of the compared area, ignored ones included.
        inputs: what was compared.
        class_colors: class value -> ``'#rrggbb'`` from the rasters' colour tables.
        warnings: what the reader should know about the comparison.
        title: the report's title.
    """

    statistics: AgreementStatistics
    ignored_pixels: int
    compared_pixels: int
    inputs: AgreementInputs
    class_colors: Mapping[int, str] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    title: str = "Agreement with reference raster"

    def to_json(self) -> dict[str, Any]:
        """The report as the JSON document the algorithm writes: ``title``, the
        statistics' keys (:meth:`AgreementStatistics.to_json`) at the top level, then
        ``ignored_pixels``, ``compared_pixels``, ``class_colors``, ``warnings`` and
        ``inputs``."""
        return {
            "title": self.title,
            **self.statistics.to_json(),
            "ignored_pixels": self.ignored_pixels,
            "compared_pixels": self.compared_pixels,
            "class_colors": {str(c): color for c, color in self.class_colors.items()},
            "warnings": list(self.warnings),
            "inputs": asdict(self.inputs),
        }

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> AgreementReport:
        """The report of a :meth:`to_json` document (e.g. a report file read back)."""
        return cls(
            statistics=AgreementStatistics.from_json(document),
            ignored_pixels=document["ignored_pixels"],
            compared_pixels=document["compared_pixels"],
            inputs=AgreementInputs(**document["inputs"]),
            class_colors={int(c): color for c, color in document["class_colors"].items()},
            warnings=tuple(document["warnings"]),
            title=document["title"],
        )


def compared_area(
    classified: Grid, reference: Grid, extent: Bounds | None = None
) -> tuple[Window, Bounds]:
    """The window of ``classified`` where both rasters (and ``extent``, in the classified
    CRS, when given) overlap, and those bounds."""
    reference_bounds = transform_bounds(reference.bounds, reference.crs_wkt, classified.crs_wkt)
    overlap = intersect_bounds(classified.bounds, reference_bounds)
    if overlap is None:
        raise InputError(
            "The classified and reference rasters do not overlap: classified "
            f"{format_bounds(classified.bounds)} ({crs_name(classified.crs_wkt)}), reference "
            f"{format_bounds(reference_bounds)} (in the same CRS)."
        )
    if extent is not None:
        limited = intersect_bounds(overlap, extent)
        if limited is None:
            raise InputError(
                f"The extent {format_bounds(extent)} does not overlap the area both rasters "
                f"cover ({format_bounds(overlap)}, {crs_name(classified.crs_wkt)})."
            )
        overlap = limited
    return classified.window_for_bounds(overlap), overlap


def _aligned_window(reference: Grid, target: Grid) -> Window | None:
    """The window of ``reference`` that is pixel for pixel ``target``, or ``None`` when
    the grids differ in CRS, pixel size or alignment (or it is not inside)."""
    if not same_crs(reference.crs_wkt, target.crs_wkt):
        return None
    (rdx, rdy), (tdx, tdy) = reference.resolution, target.resolution
    if abs(rdx - tdx) > 1e-9 * tdx or abs(rdy - tdy) > 1e-9 * tdy:
        return None
    if np.sign(reference.geotransform[5]) != np.sign(target.geotransform[5]):
        return None
    col = (target.geotransform[0] - reference.geotransform[0]) / reference.geotransform[1]
    row = (target.geotransform[3] - reference.geotransform[3]) / reference.geotransform[5]
    if abs(col - round(col)) > 1e-6 or abs(row - round(row)) > 1e-6:
        return None
    window = Window(round(col), round(row), target.width, target.height)
    inside = (
        window.col_off >= 0
        and window.row_off >= 0
        and window.col_off + window.width <= reference.width
        and window.row_off + window.height <= reference.height
    )
    return window if inside else None


def _default_names_and_colors(
    classified: ClassBand,
    reference: ClassBand,
    classified_remap: Mapping[int, int],
    reference_remap: Mapping[int, int],
) -> tuple[dict[int, str], dict[int, str]]:
    """Class names and colours from the classified raster's category names and colour
    table, or from the reference's when the classified side is remapped (names of raw
    values would then be wrong) and the reference side is not."""
    for band, remap in ((classified, classified_remap), (reference, reference_remap)):
        if not remap:
            names, colors = band.category_names(), band.category_colors()
            if names or colors:
                return names, colors
    return {}, {}


def listed_classes(
    compared: Iterable[int],
    known: Mapping[int, str],
    ignore: Iterable[int],
    nodata: Iterable[int],
) -> list[int]:
    """The classes a report lists: those compared, and those of the class list (``known``:
    the map's category names, e.g. the model's classes, or the names given) that are
    absent from both rasters, as rows and columns of zeros, so that a class the model
    never predicted and the reference never holds is seen to be missing rather than
    silently left out. Ignore values and nodata values are not classes."""
    absent = set(known) - set(compared) - set(ignore) - set(nodata)
    return sorted(set(compared) | absent)


def assess_agreement(
    classified_path: str | os.PathLike[str],
    reference_path: str | os.PathLike[str],
    *,
    classified_band: int | None = None,
    reference_band: int | None = None,
    extent: Bounds | None = None,
    classified_remap: Mapping[int, int] | None = None,
    reference_remap: Mapping[int, int] | None = None,
    ignore_values: Iterable[int] | None = None,
    class_names: Mapping[int, str] | None = None,
    disagreement_path: str | os.PathLike[str] | None = None,
    progress: Progress | None = None,
    target_pixels: int = TARGET_PIXELS,
) -> AgreementReport:
    """Compare a classified raster with a reference raster over their common area.

    Args:
        classified_path: the classification (map); its grid is the comparison grid.
        reference_path: the reference labels, in any CRS / resolution.
        classified_band, reference_band: 1-based class bands; ``None`` for single-band
            rasters.
        extent: (xmin, ymin, xmax, ymax) in the classified raster's CRS limiting the
            comparison; ``None`` = wherever both rasters overlap.
        classified_remap, reference_remap: raw value -> class value, applied before
            comparing (values not listed are kept).
        ignore_values: class values (after the remaps) ignored on both sides; ``None``
            means :data:`DEFAULT_IGNORE_VALUES`. Each raster's nodata value is ignored
            in any case.
        class_names: value -> name; default from the rasters' category names.
        disagreement_path: optional GeoTIFF to write: uint8, 1 agree, 2 disagree,
            0 ignored (also its nodata), with a colour table and a ``.qml`` style.
        progress: progress, log and cancel; checked once per block.
        target_pixels: pixels per block read (memory scales with it).

    Raises:
        InputError: unreadable / unsuitable rasters or parameters, no overlap.
        CancelledError: the user cancelled (no disagreement raster is left behind).
    """
    progress = progress or NullProgress()
    classified = open_class_band(classified_path, classified_band, "classified raster")
    reference = open_class_band(reference_path, reference_band, "reference raster")
    classified_remap, reference_remap = dict(classified_remap or {}), dict(reference_remap or {})
    ignore = sorted(set(DEFAULT_IGNORE_VALUES if ignore_values is None else ignore_values))

    classified_grid, reference_grid = classified.grid, reference.grid
    window, bounds = compared_area(classified_grid, reference_grid, extent)
    target = classified_grid.window_grid(window)
    warnings: list[str] = []
    warped, reference_window = _reference_source(
        reference, reference_grid, target, progress, warnings
    )
    resampled = warped is not None

    confusion = ConfusionMatrix(
        predicted=ClassRule.build(classified_remap, classified.nodata_values()),
        reference=ClassRule.build(reference_remap, reference.nodata_values()),
        ignore_values=ignore,
    )
    progress.info(
        f"Comparing {window.width} x {window.height} pixels "
        f"({crs_name(target.crs_wkt)}, {target.resolution[0]:g} x {target.resolution[1]:g}) "
        f"over {format_bounds(bounds)}."
    )

    def read_reference(part: Window) -> np.ndarray:
        shifted = Window(
            part.col_off - window.col_off + reference_window.col_off,
            part.row_off - window.row_off + reference_window.row_off,
            part.width,
            part.height,
        )
        if warped is None:
            return reference.read(shifted)
        band = warped.GetRasterBand(1)
        array = band.ReadAsArray(shifted.col_off, shifted.row_off, shifted.width, shifted.height)
        band.FlushCache()  # read once: keep GDAL's block cache from filling up
        return array

    parts = aligned_windows(window, classified.block_size, target_pixels)
    readers = [classified.read, read_reference]
    names, colors = _default_names_and_colors(
        classified, reference, classified_remap, reference_remap
    )

    def check_names() -> None:
        # Only now are the compared classes known; before any output is complete.
        check_class_names(class_names or {}, confusion.classes, named=names)

    if disagreement_path is None:
        _stream(parts, readers, window, progress, lambda part, a, b: confusion.update(a, b))
        check_names()
    else:
        _write_disagreement(
            disagreement_path, target, parts, readers, window, progress, confusion, check_names
        )

    names.update(class_names or {})
    classes = listed_classes(
        confusion.classes, names, ignore, classified.nodata_values() | reference.nodata_values()
    )
    statistics = accuracy_statistics(confusion.aligned_matrix(classes), classes, names)
    if statistics.observations == 0:
        warnings.append(
            "Zero observations: every compared pixel is nodata or an ignore value in the "
            "classification or the reference."
        )
    report = AgreementReport(
        statistics=statistics,
        ignored_pixels=confusion.ignored,
        compared_pixels=window.width * window.height,
        inputs=AgreementInputs(
            classified=classified.describe(),
            reference=reference.describe(),
            comparison_grid=(
                f"{crs_name(target.crs_wkt)}, pixel {target.resolution[0]:g} x "
                f"{target.resolution[1]:g}, {window.width} x {window.height} pixels"
            ),
            extent=format_bounds(bounds),
            reference_resampled=resampled,
            classified_remap=format_remap(classified_remap),
            reference_remap=format_remap(reference_remap),
            ignore_values=format_values(ignore),
            classified_nodata=format_values(classified.nodata_values()),
            reference_nodata=format_values(reference.nodata_values()),
        ),
        class_colors={c: colors[c] for c in statistics.class_values if c in colors},
        warnings=tuple(warnings),
    )
    for message in warnings:
        progress.warning(message)
    return report


def _reference_source(
    reference: ClassBand,
    reference_grid: Grid,
    target: Grid,
    progress: Progress,
    warnings: list[str],
) -> tuple[gdal.Dataset | None, Window]:
    """How to read the reference on ``target``: ``(None, window of the reference file)``
    when the grids are aligned, else ``(nearest-neighbour warped VRT, its full window)``."""
    aligned = _aligned_window(reference_grid, target)
    if aligned is not None:
        return None, aligned
    progress.info(
        f"The reference ({crs_name(reference_grid.crs_wkt)}, pixel "
        f"{reference_grid.resolution[0]:g} x {reference_grid.resolution[1]:g}) differs from "
        f"the classified grid ({crs_name(target.crs_wkt)}, pixel {target.resolution[0]:g} x "
        f"{target.resolution[1]:g}) in CRS, pixel size or alignment: it is resampled on the "
        "fly to the classified grid with nearest neighbour."
    )
    if not reference.nodata_values():
        warnings.append(
            "The reference has no nodata value: after resampling, pixels outside its "
            "footprint read as 0 and are left out only while 0 is an ignore value."
        )
    source = reference.dataset
    if source.RasterCount > 1:
        # Warp only the class band (a virtual, in-memory selection of it).
        source = gdal.Translate("", source, format="VRT", bandList=[reference.band])
    return warp_to_grid(source, target, "near"), target.full_window


def _write_disagreement(
    path: str | os.PathLike[str],
    target: Grid,
    parts: list[Window],
    readers: list[Callable[[Window], np.ndarray]],
    window: Window,
    progress: Progress,
    confusion: ConfusionMatrix,
    before_commit: Callable[[], None],
) -> None:
    """Stream the comparison while writing the agree / disagree / ignored raster;
    ``before_commit`` may still refuse the result (raise) before the raster is renamed
    into place."""
    with atomic_output(path) as temporary:
        # The palette goes in before any pixel (GDAL 3.10 refuses it afterwards).
        output = create_geotiff(
            temporary,
            target,
            1,
            gdal.GDT_Byte,
            nodata=IGNORED,
            colors={k: hex_to_rgb(v) for k, v in DISAGREEMENT_COLORS.items()},
            names=DISAGREEMENT_NAMES,
        )
        try:
            band = output.GetRasterBand(1)

            def count_and_write(part: Window, a: np.ndarray, b: np.ndarray) -> None:
                agreement = confusion.update_agreement(a, b)
                band.WriteArray(
                    agreement, part.col_off - window.col_off, part.row_off - window.row_off
                )

            _stream(parts, readers, window, progress, count_and_write)
            output.FlushCache()
            before_commit()
        finally:
            # Close the file before it is renamed into place (or removed on error).
            band = None
            output = None
    write_qml_paletted(
        Path(path).with_suffix(".qml"),
        {k: hex_to_rgb(v) for k, v in DISAGREEMENT_COLORS.items() if k != IGNORED},
        DISAGREEMENT_NAMES,
    )


def _stream(
    parts: list[Window],
    readers: list[Callable[[Window], np.ndarray]],
    window: Window,
    progress: Progress,
    consume: Callable[[Window, np.ndarray, np.ndarray], None],
) -> None:
    """Read ``parts`` ahead and hand each pair of blocks to ``consume``; progress and
    cancel once per block."""
    done = 0
    total = max(1, window.width * window.height)
    for part, (classified_block, reference_block) in read_windows_ahead(readers, parts):
        check_cancelled(progress)
        consume(part, classified_block, reference_block)
        done += part.width * part.height
        progress.set_progress(100.0 * done / total)
