# SPDX-License-Identifier: GPL-2.0-or-later
"""Read and replace an ONNX model's weights (initializers) and metadata without the
``onnx`` package: the plugin needs only ``protobuf``, which ONNX Runtime requires.

Only the few fields touched here are declared (field numbers of ``onnx.proto``:
``ModelProto.graph`` 7 and ``metadata_props`` 14, ``GraphProto.initializer`` 5,
``TensorProto`` dims 1, data_type 2, float_data 4, name 8, raw_data 9,
data_location 14, ``StringStringEntryProto`` key 1 / value 2). Every other field is
kept as protobuf's unknown fields and written back unchanged, so the graph of a model
written by :func:`write_model_with` is the source's graph, node for node.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ..files.atomic import atomic_output
from .protobuf_schema import field, message, message_class
from .validation import check_model_file

_FLOAT = 1  # TensorProto.DataType.FLOAT
_EXTERNAL = 1  # TensorProto.DataLocation.EXTERNAL


@cache
def _model_class() -> Any:
    from google.protobuf import descriptor_pb2

    f = descriptor_pb2.FieldDescriptorProto

    tensor = message(
        "TensorProto",
        [
            field("dims", 1, f.TYPE_INT64, repeated=True),
            field("data_type", 2, f.TYPE_INT32),
            field("float_data", 4, f.TYPE_FLOAT, repeated=True, packed=True),
            field("name", 8, f.TYPE_STRING),
            field("raw_data", 9, f.TYPE_BYTES),
            field("data_location", 14, f.TYPE_INT32),
        ],
    )
    entry = message(
        "StringStringEntryProto",
        [field("key", 1, f.TYPE_STRING), field("value", 2, f.TYPE_STRING)],
    )
    graph = message(
        "GraphProto",
        [field("initializer", 5, f.TYPE_MESSAGE, repeated=True, type_name="TensorProto")],
    )
    model = message(
        "ModelProto",
        [
            field("graph", 7, f.TYPE_MESSAGE, type_name="GraphProto"),
            field("metadata_props", 14, f.TYPE_MESSAGE, repeated=True, type_name=entry.name),
        ],
    )
    return message_class(
        "landcover_onnx_subset.proto",
        "landcover_onnx",
        "proto2",
        [tensor, entry, graph, model],
        root="ModelProto",
    )


def _load(path: Path) -> Any:
    check_model_file(path)
    from google.protobuf.message import DecodeError

    model = _model_class()()
    try:
        model.ParseFromString(path.read_bytes())
    except DecodeError as error:
        raise InputError(f"{path.name} is not an ONNX model ({error}).") from error
    return model


def _float_tensor(path: Path, tensor: Any) -> np.ndarray:
    if tensor.data_type != _FLOAT or tensor.data_location == _EXTERNAL:
        raise InputError(
            f"{path.name}: the weight {tensor.name!r} is not stored as float32 inside the file "
            "(quantised, float16 or external data): such a model cannot be adapted; adapt "
            "its float32 version."
        )
    shape = tuple(int(d) for d in tensor.dims)
    if tensor.raw_data:
        values = np.frombuffer(tensor.raw_data, dtype="<f4")
    else:
        values = np.asarray(tensor.float_data, dtype=np.float32)
    if values.size != int(np.prod(shape)):
        raise InputError(f"{path.name}: the weight {tensor.name!r} holds {values.size} values "
                         f"for its shape {shape}.")  # fmt: skip
    return values.astype(np.float32).reshape(shape)


def read_initializers(path: str | os.PathLike[str], names: list[str]) -> dict[str, np.ndarray]:
    """float32 copies of the initializers ``names`` of the ONNX file ``path``.

    Raises:
        InputError: not an ONNX file, a name missing, or a weight not float32 in the file.
    """
    model_path = Path(path)
    model = _load(model_path)
    found = {t.name: t for t in model.graph.initializer if t.name in names}
    missing = [n for n in names if n not in found]
    if missing:
        raise InputError(
            f"{model_path.name}: the graph has no weights named {', '.join(missing)} (metadata "
            "'features_output' names them)."
        )
    return {name: _float_tensor(model_path, found[name]) for name in names}


def write_model_with(
    source: str | os.PathLike[str],
    destination: str | os.PathLike[str],
    initializers: Mapping[str, np.ndarray],
    metadata: Mapping[str, str],
) -> None:
    """Write ``source`` to ``destination`` (atomically) with the float32 values of
    ``initializers`` (same names and shapes as in ``source``) and the ``metadata``
    entries replacing those with the same keys (other entries kept, in order).

    Raises:
        InputError: a name missing or a shape different from the source's.
    """
    source_path = Path(source)
    model = _load(source_path)
    by_name = {t.name: t for t in model.graph.initializer}
    for name, value in initializers.items():
        tensor = by_name.get(name)
        if tensor is None:
            raise InputError(f"{source_path.name}: the graph has no weights named {name!r}.")
        old = _float_tensor(source_path, tensor)
        if old.shape != value.shape:
            raise InputError(
                f"{source_path.name}: new weights {name!r} have shape {value.shape}, the "
                f"model's {old.shape}."
            )
        del tensor.float_data[:]
        tensor.raw_data = np.ascontiguousarray(value, dtype="<f4").tobytes()
    entries = {entry.key: entry for entry in model.metadata_props}
    for key, value in metadata.items():
        if key in entries:
            entries[key].value = value
        else:
            model.metadata_props.add(key=key, value=value)
    with atomic_output(Path(destination)) as temporary:
        temporary.write_bytes(model.SerializeToString())
