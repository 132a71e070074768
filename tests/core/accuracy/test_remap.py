# SPDX-License-Identifier: GPL-2.0-or-later
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from qgis_landcover.core.accuracy.remap import (
    apply_remap,
    check_class_names,
    format_remap,
    parse_class_names,
    parse_remap,
    parse_values,
    remap_lut,
)
from qgis_landcover.core.errors import InputError


def test_inline_remap_forms() -> None:
    assert parse_remap("5:4,6:4,15:0") == {5: 4, 6: 4, 15: 0}
    assert parse_remap(" 5 : 4 ;6=4\n15:0 ,") == {5: 4, 6: 4, 15: 0}
    assert parse_remap("-1:0,300:2") == {-1: 0, 300: 2}
    assert parse_remap(None) == {}
    assert parse_remap("   ") == {}


@pytest.mark.parametrize(
    ("text", "token"),
    [
        ("5:4,6-4,15:0", "'6-4'"),
        ("5:4,a:4", "'a'"),
        ("5:4,6:x", "'x'"),
        ("5:4.5", "'4.5'"),
        ("5:", "''"),
    ],
)
def test_bad_remap_names_the_token(text: str, token: str) -> None:
    with pytest.raises(InputError) as raised:
        parse_remap(text, what="reference remap")
    message = str(raised.value)
    assert token in message
    assert "reference remap" in message


def test_conflicting_remap_is_an_error() -> None:
    with pytest.raises(InputError, match=r"value 5 twice"):
        parse_remap("5:4,5:3")
    assert parse_remap("5:4,5:4") == {5: 4}  # repeating the same pair is harmless


def test_remap_from_csv_and_json_files(tmp_path: Path) -> None:
    csv_file = tmp_path / "remap.csv"
    csv_file.write_text("from,to\n5,4\n6 , 4\n\n15,0\n", encoding="utf-8")
    assert parse_remap(str(csv_file)) == {5: 4, 6: 4, 15: 0}
    as_object = tmp_path / "remap.json"
    as_object.write_text(json.dumps({"5": 4, "6": 4, "15": 0}), encoding="utf-8")
    assert parse_remap(str(as_object)) == {5: 4, 6: 4, 15: 0}
    as_pairs = tmp_path / "pairs.json"
    as_pairs.write_text(json.dumps([[5, 4], [6, 4]]), encoding="utf-8")
    assert parse_remap(str(as_pairs)) == {5: 4, 6: 4}


def test_bad_remap_files(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"does not exist"):
        parse_remap(str(tmp_path / "missing.csv"))
    bad_line = tmp_path / "bad.csv"
    bad_line.write_text("5,4\n6,four\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"line 2 of bad\.csv.*'four'"):
        parse_remap(str(bad_line))
    one_column = tmp_path / "one.csv"
    one_column.write_text("5\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"two columns"):
        parse_remap(str(one_column))
    broken = tmp_path / "broken.json"
    broken.write_text("{5: 4", encoding="utf-8")
    with pytest.raises(InputError, match=r"broken\.json"):
        parse_remap(str(broken))
    scalar = tmp_path / "scalar.json"
    scalar.write_text("4", encoding="utf-8")
    with pytest.raises(InputError, match=r"object"):
        parse_remap(str(scalar))


def test_class_names_and_values() -> None:
    assert parse_class_names("1:Water, 2:Tree canopy;3=Low vegetation") == {
        1: "Water",
        2: "Tree canopy",
        3: "Low vegetation",
    }
    with pytest.raises(InputError, match=r"empty name"):
        parse_class_names("1:")
    # Names without values got the remap's example ('5:4,6:4,15:0').
    with pytest.raises(
        InputError, match=r"'Water' is not a 'value:name' pair \(expected e\.g\. '1:Water,2:Tree"
    ):
        parse_class_names("Water,Trees")
    with pytest.raises(InputError, match=r"'value:new value' pair \(expected e\.g\. '5:4,6:4"):
        parse_remap("5,4")


def test_class_names_must_name_every_class_compared() -> None:
    check_class_names({}, [1, 2, 3])  # none given: defaults
    check_class_names({1: "a", 2: "b", 3: "c", 9: "absent here"}, [1, 2, 3])
    check_class_names({1: "a"}, [1, 2, 3], named=[2, 3])  # the rest from the rasters
    with pytest.raises(
        InputError,
        match=r"^2 class names given \(for 1, 2\), but the comparison has 3 classes "
        r"\(2, 3, 5\): 3, 5 have no name.*e\.g\. '2:Trees,3:class 3,5:class 5'\.$",
    ):
        check_class_names({1: "Water", 2: "Trees"}, [2, 3, 5])
    with pytest.raises(InputError, match=r"^1 class name given .*: 5 has no name"):
        check_class_names({2: "Trees"}, [2, 5])
    assert parse_values("0, 15;255 7") == [0, 7, 15, 255]
    assert parse_values("none") == []
    assert parse_values("") == []
    with pytest.raises(InputError, match=r"'x'"):
        parse_values("0,x")


def test_format_remap_round_trips() -> None:
    remap = {15: 0, 5: 4, 6: 4}
    assert format_remap(remap) == "5:4,6:4,15:0"
    assert parse_remap(format_remap(remap)) == remap
    assert format_remap({}) == "none"


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int16, np.int32, np.int64])
def test_apply_remap_matches_a_dictionary_lookup(dtype: type) -> None:
    rng = np.random.default_rng(3)
    info = np.iinfo(dtype)
    low, high = max(info.min, -20), min(info.max, 300)
    values = rng.integers(low, high + 1, size=(40, 50)).astype(dtype)
    remap = {int(v): int(rng.integers(-5, 500)) for v in rng.choice(values.ravel(), 12)}
    expected = np.vectorize(lambda v: remap.get(int(v), int(v)), otypes=[np.int64])(values)
    result = apply_remap(values, remap)
    assert result.dtype == np.int64
    np.testing.assert_array_equal(result, expected)
    np.testing.assert_array_equal(apply_remap(values, {}), values.astype(np.int64))


def test_remap_lut() -> None:
    lut = remap_lut({5: 4, 6: 4, 300: 1}, 256)
    assert lut.shape == (256,)
    assert lut[5] == 4 and lut[6] == 4 and lut[7] == 7 and lut[0] == 0
