# SPDX-License-Identifier: GPL-2.0-or-later
"""Dense value codes and class rules, by hand: codes in order of discovery, the uint8
identity, signed 16-bit values, wide values, the distinct-value limit; nodata compared
before the remap, ignore values after it."""

from __future__ import annotations

import numpy as np
import pytest

from qgis_landcover.core.accuracy.value_codes import MAX_DISTINCT_VALUES, ClassRule, ValueEncoder
from qgis_landcover.core.errors import InputError


def test_uint8_blocks_are_their_own_codes() -> None:
    encoder = ValueEncoder(np.uint8)
    block = np.array([[0, 7], [255, 7]], dtype=np.uint8)
    codes = encoder.encode(block)
    assert codes.dtype == np.uint8
    np.testing.assert_array_equal(codes, block)
    assert encoder.size == 256
    np.testing.assert_array_equal(encoder.values, np.arange(256))


def test_codes_follow_the_order_of_discovery_across_blocks() -> None:
    encoder = ValueEncoder(np.uint16)
    first = encoder.encode(np.array([[500, 3], [3, 40000]], dtype=np.uint16))
    # Discovered in ascending order within a block (one bincount over the slots).
    np.testing.assert_array_equal(first, [[1, 0], [0, 2]])
    second = encoder.encode(np.array([7, 500, 40000, 3], dtype=np.uint16))
    np.testing.assert_array_equal(second, [3, 1, 2, 0])
    assert encoder.values.tolist() == [3, 500, 40000, 7]
    assert encoder.values.dtype == np.int64


def test_negative_int16_values_read_back_signed() -> None:
    encoder = ValueEncoder(np.int16)
    codes = encoder.encode(np.array([-32768, -1, 0, 32767, -1], dtype=np.int16))
    # Discovered in the order of their 16-bit patterns: 0, 32767, then -32768 (0x8000)
    # and -1 (0xffff).
    np.testing.assert_array_equal(codes, [2, 3, 0, 1, 3])
    assert encoder.values.tolist() == [0, 32767, -32768, -1]


def test_int32_values_within_16_bits_use_the_table_and_wider_ones_unique() -> None:
    encoder = ValueEncoder(np.int32)
    # Signed 16-bit slots: 12 (0x000c) before -4 (0xfffc).
    np.testing.assert_array_equal(encoder.encode(np.array([12, -4, 12], np.int32)), [0, 1, 0])
    # Outside the 16-bit range: np.unique; known values keep their codes, new ones follow
    # in ascending order.
    wide = encoder.encode(np.array([100_000, -4, 12, -70_000], np.int32))
    np.testing.assert_array_equal(wide, [3, 1, 0, 2])
    assert encoder.values.tolist() == [12, -4, -70_000, 100_000]


def test_empty_block_and_non_integer_data() -> None:
    encoder = ValueEncoder(np.int16)
    assert encoder.encode(np.zeros((0, 3), np.int16)).shape == (0, 3)
    assert encoder.size == 0
    with pytest.raises(InputError, match=r"must be integers, not float32"):
        ValueEncoder(np.float32)
    with pytest.raises(InputError, match=r"must be integers, not float64"):
        encoder.encode(np.array([1.5]))


def test_more_distinct_values_than_classes_is_continuous_data() -> None:
    encoder = ValueEncoder(np.int32)
    encoder.encode(np.arange(MAX_DISTINCT_VALUES, dtype=np.int32))
    assert encoder.size == MAX_DISTINCT_VALUES
    with pytest.raises(InputError, match=r"More than 1024 distinct values"):
        encoder.encode(np.array([MAX_DISTINCT_VALUES], np.int32))


def test_class_rule_nodata_before_and_ignore_after_the_remap() -> None:
    # 15 -> 0 sends a raw value to the ignored class; 9 is nodata whatever it maps to;
    # 4 -> 9 is a class 9 (nodata is compared on raw values).
    rule = ClassRule.build({15: 0, 4: 9, 9: 2}, nodata=[9], ignore=[0])
    classes, ignored = rule.classify(np.array([1, 4, 9, 15, 0, 2], dtype=np.int64))
    assert classes.tolist() == [1, 9, 2, 0, 0, 2]
    assert ignored.tolist() == [False, False, True, True, True, False]
    assert rule.nodata == frozenset({9}) and rule.ignore == frozenset({0})


def test_empty_rule_keeps_every_value() -> None:
    classes, ignored = ClassRule().classify(np.array([0, 3, -2], dtype=np.int64))
    assert classes.tolist() == [0, 3, -2]
    assert not ignored.any()
