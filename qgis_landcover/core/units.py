# SPDX-License-Identifier: GPL-2.0-or-later
"""Quantities written for people in messages."""

from __future__ import annotations


def format_bytes(count: float) -> str:
    """``count`` bytes for a message: ``'512 bytes'`` under 1 MiB, else three
    significant digits of the largest binary unit it reaches: ``'3.4 MiB'``,
    ``'1.5 GiB'``."""
    for unit, size in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20)):
        if count >= size:
            return f"{count / size:.3g} {unit}"
    return f"{round(count)} bytes"
