# SPDX-License-Identifier: GPL-2.0-or-later
"""Label values -> training targets, checked against the class tables of data/README.md."""

from __future__ import annotations

import numpy as np

from model_training.labels import IGNORE_INDEX, LabelMapper

# data/README.md: Chesapeake 7-class codes 1 water, 2 tree canopy, 3 low vegetation,
# 4 barren, 5 impervious (other), 6 impervious (road), 0 / 15 no data; the 2018 model
# has 1 water, 2 tree, 3 herbaceous, 4 barren + impervious.
CHESAPEAKE7 = np.array([[0, 1, 2, 3], [4, 5, 6, 15]], dtype=np.uint8)


def test_chesapeake7_to_the_2018_classes() -> None:
    mapper = LabelMapper({5: 4, 6: 4}, [1, 2, 3, 4], ignore_values=[0, 15])
    expected_values = np.array([[0, 1, 2, 3], [4, 4, 4, 0]])  # 0: ignored
    expected = np.where(expected_values == 0, IGNORE_INDEX, expected_values - 1)
    np.testing.assert_array_equal(mapper.encode(CHESAPEAKE7), expected)


def test_chesapeake13_to_7_in_the_cores_text_form() -> None:
    # data/README.md: 13 -> 7 is 1->1, 2->3, 3->2, 4->2, 5->3, 6->4, 7->5, 8->5, 9->6,
    # 10->2, 11->2, 12->2; 13-class no data is 0.
    text = "1:1,2:3,3:2,4:2,5:3,6:4,7:5,8:5,9:6,10:2,11:2,12:2"
    mapper = LabelMapper(text, [1, 2, 3, 4, 5, 6], ignore_values=[0])
    raw = np.arange(13, dtype=np.uint8)
    seven = [0, 1, 3, 2, 2, 3, 4, 5, 5, 6, 2, 2, 2]
    expected = [IGNORE_INDEX if v == 0 else v - 1 for v in seven]
    np.testing.assert_array_equal(mapper.encode(raw), expected)


def test_nodata_unmapped_and_non_integer_values_are_ignored() -> None:
    mapper = LabelMapper({}, [1, 2], ignore_values=[])
    raw = np.array([1.0, 2.0, 3.0, 2.5, np.nan, -1.0, 99.0], dtype=np.float32)
    np.testing.assert_array_equal(
        mapper.encode(raw, nodata=99.0),
        [0, 1, IGNORE_INDEX, IGNORE_INDEX, IGNORE_INDEX, IGNORE_INDEX, IGNORE_INDEX],
    )
    # An ignore value wins over a remap that would have made it a class.
    assert mapper.encode(np.array([1]), nodata=1)[0] == IGNORE_INDEX
