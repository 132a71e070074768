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


def format_duration(seconds: float) -> str:
    """``seconds`` for a message, to the precision a person plans with: ``'42 s'``
    under a minute, ``'3 min 05 s'`` under an hour, ``'2 h 07 min'`` beyond."""
    whole = max(0, round(seconds))
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min {whole % 60:02d} s"
    minutes = round(whole / 60)
    return f"{minutes // 60} h {minutes % 60:02d} min"
