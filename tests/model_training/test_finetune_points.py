# SPDX-License-Identifier: GPL-2.0-or-later
"""Fine-tuning from a point layer: the sparse label raster, the training windows, the
messages, and one short run that exports an adaptable model.

Oracles: the pixels the points were drawn from (in another CRS), the window geometry
worked by hand (128 px scored centres read with 64 px around them)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from osgeo import gdal

from model_training import finetune_points
from model_training.finetune_points import rasterize_labels
from qgis_landcover.core.errors import InputError
from qgis_landcover.core.models.contract import read_contract

from ..rasters import MOSAIC_NAIP
from ..vectors import write_pixel_points

IMAGE = MOSAIC_NAIP
CLASSES = {1: "water", 2: "tree canopy", 3: "low vegetation", 4: "barren and impervious"}
PIXELS = [(10, 20, "tree canopy"), (300, 700, "3"), (500, 1000, 3), (130, 130, "Tree Canopy")]


def write_points(path: Path, pixels: list[tuple[int, int, object]]) -> Path:
    """Pixel centres of the mosaic as a GeoPackage in EPSG:4326, text field ``class``."""
    return write_pixel_points(path, IMAGE, [(row, col, str(value)) for row, col, value in pixels])


def test_points_become_a_sparse_label_raster_and_windows(tmp_path: Path) -> None:
    labels = write_points(tmp_path / "labels.gpkg", PIXELS)
    result = rasterize_labels(
        IMAGE, labels, "class", CLASSES, tmp_path / "out", patch_size=256, margin=64
    )
    grid = gdal.Open(str(result.label_raster)).ReadAsArray()
    assert grid.shape == (512, 1024)
    expected = np.zeros_like(grid)
    for row, col, value in PIXELS:
        expected[row, col] = 2 if "tree" in str(value).lower() else 3
    np.testing.assert_array_equal(grid, expected)
    assert result.labels_per_class == {2: 2, 3: 2}
    with result.pairs_csv.open() as handle:
        windows = [tuple(int(v) for v in r["window"].split()) for r in csv.DictReader(handle)]
    # Scored cells of 128 px: (0, 0), (1, 1), (2, 5), (3, 7); each read with 64 px
    # around it, shifted inside the 1024 x 512 image at its edges.
    assert windows == [(0, 0, 256, 256), (64, 64, 256, 256), (576, 192, 256, 256),
                       (768, 256, 256, 256)]  # fmt: skip
    # (10, 20) and (500, 1000) lie within 64 px of the edge: no window scores them.
    assert result.edge_labels == 2


@pytest.mark.parametrize(
    ("pixels", "message"),
    [
        ([(10, 20, "forest"), (20, 20, "3")], r"Label class 'forest' is not one of"),
        ([(10, 20, "2"), (20, 20, "2")], r"at least two"),
    ],
)
def test_bad_labels(tmp_path: Path, pixels: list, message: str) -> None:
    labels = write_points(tmp_path / "labels.gpkg", pixels)
    with pytest.raises(InputError, match=message):
        rasterize_labels(IMAGE, labels, "class", CLASSES, tmp_path / "out", patch_size=256,
                         margin=64)  # fmt: skip
    with pytest.raises(InputError, match=r"no field 'kind'"):
        rasterize_labels(IMAGE, labels, "kind", CLASSES, tmp_path / "out", patch_size=256,
                         margin=64)  # fmt: skip


def test_labels_outside_the_image(tmp_path: Path) -> None:
    labels = write_points(tmp_path / "labels.gpkg", [(10, 20, "2"), (10, 5000, "3")])
    with pytest.raises(InputError, match=r"1 labels lie outside the image"):
        rasterize_labels(IMAGE, labels, "class", CLASSES, tmp_path / "out", patch_size=256,
                         margin=64)  # fmt: skip


@pytest.mark.slow
def test_one_step_exports_an_adaptable_model(tmp_path: Path) -> None:
    torch.set_num_threads(2)
    labels = write_points(tmp_path / "labels.gpkg", PIXELS)
    run_dir = tmp_path / "run"
    code = finetune_points.main(
        [str(IMAGE), str(labels), "--field", "class", "--run-dir", str(run_dir),
         "--set", "train.epochs=1", "--set", "train.steps_per_epoch=1",
         "--set", "train.batch_size=1", "--set", "train.checkpoint_every=1"]
    )  # fmt: skip
    assert code == 0
    contract = read_contract(run_dir / "model.onnx")
    assert contract.name == "azure-2018-unet-finetuned-points"
    assert contract.class_names == {0: "water", 1: "tree canopy", 2: "low vegetation",
                                    3: "barren and impervious"}  # fmt: skip
    assert contract.features_output is not None
    assert contract.features_output.head_channels == (1, 2, 3, 4)
