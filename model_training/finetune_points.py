# SPDX-License-Identifier: GPL-2.0-or-later
"""Fine-tune a network from a point (or polygon) layer of labels: the full-training
alternative to ``landcover:adapt_model`` for users with PyTorch (issue 15).

The same label layer as the plugin's (any OGR vector format, any CRS, a field of
class values or names) is rasterised onto the image's grid as a sparse label raster
(0: no label; points give their pixel, polygons every pixel centre inside), and the
existing trainer (:func:`model_training.trainer.run`) fine-tunes on windows around the
labels: one training pair per ``patch_size`` tile whose scored centre (``patch_size -
2 * output_margin``) holds labels, everything else ignored in the loss. Defaults:
``configs/finetune_2018.yaml`` (the 2018 network from its CNTK weights), without
validation, over-sampling or the labelled-fraction filter (point labels cover a few
pixels per window), exporting the last weights with the plugin's contract and
features output::

    python -m model_training.finetune_points IMAGE.tif LABELS.gpkg --field class \\
        --run-dir runs/points [--config CONFIG.yaml] [--set train.epochs=2 ...]
"""

from __future__ import annotations

import argparse
import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from osgeo import gdal, ogr, osr

from qgis_landcover.core.errors import InputError
from qgis_landcover.core.files.atomic import atomic_output
from qgis_landcover.core.raster.reading import open_raster

from .config import Config, apply_overrides, config_from_dict, load_config

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = ROOT / "model_training" / "configs" / "finetune_2018.yaml"
NO_LABEL = 0
"""The label raster's value for pixels without a label (ignored in the loss)."""

gdal.UseExceptions()
ogr.UseExceptions()


@dataclass(frozen=True)
class PointLabels:
    """What :func:`rasterize_labels` wrote.

    Attributes:
        label_raster: the sparse label GeoTIFF on the image's grid.
        pairs_csv: the training pairs (one window per tile holding labels).
        labels_per_class: {class value: labelled pixels}.
        windows: training windows written.
        edge_labels: labels within the model's margin of the image's edge, which no
            training window scores (the trainer reads windows inside the image, and
            the loss sees only their centre): they are not learnt.
    """

    label_raster: Path
    pairs_csv: Path
    labels_per_class: dict[int, int]
    windows: int
    edge_labels: int


def class_value(value: Any, classes: dict[int, str]) -> int:
    """A label's class value from a value (``3``, ``"3"``, ``3.0``) or a class name
    (any case). Raises :class:`InputError` for anything else."""
    text = str(value).strip()
    try:
        number = float(text)
    except ValueError:
        by_name = {name.strip().lower(): v for v, name in classes.items()}
        if text.lower() in by_name:
            return by_name[text.lower()]
    else:
        if number.is_integer() and int(number) in classes:
            return int(number)
    known = ", ".join(f"{v} ({n})" for v, n in sorted(classes.items()))
    raise InputError(f"Label class {value!r} is not one of the classes: {known}.")


def rasterize_labels(
    image: Path,
    labels: Path,
    field: str,
    classes: dict[int, str],
    folder: Path,
    *,
    patch_size: int,
    margin: int,
    layer_name: str | None = None,
) -> PointLabels:
    """Write ``folder``/labels.tif (uint8, the image's grid, 0 = no label) and
    ``folder``/pairs.csv (``image,label,window``: the ``patch_size`` tiles whose scored
    centre holds labels; tiles of ``patch_size - 2 * margin`` pixels from the image's
    origin, each read with ``margin`` pixels around it, shifted inside the image at
    its edges).

    Raises:
        InputError: no such layer or field, unknown classes, labels outside the image,
            fewer than two classes.
    """
    dataset = open_raster(image)
    width, height = dataset.RasterXSize, dataset.RasterYSize
    source = ogr.Open(str(labels))
    if source is None:
        raise InputError(f"Cannot open the label layer {labels}.")
    layer = source.GetLayerByName(layer_name) if layer_name else source.GetLayer(0)
    if layer is None:
        raise InputError(f"{labels} has no layer {layer_name!r}.")
    if layer.GetLayerDefn().GetFieldIndex(field) < 0:
        names = [layer.GetLayerDefn().GetFieldDefn(i).GetName()
                 for i in range(layer.GetLayerDefn().GetFieldCount())]  # fmt: skip
        raise InputError(f"The label layer has no field '{field}'. Fields: {', '.join(names)}.")
    target = osr.SpatialReference()
    target.ImportFromWkt(dataset.GetProjection())
    target.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    # Rasterise in memory on the image's grid: each feature burns its class value
    # (points: their pixel; polygons: the pixel centres inside).
    memory = gdal.GetDriverByName("MEM").Create("", width, height, 1, gdal.GDT_Byte)
    memory.SetGeoTransform(dataset.GetGeoTransform())
    memory.SetProjection(dataset.GetProjection())
    scratch = ogr.GetDriverByName("Memory").CreateDataSource("labels")
    burned = scratch.CreateLayer("labels", target, ogr.wkbUnknown)
    burned.CreateField(ogr.FieldDefn("value", ogr.OFTInteger))
    layer_srs = layer.GetSpatialRef()
    transform = None
    if layer_srs is not None and not layer_srs.IsSame(target):
        layer_srs = layer_srs.Clone()
        layer_srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
        transform = osr.CoordinateTransformation(layer_srs, target)
    x0, dx, _, y0, _, dy = dataset.GetGeoTransform()
    outside = 0
    for feature in layer:
        value = feature.GetField(field)
        geometry = feature.GetGeometryRef()
        if value is None or str(value).strip() == "" or geometry is None:
            continue
        geometry = geometry.Clone()
        if transform is not None:
            geometry.Transform(transform)
        xmin, xmax, ymin, ymax = geometry.GetEnvelope()
        cols = sorted(((xmin - x0) / dx, (xmax - x0) / dx))
        rows = sorted(((ymax - y0) / dy, (ymin - y0) / dy))
        if cols[1] < 0 or rows[1] < 0 or cols[0] >= width or rows[0] >= height:
            outside += 1
            continue
        copy = ogr.Feature(burned.GetLayerDefn())
        copy.SetField("value", class_value(value, classes))
        copy.SetGeometry(geometry)
        burned.CreateFeature(copy)
    if outside:
        raise InputError(f"{outside} labels lie outside the image {image.name}.")
    gdal.RasterizeLayer(memory, [1], burned, options=["ATTRIBUTE=value"])
    grid = memory.GetRasterBand(1).ReadAsArray()
    counts = {int(v): int(n) for v, n in zip(*np.unique(grid, return_counts=True), strict=True)
              if v != NO_LABEL}  # fmt: skip
    if len(counts) < 2:
        raise InputError(
            f"The labels cover {len(counts)} class(es) ({counts}); fine-tuning needs at least two."
        )
    folder.mkdir(parents=True, exist_ok=True)
    label_path = folder / "labels.tif"
    with atomic_output(label_path) as temporary:
        gdal.GetDriverByName("GTiff").CreateCopy(
            str(temporary), memory, options=["COMPRESS=DEFLATE", "TILED=YES"]
        )
    cell = patch_size - 2 * margin
    if cell <= 0:
        raise InputError(f"patch_size {patch_size} leaves no scored centre for margin {margin}.")
    rows, cols = np.nonzero(grid)
    tiles = sorted(set(zip((rows // cell).tolist(), (cols // cell).tolist(), strict=True)))
    pairs_path = folder / "pairs.csv"
    with atomic_output(pairs_path) as temporary, temporary.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", "label", "window"])
        for tile_row, tile_col in tiles:
            col = min(max(tile_col * cell - margin, 0), max(width - patch_size, 0))
            row = min(max(tile_row * cell - margin, 0), max(height - patch_size, 0))
            writer.writerow(
                [str(image.resolve()), str(label_path.resolve()),
                 f"{col} {row} {min(patch_size, width)} {min(patch_size, height)}"]
            )  # fmt: skip
    edge = (rows < margin) | (rows >= height - margin) | (cols < margin) | (cols >= width - margin)
    return PointLabels(label_path, pairs_path, counts, len(tiles), int(edge.sum()))


def points_config(config: Config, run_dir: Path, pairs: Path, overrides: Sequence[str]) -> Config:
    """``config`` set to train on ``pairs``: no validation, no over-sampling, no
    labelled-fraction filter, the last weights exported, 0 ignored; then ``overrides``."""
    raw = apply_overrides(
        config.to_dict(),
        [
            f"data.train=[{pairs}]",
            "data.val=[]",
            f"labels.ignore_values={sorted({*config.labels.ignore_values, NO_LABEL})}",
            "labels.remap={}",
            "sampler.rare_classes=[]",
            "sampler.min_labelled_fraction=0.0",
            "train.best_metric=none",
            f"train.run_dir={run_dir}",
            f"export.name={config.export.name}-points",
            *overrides,
        ],
    )
    return config_from_dict(raw)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m model_training.finetune_points",
        description=__doc__.split("\n\n")[0],
    )
    parser.add_argument("image", type=Path, help="the imagery (any GDAL raster)")
    parser.add_argument("labels", type=Path, help="point or polygon layer (any OGR format)")
    parser.add_argument("--field", required=True, help="class values or names")
    parser.add_argument("--layer", help="layer name (default: the first)")
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="training config")
    parser.add_argument("--run-dir", type=Path, default=Path("runs/points"), help="run folder")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE", help="override a setting")  # fmt: skip
    args = parser.parse_args(argv)
    from .trainer import run_command

    def prepare() -> tuple[Config, None]:
        config = load_config(args.config)
        labels = rasterize_labels(
            args.image,
            args.labels,
            args.field,
            config.labels.classes,
            args.run_dir / "labels",
            patch_size=config.data.patch_size,
            margin=config.model.output_margin,
            layer_name=args.layer,
        )
        print(
            f"labels: {labels.labels_per_class} pixels per class in {labels.windows} "
            f"windows ({labels.pairs_csv})"
        )
        if labels.edge_labels:
            print(
                f"warning: {labels.edge_labels} labels lie within the model's margin "
                f"({config.model.output_margin} px) of the image's edge: no training "
                "window scores them."
            )
        return points_config(config, args.run_dir, labels.pairs_csv, args.overrides), None

    return run_command(prepare)


if __name__ == "__main__":
    raise SystemExit(main())
