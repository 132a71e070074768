# SPDX-License-Identifier: GPL-2.0-or-later
"""An ONNX model's ``metadata_props`` read from the file itself, without ONNX Runtime,
``onnx`` or ``protobuf``: what downloading and checking a model's contract needs in a
QGIS whose Python lacks ONNX Runtime (classification needs it; downloading should not).

An ONNX file is one protobuf ``ModelProto`` message. Its top-level fields are read
one by one (tag, then value); ``metadata_props`` (field 14, repeated
``StringStringEntryProto``: key 1, value 2) is decoded and every other field is skipped
by its length, so the graph and its weights are never read into memory.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import BinaryIO

from ..errors import InputError

METADATA_PROPS = 14
"""``ModelProto.metadata_props`` in ``onnx.proto``."""
_VARINT, _FIXED64, _LENGTH, _FIXED32 = 0, 1, 2, 5


class _MalformedError(ValueError):
    """The bytes are not a protobuf message."""


def _varint(read: BinaryIO) -> int | None:
    """The next varint, or ``None`` at the end of the data (before its first byte)."""
    value = shift = 0
    while True:
        byte = read.read(1)
        if not byte:
            if shift:
                raise _MalformedError("truncated varint")
            return None
        value |= (byte[0] & 0x7F) << shift
        if not byte[0] & 0x80:
            return value
        shift += 7
        if shift > 63:
            raise _MalformedError("varint longer than 10 bytes")


def _fields(stream: BinaryIO, size: int | None = None) -> dict[int, list[bytes]]:
    """Length-delimited fields of the message in ``stream`` (up to ``size`` bytes, or to
    the end), number -> values in order; other wire types are skipped, and so are
    length-delimited fields other than :data:`METADATA_PROPS` at the top level."""
    found: dict[int, list[bytes]] = {}
    end = None if size is None else stream.tell() + size
    while end is None or stream.tell() < end:
        tag = _varint(stream)
        if tag is None:
            break
        number, wire = tag >> 3, tag & 7
        if number == 0:
            raise _MalformedError("field number 0")
        if wire == _VARINT:
            if _varint(stream) is None:
                raise _MalformedError("truncated varint")
        elif wire in (_FIXED64, _FIXED32):
            stream.seek(8 if wire == _FIXED64 else 4, os.SEEK_CUR)
        elif wire == _LENGTH:
            length = _varint(stream)
            if length is None:
                raise _MalformedError("truncated length")
            if size is None and number != METADATA_PROPS:
                stream.seek(length, os.SEEK_CUR)
                continue
            value = stream.read(length)
            if len(value) != length:
                raise _MalformedError("truncated field")
            found.setdefault(number, []).append(value)
        else:
            raise _MalformedError(f"wire type {wire}")
    if end is not None and stream.tell() != end:
        raise _MalformedError("field runs past its message")
    return found


def read_onnx_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    """The ``metadata_props`` of the ONNX model file at ``path`` (key -> value; a key
    given twice keeps its last value, as ONNX Runtime does).

    Raises:
        InputError: the file is not a protobuf message or its metadata is not text.
    """
    model_path = Path(path)
    try:
        with model_path.open("rb") as stream:
            entries = _fields(stream).get(METADATA_PROPS, [])
            read_to = stream.tell()  # past the end when a skipped field claims more bytes
            if read_to != stream.seek(0, os.SEEK_END):
                raise _MalformedError("a field runs past the end of the file")
        props: dict[str, str] = {}
        for entry in entries:
            fields = _fields(io.BytesIO(entry), len(entry))
            key = b"".join(fields.get(1, [b""])[-1:]).decode("utf-8")
            props[key] = b"".join(fields.get(2, [b""])[-1:]).decode("utf-8")
    except (_MalformedError, UnicodeDecodeError) as error:
        raise InputError(f"Not a valid ONNX model: {model_path} ({error})") from error
    return props
