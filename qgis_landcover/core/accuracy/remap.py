# SPDX-License-Identifier: GPL-2.0-or-later
"""Class remaps and class-name tables given as text or as a small file.

A remap sends raster values to other values before they are compared, e.g. the
Chesapeake 7-class set onto the 2018 model's 4 classes: ``5:4,6:4,15:0``. Values not
listed keep their own value. The same ``key:value`` syntax gives class names
(``1:Water,2:Tree canopy``).

Accepted forms, for both:

* inline text: ``key:value`` pairs separated by commas, semicolons or new lines
  (``=`` also works in place of ``:``);
* a ``.csv`` / ``.txt`` file with two columns ``key,value`` (an optional header line
  whose first cell is not a number is skipped);
* a ``.json`` file holding an object ``{"5": 4, ...}`` or a list of ``[key, value]`` pairs.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

import numpy as np

from ..errors import InputError

V = TypeVar("V")

FILE_SUFFIXES = (".csv", ".txt", ".json")
_SEPARATORS = re.compile(r"[,;\n\r]+")
_PAIR = re.compile(r"^\s*([^:=]+?)\s*[:=]\s*(.*?)\s*$")


def parse_remap(text: str | None, *, what: str = "remap") -> dict[int, int]:
    """Parse a remap (``'5:4,6:4,15:0'``, or a CSV / JSON file path) into ``{from: to}``.

    Args:
        text: the remap, a file path, or ``None`` / blank for no remap.
        what: how the parameter is called in error messages.

    Raises:
        InputError: naming the token, line or key that does not parse.
    """
    return _parse_mapping(text, what, _parse_value_int, "'value:new value'", "'5:4,6:4,15:0'")


def parse_class_names(text: str | None, *, what: str = "class names") -> dict[int, str]:
    """Parse class names (``'1:Water,2:Tree canopy'``, or a CSV / JSON file path)."""
    return _parse_mapping(text, what, _parse_value_name, "'value:name'", "'1:Water,2:Tree canopy'")


def _parse_mapping(
    text: str | None,
    what: str,
    parse_value: Callable[[object, str, str], V],
    pair: str,
    example: str,
) -> dict[int, V]:
    """``key:value`` pairs from ``text`` or the file it names; ``pair`` and ``example``
    describe the expected form in error messages."""
    if text is None or not str(text).strip():
        return {}
    text = str(text).strip()
    path = Path(text)
    if path.suffix.lower() in FILE_SUFFIXES and "\n" not in text:
        if not path.is_file():
            raise InputError(f"The {what} file does not exist: {text}")
        if path.suffix.lower() == ".json":
            return _from_json(path, what, parse_value)
        return _from_csv(path, what, parse_value)
    mapping: dict[int, V] = {}
    for token in _SEPARATORS.split(text):
        if not token.strip():
            continue
        match = _PAIR.match(token)
        if match is None:
            raise InputError(
                f"Cannot read the {what}: {token.strip()!r} is not a {pair} pair "
                f"(expected e.g. {example})."
            )
        key = _parse_key(match.group(1), what, repr(token.strip()))
        _add(mapping, key, parse_value(match.group(2), what, repr(token.strip())), what)
    return mapping


def _from_csv(path: Path, what: str, parse_value: Callable[[object, str, str], V]) -> dict[int, V]:
    mapping: dict[int, V] = {}
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.reader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise InputError(f"Cannot read the {what} file {path}: {error}") from error
    for number, row in enumerate(rows, start=1):
        cells = [cell.strip() for cell in row]
        if not any(cells):
            continue
        where = f"line {number} of {path.name}"
        if len(cells) < 2:
            raise InputError(f"Cannot read the {what}: {where} needs two columns, value and new.")
        if number == 1 and not _is_int(cells[0]):
            continue  # header
        _add(mapping, _parse_key(cells[0], what, where), parse_value(cells[1], what, where), what)
    return mapping


def _from_json(path: Path, what: str, parse_value: Callable[[object, str, str], V]) -> dict[int, V]:
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InputError(f"Cannot read the {what} file {path}: {error}") from error
    pairs: Iterable[object]
    if isinstance(content, dict):
        pairs = content.items()
    elif isinstance(content, list):
        pairs = content
    else:
        raise InputError(
            f"The {what} file {path.name} must hold an object {{value: new}} or a list of pairs."
        )
    mapping: dict[int, V] = {}
    for pair in pairs:
        if not isinstance(pair, list | tuple) or len(pair) != 2:
            raise InputError(f"Cannot read the {what}: {pair!r} in {path.name} is not a pair.")
        where = f"{pair[0]!r} in {path.name}"
        _add(mapping, _parse_key(pair[0], what, where), parse_value(pair[1], what, where), what)
    return mapping


def _is_int(text: str) -> bool:
    return re.fullmatch(r"[+-]?\d+", text.strip()) is not None


def _parse_key(raw: object, what: str, where: str) -> int:
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw
    if isinstance(raw, float) and raw.is_integer():
        return int(raw)
    if isinstance(raw, str) and _is_int(raw):
        return int(raw)
    raise InputError(f"Cannot read the {what}: {where}: {raw!r} is not an integer class value.")


def _parse_value_int(raw: object, what: str, where: str) -> int:
    return _parse_key(raw, what, where)


def _parse_value_name(raw: object, what: str, where: str) -> str:
    name = str(raw).strip()
    if not name:
        raise InputError(f"Cannot read the {what}: {where} has an empty name.")
    return name


def _add(mapping: dict[int, V], key: int, value: V, what: str) -> None:
    if key in mapping and mapping[key] != value:
        raise InputError(f"The {what} gives value {key} twice ({mapping[key]!r} and {value!r}).")
    mapping[key] = value


def check_class_names(
    names: Mapping[int, str], classes: Sequence[int], *, named: Iterable[int] = ()
) -> None:
    """Raise :class:`InputError` when class names were given (``names`` not empty) but
    some of ``classes`` (the values compared) get a name neither from them nor from
    ``named`` (values the rasters' category names name): the report would mix the
    names given with 'class N' defaults without a word. Names of values not compared
    are fine (a legend may list classes absent from the area)."""
    known = set(names) | set(named)
    missing = [c for c in classes if c not in known]
    if not names or not missing:
        return
    example = ",".join(f"{c}:{names.get(c, f'class {c}')}" for c in classes)
    raise InputError(
        f"{len(names)} class name{'s' if len(names) != 1 else ''} given (for "
        f"{format_values(names)}), but the comparison has {len(classes)} classes "
        f"({format_values(classes)}): {format_values(missing)} "
        f"{'has' if len(missing) == 1 else 'have'} no name, given or from the rasters' "
        f"category names. Name every class, e.g. '{example}'."
    )


def parse_values(text: str | None, *, what: str = "ignore values") -> list[int]:
    """Parse a list of integer values such as ``'0, 15'`` (commas, semicolons or spaces);
    blank or ``'none'`` gives an empty list."""
    if text is None or not str(text).strip() or str(text).strip().lower() == "none":
        return []
    values = []
    for token in re.split(r"[,;\s]+", str(text).strip()):
        if not token:
            continue
        if not _is_int(token):
            raise InputError(f"Cannot read the {what}: {token!r} is not an integer value.")
        values.append(int(token))
    return sorted(set(values))


def format_remap(remap: Mapping[int, int]) -> str:
    """A remap as text in the form :func:`parse_remap` reads (``'none'`` when empty)."""
    return ",".join(f"{k}:{v}" for k, v in sorted(remap.items())) or "none"


def format_values(values: Iterable[int]) -> str:
    """Integer values as ``'0, 15'`` (``'none'`` when empty)."""
    return ", ".join(str(v) for v in sorted(values)) or "none"


def apply_remap(values: np.ndarray, remap: Mapping[int, int]) -> np.ndarray:
    """``values`` (any integer array) with every key of ``remap`` replaced by its value;
    other values unchanged. Returns an int64 array of the same shape.

    uint8 / uint16 arrays go through one lookup table gather (:func:`remap_lut`).
    """
    array = np.asarray(values)
    if array.dtype in (np.uint8, np.uint16) and remap:
        return remap_lut(remap, 1 << (8 * array.dtype.itemsize))[array]
    result = array.astype(np.int64, copy=True)
    if not remap:
        return result
    keys = np.fromiter(remap.keys(), dtype=np.int64, count=len(remap))
    targets = np.fromiter(remap.values(), dtype=np.int64, count=len(remap))
    order = np.argsort(keys)
    keys, targets = keys[order], targets[order]
    position = np.clip(np.searchsorted(keys, result), 0, len(keys) - 1)
    hit = keys[position] == result
    result[hit] = targets[position[hit]]
    return result


def remap_lut(remap: Mapping[int, int], size: int = 256) -> np.ndarray:
    """An int64 lookup table with ``lut[v] = remap.get(v, v)`` for ``0 <= v < size``,
    so that ``lut[block]`` remaps a whole uint8 (size 256) or uint16 (65536) block."""
    lut = np.arange(size, dtype=np.int64)
    for key, value in remap.items():
        if 0 <= key < size:
            lut[key] = value
    return lut
