# SPDX-License-Identifier: GPL-2.0-or-later
"""Uncertainty points: lowest margins first, spread in space and across classes, and
the whole road through the core classify against the pointwise model's closed form."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal

from qgis_landcover.core.errors import CancelledError, InputError
from qgis_landcover.core.inference.gdal_source import GdalImageSource
from qgis_landcover.core.inference.pipeline import ClassifyOptions
from qgis_landcover.core.inference.session import clear_session_cache
from qgis_landcover.core.progress import NullProgress
from qgis_landcover.core.sampling.uncertainty import (
    Candidates,
    cell_candidates,
    select_points,
    suggest_points,
    top_two_margin,
)

from ...conftest import DATA
from ...onnx_models import contract_for, pointwise_model, pointwise_reference

MOSAIC = DATA / "chesapeake_1m_patches" / "m_3708020_sw_17_1_2014_mosaic_naip.tif"


def test_top_two_margin() -> None:
    probabilities = np.array([[[0.5, 0.2]], [[0.3, 0.2]], [[0.2, 0.6]]])
    np.testing.assert_allclose(top_two_margin(probabilities), [[0.2, 0.4]])
    np.testing.assert_allclose(top_two_margin(probabilities[:1]), [[1.0, 1.0]])


def test_cell_candidates_take_each_cells_lowest_valid_margin() -> None:
    rows, cols = np.mgrid[0:6, 0:6]
    margins = ((5 - rows) * 6 + cols).astype(float)  # lowest at the bottom left
    classes = np.ones((6, 6), dtype=int)
    valid = np.ones((6, 6), dtype=bool)
    valid[5, 0] = False  # the lowest is nodata: its cell offers the next one
    found = cell_candidates(margins, classes, valid, cell=4, row_off=8, col_off=2)
    # Cells of the array: rows 0-3 / 4-5 x cols 0-3 / 4-5; offsets added.
    got = {
        (r, c): m
        for r, c, m in zip(found.rows.tolist(), found.cols.tolist(), found.margins, strict=True)
    }
    assert got == {(11, 2): 12.0, (11, 6): 16.0, (13, 3): 1.0, (13, 6): 4.0}
    with pytest.raises(ValueError):
        cell_candidates(margins, classes, valid, cell=4, row_off=2)


def score_map() -> tuple[np.ndarray, np.ndarray]:
    """A synthetic 60 x 60 map: class 1 left, class 2 right, margins rising with the
    distance to two spots (row 10, col 15) in class 1 and (row 45, col 40) in class 2,
    class 2's spot less sure (margins + 0.05)."""
    rows, cols = np.mgrid[0:60, 0:60]
    classes = np.where(cols < 30, 1, 2)
    first = np.hypot(rows - 10, cols - 15) / 100
    second = np.hypot(rows - 45, cols - 40) / 100 + 0.05
    margins = np.where(classes == 1, first, second)
    return margins, classes


def test_selection_lowest_first_spread_in_space_and_classes() -> None:
    margins, classes = score_map()
    candidates = cell_candidates(margins, classes, np.ones_like(classes, bool), cell=5)
    chosen = select_points(candidates, 6, min_distance=5)
    rows, cols = candidates.rows[chosen], candidates.cols[chosen]
    got_classes = candidates.classes[chosen]
    got_margins = candidates.margins[chosen]
    # The least sure pixel of all comes first; the classes take turns.
    assert (rows[0], cols[0]) == (10, 15)
    assert got_classes.tolist() == [1, 2, 1, 2, 1, 2]
    assert (rows[1], cols[1]) == (45, 40)
    # Within each class, margins rise in the order chosen.
    for value in (1, 2):
        assert np.all(np.diff(got_margins[got_classes == value]) >= 0)
    # At least 5 pixels apart.
    distances = np.hypot(rows[:, None] - rows[None], cols[:, None] - cols[None])
    assert distances[~np.eye(6, dtype=bool)].min() >= 5
    # The second point of class 1 is its lowest candidate that far from the first:
    # every other class-1 candidate 5 px away or more has a margin at least as high.
    ones = candidates.classes == 1
    far = ones & (np.hypot(candidates.rows - 10, candidates.cols - 15) >= 5)
    assert got_margins[2] == candidates.margins[far].min()


def test_a_class_runs_out_the_other_continues() -> None:
    candidates = Candidates(
        rows=np.array([0, 0, 0, 0]),
        cols=np.array([0, 10, 20, 30]),
        margins=np.array([0.1, 0.2, 0.3, 0.05]),
        classes=np.array([1, 1, 1, 2]),
    )
    assert select_points(candidates, 4, 1).tolist() == [3, 0, 1, 2]
    # 15 px apart: cols 10 and 20 are each 10 px from a point chosen before.
    assert select_points(candidates, 9, 15).tolist() == [3, 0]


@pytest.fixture
def crop(tmp_path: Path) -> Path:
    target = tmp_path / "naip.tif"
    gdal.Translate(str(target), str(MOSAIC), srcWin=[300, 100, 96, 80])
    return target


def test_suggest_points_on_real_pixels(tmp_path: Path, crop: Path) -> None:
    """The margins the points report are those of the model's closed-form softmax at
    their pixels (to the output's 1/255 steps), and no pixel of a point's cell is
    clearly less sure."""
    clear_session_cache()
    weights = np.array([[1.0, -0.5, 0.0, 0.2], [-0.3, 1.0, -0.2, 0.1], [0.0, -0.4, 1.0, -0.1]])
    model = pointwise_model(
        tmp_path / "m.onnx", weights * 4, contract=contract_for(3, input_scale=1 / 255)
    )
    image = gdal.Open(str(crop)).ReadAsArray().astype(np.float64)
    scores = pointwise_reference(image / 255, weights * 4)
    probabilities = np.exp(scores - scores.max(axis=0))
    probabilities /= probabilities.sum(axis=0)
    margins = top_two_margin(probabilities)
    result = suggest_points(GdalImageSource(crop), model, 12, min_distance=8.0)
    assert len(result.rows) == 12 and result.min_distance == 8
    np.testing.assert_allclose(result.margins, margins[result.rows, result.cols], atol=1.5 / 255)
    predicted = probabilities.argmax(axis=0) + 1
    sure = result.margins > 2 / 255
    assert (result.classes[sure] == predicted[result.rows, result.cols][sure]).all()
    for row, col, margin in zip(result.rows, result.cols, result.margins, strict=True):
        cell = margins[row // 8 * 8 : row // 8 * 8 + 8, col // 8 * 8 : col // 8 * 8 + 8]
        assert cell.min() >= margin - 1.5 / 255
    # The least sure point is about the least sure pixel of the whole crop.
    assert result.margins.min() <= margins.min() + 1.5 / 255
    np.testing.assert_allclose(result.xs, 580000.0 + 300 + result.cols + 0.5)
    assert result.class_names == {1: "class 1", 2: "class 2", 3: "class 3"}


def test_suggest_points_bad_input(tmp_path: Path, crop: Path) -> None:
    model = pointwise_model(tmp_path / "m.onnx", np.eye(2, 4), contract=contract_for(2))
    with pytest.raises(InputError, match="at least 1 point"):
        suggest_points(GdalImageSource(crop), model, 0)
    with pytest.raises(InputError, match="negative"):
        suggest_points(GdalImageSource(crop), model, 5, min_distance=-1)


def test_no_point_on_nodata(tmp_path: Path, crop: Path) -> None:
    """Pixels without data (all bands 0 here) are classified nodata and never suggested,
    however unsure the model would be there."""
    clear_session_cache()
    image = gdal.Open(str(crop)).ReadAsArray()
    image[:, :, :48] = 0
    holed = tmp_path / "holed.tif"
    dataset = gdal.GetDriverByName("GTiff").CreateCopy(str(holed), gdal.Open(str(crop)))
    dataset.WriteArray(image)
    dataset = None
    # Equal scores for dark pixels would make them the least sure of all.
    weights = np.array([[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0]])
    model = pointwise_model(tmp_path / "m.onnx", weights, contract=contract_for(2))
    result = suggest_points(GdalImageSource(holed), model, 20, min_distance=4.0)
    assert len(result.cols) == 20 and result.cols.min() >= 48


class CancelAfterStart(NullProgress):
    def is_cancelled(self) -> bool:
        return self.percent > 0


def test_cancel_leaves_no_scratch_file(
    tmp_path: Path, crop: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    model = pointwise_model(tmp_path / "m.onnx", np.eye(2, 4), contract=contract_for(2))
    with pytest.raises(CancelledError):
        suggest_points(
            GdalImageSource(crop),
            model,
            5,
            options=ClassifyOptions(tile_size=32, batch_size=1),
            progress=CancelAfterStart(),
        )
    assert list(scratch.iterdir()) == []
