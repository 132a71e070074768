# SPDX-License-Identifier: GPL-2.0-or-later
"""What the model reads: the mirror fill of pixels without data (hand-computed cases and
its independence of how the raster is cut), the value check against the contract's
input range, and the explicit rescaling."""

from __future__ import annotations

import numpy as np
import pytest

from qgis_landcover.core.errors import InputError
from qgis_landcover.core.inference.model_input import (
    FILL_CONTEXT,
    InputCheck,
    ModelInput,
    Rescale,
    mirror_fill,
    neutral_values,
    parse_value_range,
    prepare_input,
    sample_windows,
    suggested_range,
)
from qgis_landcover.core.models.contract import InputExpectation
from qgis_landcover.core.progress import NullProgress
from qgis_landcover.core.raster.grid import Grid, Window

from ...onnx_models import contract_for

UINT8 = InputExpectation("uint8", (0.0, 255.0), "metadata 'input_range'")


def test_mirror_fill_of_a_row_by_hand() -> None:
    # Valid 1 2 3 | five pixels without data | 9 8. Pixels 3, 4 mirror 1, 0 about the
    # anchor 2 (values 2, 1); pixel 5 is 3 from both sides (the left wins) and its
    # mirror -1 is outside: the anchor's own value 3; pixels 6, 7 mirror about 8: their
    # mirrors 10, 9 -> 10 is outside (anchor value 9), 9 is valid (8).
    raw = np.array([[[1, 2, 3, 0, 0, 0, 0, 0, 9, 8]]], dtype=np.float32)
    valid = raw[0] != 0
    np.testing.assert_array_equal(
        mirror_fill(raw.copy(), valid, [-1.0]), [[[1, 2, 3, 2, 1, 3, 9, 8, 9, 8]]]
    )
    # Pixels more than `distance` from any valid pixel take the fallback.
    np.testing.assert_array_equal(
        mirror_fill(raw.copy(), valid, [-1.0], distance=2), [[[1, 2, 3, 2, 1, -1, 9, 8, 9, 8]]]
    )


def test_mirror_fill_takes_the_nearer_of_row_and_column() -> None:
    # A 5 x 5 image of values 10 * row + col, bands (a, -a); rows 3-4 and pixel (1, 4)
    # lack data.
    # - (1, 4): valid pixels 1 away in its row (col 3) and in its column (rows 0, 2):
    #   the row wins; mirror of col 4 about col 3 is col 2 -> 12.
    # - rows 3, 4: nothing valid in their rows; in their columns the nearest valid
    #   pixel is row 2: row 3 mirrors row 1, row 4 mirrors row 0, except (3, 4), whose
    #   mirror (1, 4) has no data: it takes the anchor (2, 4) -> 24.
    image = (10 * np.arange(5)[:, None] + np.arange(5)[None, :]).astype(np.float32)
    raw = np.stack([image, -image])
    valid = np.ones((5, 5), dtype=bool)
    valid[3:] = False
    valid[1, 4] = False
    expected = image.copy()
    expected[1, 4] = 12
    expected[3] = [10, 11, 12, 13, 24]
    expected[4] = [0, 1, 2, 3, 4]
    filled = mirror_fill(raw.copy(), valid, [0.0, 0.0])
    np.testing.assert_array_equal(filled[0], expected)
    np.testing.assert_array_equal(filled[1], -expected)


def test_fill_with_context_equals_the_fill_of_the_whole() -> None:
    # The fill of a window read with 2 * distance of context is the fill of the whole
    # raster: the pipeline's strips are filled exactly, however the raster is cut.
    rng = np.random.default_rng(7)
    raw = rng.random((3, 260, 300)).astype(np.float32)
    valid = rng.random((260, 300)) > 0.05
    valid[40:170, 50:230] = False  # a large hole, deeper than `distance`
    valid[:, 280:] = False
    distance, fallback = 20, [7.0, 8.0, 9.0]
    whole = mirror_fill(raw.copy(), valid, fallback, distance=distance)
    assert np.any(whole == 7.0) and not np.any(whole[:, valid] == 7.0)
    margin = 2 * distance
    for row, col, height, width in [(40, 40, 80, 90), (100, 150, 60, 100), (45, 200, 70, 55)]:
        rows = slice(row - margin, row + height + margin)
        cols = slice(col - margin, col + width + margin)
        got = mirror_fill(
            raw[:, rows, cols].copy(), valid[rows, cols], fallback, distance, margin=margin
        )
        np.testing.assert_array_equal(got, whole[:, row : row + height, col : col + width])


class ArrayReader:
    """An in-memory :class:`ImageReader`."""

    def __init__(self, raw: np.ndarray, valid: np.ndarray, data_type: str | None = None) -> None:
        self.raw, self.valid, self.data_type = raw, valid, data_type
        self._grid = Grid("", (0.0, 1.0, 0.0, 0.0, 0.0, -1.0), raw.shape[2], raw.shape[1])
        self.reads: list[Window] = []

    @property
    def grid(self) -> Grid:
        return self._grid

    def read(self, window: Window) -> tuple[np.ndarray, np.ndarray]:
        self.reads.append(window)
        rows = slice(window.row_off, window.row_off + window.height)
        cols = slice(window.col_off, window.col_off + window.width)
        return self.raw[:, rows, cols].copy(), self.valid[rows, cols].copy()


def test_model_input_fills_strips_as_the_whole_plane() -> None:
    # Windows reaching past the raster: the plane is the raster reflected at its edges,
    # then filled; a strip read through ModelInput is that plane's window.
    rng = np.random.default_rng(3)
    raw = rng.integers(1, 255, (2, 300, 320)).astype(np.float32)
    valid = np.ones((300, 320), dtype=bool)
    valid[120:, 150:] = False
    valid[10:30, 5:25] = False
    fallback = [127.5, 127.5]
    pad = FILL_CONTEXT + 8
    plane = np.pad(raw, ((0, 0), (pad, pad), (pad, pad)), mode="reflect")
    plane_valid = np.pad(valid, pad, mode="reflect")
    reference = mirror_fill(plane, plane_valid, fallback, margin=FILL_CONTEXT)
    source = ModelInput(ArrayReader(raw, valid), fallback)
    for window in (Window(-8, -8, 100, 40), Window(140, 100, 188, 40), Window(0, 268, 320, 40)):
        got, got_valid = source.read(window)
        rows = slice(window.row_off + 8, window.row_off + 8 + window.height)
        cols = slice(window.col_off + 8, window.col_off + 8 + window.width)
        np.testing.assert_array_equal(got, reference[:, rows, cols])
        np.testing.assert_array_equal(got_valid, plane_valid[pad - 8 :, pad - 8 :][rows, cols])


def test_neutral_values_are_the_middle_of_the_expected_range() -> None:
    np.testing.assert_array_equal(neutral_values(contract_for(2, input_scale=1 / 256)), [127.5] * 4)
    # No range known: the value the standardisation takes to 0.
    contract = contract_for(2, input_scale=0.5, standardization_mean=[1.0, 2.0, 3.0, 4.0])
    np.testing.assert_array_equal(neutral_values(contract), [2.0, 4.0, 6.0, 8.0])


def test_parse_value_range() -> None:
    assert parse_value_range("0,10000") == (0.0, 10000.0)
    assert parse_value_range(" -1 ; 1 ") == (-1.0, 1.0)
    assert parse_value_range("") is None and parse_value_range(None) is None
    for text in ("10000", "a,b", "5,1", "0,nan", "1,2,3"):
        with pytest.raises(InputError, match="INPUT_RANGE"):
            parse_value_range(text)


def test_rescale_maps_and_clips() -> None:
    values = np.array([0, 5000, 10000, 12000, -5], dtype=np.float32)
    rescaled = Rescale((0.0, 10000.0), (0.0, 255.0))(values.copy())
    np.testing.assert_allclose(rescaled, [0, 127.5, 255, 255, 0], rtol=1e-6)


def check(values: np.ndarray, **kwargs: object) -> NullProgress:
    """Run an :class:`InputCheck` on one band of ``values`` (all valid)."""
    progress = NullProgress()
    options: dict[str, object] = {"expectation": UINT8, "data_type": "float32", "rescale": None}
    options.update(kwargs)
    checker = InputCheck(model="the model m.onnx", progress=progress, **options)  # type: ignore[arg-type]
    raw = values.astype(np.float32).reshape(1, 1, -1)
    checker.add(raw, np.ones(raw.shape[1:], dtype=bool), decide=False)
    checker.decide()
    return progress


def test_value_check_refuses_reflectance_and_16_bit_values() -> None:
    reflectance = np.linspace(0.02, 0.9, 2000)
    with pytest.raises(InputError, match=r"far too small.*reach only 0\.9.*INPUT_RANGE=0,1"):
        check(reflectance)
    sixteen_bit = np.linspace(300, 9000, 2000)
    with pytest.raises(InputError, match=r"100\.0% .* outside 0-255.*INPUT_RANGE=0,10000"):
        check(sixteen_bit, data_type="uint16")
    # 8-bit values in a float layer fit: an info line, no error.
    progress = check(np.linspace(3, 250, 2000))
    assert any("float32" in m and "fit the model's range 0-255" in m for m in progress.messages)
    # A few values out of range (at most 1 %): a warning.
    progress = check(np.concatenate([np.linspace(3, 250, 1990), np.full(10, 300.0)]))
    assert any(
        "0.50% of the sampled valid values lie outside 0-255" in w for w in progress.warnings
    )


def test_value_check_against_the_given_rescaling() -> None:
    rescale = Rescale((0.0, 10000.0), (0.0, 255.0))
    check(np.linspace(300, 9000, 2000), rescale=rescale)  # fits the range given
    with pytest.raises(InputError, match=r"outside 0-10000.*INPUT_RANGE"):
        check(np.linspace(300, 30000, 2000), rescale=rescale)
    with pytest.raises(InputError, match="far too small"):
        check(np.linspace(0, 0.9, 2000), rescale=rescale)


def test_value_check_without_an_expected_range_only_reports() -> None:
    progress = check(np.linspace(0, 9000, 2000), expectation=None)
    assert any("does not declare" in m and "not checked" in m for m in progress.messages)


def test_sample_windows_spread_over_the_extent() -> None:
    windows = sample_windows(Window(100, 50, 1000, 700))
    assert len(windows) == 16
    assert {w.col_off for w in windows} == {100, 412, 724, 1036}
    assert {w.row_off for w in windows} == {50, 262, 474, 686}
    assert all(w.width == w.height == 64 for w in windows)
    assert sample_windows(Window(0, 0, 30, 20)) == [Window(0, 0, 30, 20)]


def test_suggested_range() -> None:
    assert suggested_range(0.01, 0.9) == "0,1"
    assert suggested_range(300, 8588) == "0,10000"
    assert suggested_range(-3.5, 2.2) == "-4,3"


def test_prepare_input_decides_on_the_sample_or_during_the_run() -> None:
    contract = contract_for(2, input_scale=1 / 255)
    raw = np.full((4, 600, 600), 1000.0, dtype=np.float32)  # 16-bit-like values
    valid = np.ones((600, 600), dtype=bool)
    reader = ArrayReader(raw, valid, "uint16")
    with pytest.raises(InputError, match="do not fit"):
        prepare_input(reader, reader.grid.full_window, contract, model="m")
    assert all(w.width == 64 for w in reader.reads)  # the sample only
    # Valid pixels only between the sample windows (at 0, 178, 357, 536, 64 px wide):
    # the check decides on the strips the run reads.
    valid = np.zeros((600, 600), dtype=bool)
    valid[100:140, 100:140] = True
    reader = ArrayReader(raw, valid, "uint16")
    source = prepare_input(reader, reader.grid.full_window, contract, model="m")
    source.read(Window(0, 0, 600, 90))  # nothing valid yet
    with pytest.raises(InputError, match="do not fit"):
        source.read(Window(0, 90, 600, 90))
