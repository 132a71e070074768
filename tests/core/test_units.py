# SPDX-License-Identifier: GPL-2.0-or-later
"""Quantities in messages."""

from __future__ import annotations

from qgis_landcover.core.units import format_bytes, format_duration


def test_durations_are_written_to_the_precision_a_person_plans_with() -> None:
    assert format_duration(0.4) == "0 s"
    assert format_duration(42.4) == "42 s"
    assert format_duration(59.6) == "1 min 00 s"
    assert format_duration(185) == "3 min 05 s"
    assert format_duration(3599) == "59 min 59 s"
    assert format_duration(2 * 3600 + 7 * 60 + 20) == "2 h 07 min"
    assert format_duration(4 * 3600 + 59 * 60 + 50) == "5 h 00 min"
    assert format_duration(-3) == "0 s"


def test_bytes() -> None:
    assert format_bytes(512) == "512 bytes"
    assert format_bytes(3.4 * 2**20) == "3.4 MiB"
