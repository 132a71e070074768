# SPDX-License-Identifier: GPL-2.0-or-later
"""Read a CNTK v2 model file (``*.model``) without CNTK.

A CNTK v2 model file is one serialised ``CNTK.proto.Dictionary`` message. The few
messages needed to parse it are declared here, field numbers and types as in CNTK's
``CNTK.proto`` schema (microsoft/CNTK, MIT), and the parsed message is turned into plain
Python values: ``dict``, ``list``, ``int``, ``float``, ``str``, :class:`Axis`, shape
tuples and NumPy arrays.

CNTK stores shapes and array values column-major (the first ``shape_dim`` varies
fastest). :func:`to_python` reverses every shape, so shapes and arrays come out in the
row-major order CNTK's Python API shows (e.g. convolution kernels as
(out, in, kh, kw)).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from google.protobuf import descriptor_pb2
from google.protobuf.message import DecodeError, Message

from qgis_landcover.core.models.protobuf_schema import field, message, message_class

_PACKAGE = "CNTK.proto"

#: ``DictionaryValue.value_type`` codes (``DictionaryValue.Type`` in the schema).
VALUE_TYPES = {
    0: "None",
    1: "Bool",
    2: "Int",
    3: "SizeT",
    4: "Float",
    5: "Double",
    6: "String",
    7: "NDShape",
    8: "Axis",
    9: "Vector",
    10: "Dictionary",
    11: "NDArrayView",
}
#: ``NDArrayView.data_type`` codes (``NDArrayView.DataType``) that hold dense numbers.
_ARRAY_DTYPES = {1: np.float32, 2: np.float64, 4: np.float16, 5: np.int8, 6: np.int16}
_DENSE = 0  # NDArrayView.StorageFormat.Dense


class CntkFormatError(ValueError):
    """The file is not a CNTK v2 model this reader understands."""


@dataclass(frozen=True)
class Axis:
    """A CNTK axis: a static axis (``static_axis_idx`` in CNTK's column-major numbering)
    or a named dynamic axis (batch / sequence)."""

    static_axis_idx: int
    name: str
    is_ordered_dynamic_axis: bool


def _messages() -> list[Any]:
    """The subset of ``CNTK.proto`` a model file uses. Enums are declared as ``int32``:
    the wire encoding is the same varint and unknown codes stay readable."""
    f = descriptor_pb2.FieldDescriptorProto
    array_values = {
        "FloatValues": f.TYPE_FLOAT,
        "DoubleValues": f.TYPE_DOUBLE,
        "IntValues": f.TYPE_SINT32,
    }
    nested_values = (
        *(
            message(name, [field("value", 1, kind, repeated=True, packed=True)])
            for name, kind in array_values.items()
        ),
        message("BytesValue", [field("value", 1, f.TYPE_BYTES)]),
    )
    data_entry = message(
        "DataEntry",
        [
            field("key", 1, f.TYPE_STRING),
            field("value", 2, f.TYPE_MESSAGE, type_name="DictionaryValue"),
        ],
    )
    data_entry.options.map_entry = True
    messages = [
        message("NDShape", [field("shape_dim", 1, f.TYPE_UINT64, repeated=True, packed=True)]),
        message(
            "Axis",
            [
                field("static_axis_idx", 1, f.TYPE_INT32),
                field("name", 2, f.TYPE_STRING),
                field("is_ordered_dynamic_axis", 3, f.TYPE_BOOL),
            ],
        ),
        message(
            "NDArrayView",
            [
                field("data_type", 1, f.TYPE_INT32),
                field("storage_format", 2, f.TYPE_INT32),
                field("shape", 3, f.TYPE_MESSAGE, type_name="NDShape"),
                field(
                    "float_values", 4, f.TYPE_MESSAGE, type_name="NDArrayView.FloatValues", oneof=0
                ),
                field(
                    "double_values",
                    5,
                    f.TYPE_MESSAGE,
                    type_name="NDArrayView.DoubleValues",
                    oneof=0,
                ),
                field(
                    "bytes_value", 6, f.TYPE_MESSAGE, type_name="NDArrayView.BytesValue", oneof=0
                ),
                field(
                    "sint32_values", 7, f.TYPE_MESSAGE, type_name="NDArrayView.IntValues", oneof=0
                ),
            ],
            oneofs=("values",),
            nested=nested_values,
        ),
        message(
            "Vector",
            [field("value", 1, f.TYPE_MESSAGE, repeated=True, type_name="DictionaryValue")],
        ),
        message(
            "Dictionary",
            [
                field("version", 1, f.TYPE_UINT64),
                field("data", 2, f.TYPE_MESSAGE, repeated=True, type_name="Dictionary.DataEntry"),
            ],
            nested=(data_entry,),
        ),
        message(
            "DictionaryValue",
            [
                field("version", 1, f.TYPE_UINT64),
                field("value_type", 2, f.TYPE_INT32),
                field("bool_value", 3, f.TYPE_BOOL, oneof=0),
                field("int_value", 4, f.TYPE_INT32, oneof=0),
                field("size_t_value", 5, f.TYPE_UINT64, oneof=0),
                field("float_value", 6, f.TYPE_FLOAT, oneof=0),
                field("double_value", 7, f.TYPE_DOUBLE, oneof=0),
                field("string_value", 8, f.TYPE_STRING, oneof=0),
                field("nd_shape_value", 9, f.TYPE_MESSAGE, type_name="NDShape", oneof=0),
                field("axis_value", 10, f.TYPE_MESSAGE, type_name="Axis", oneof=0),
                field("vector_value", 11, f.TYPE_MESSAGE, type_name="Vector", oneof=0),
                field("dictionary_value", 12, f.TYPE_MESSAGE, type_name="Dictionary", oneof=0),
                field("nd_array_view_value", 13, f.TYPE_MESSAGE, type_name="NDArrayView", oneof=0),
            ],
            oneofs=("value",),
        ),
    ]
    return messages


@cache
def _dictionary_class() -> type[Message]:
    dictionary: type[Message] = message_class(
        "landcover_cntk_subset.proto", _PACKAGE, "proto3", _messages(), root="Dictionary"
    )
    return dictionary


def _shape(message: Message) -> tuple[int, ...]:
    """An ``NDShape`` in row-major order (CNTK stores the fastest-varying dim first)."""
    return tuple(int(dim) for dim in reversed(message.shape_dim))


def _array(message: Message) -> np.ndarray:
    """An ``NDArrayView`` as a row-major array of its shape."""
    if message.storage_format != _DENSE:
        raise CntkFormatError(f"sparse NDArrayView (storage format {message.storage_format})")
    dtype = _ARRAY_DTYPES.get(message.data_type)
    if dtype is None:
        raise CntkFormatError(f"NDArrayView of unknown data type {message.data_type}")
    kind = message.WhichOneof("values")
    if kind == "bytes_value":
        # CNTK keeps float16 / int8 / int16 as raw little-endian bytes.
        flat = np.frombuffer(message.bytes_value.value, dtype=np.dtype(dtype).newbyteorder("<"))
    elif kind is None:
        flat = np.zeros(0, dtype=dtype)
    else:
        flat = np.asarray(getattr(message, kind).value, dtype=dtype)
    shape = _shape(message.shape)
    if flat.size != int(np.prod(shape, dtype=np.int64)):
        raise CntkFormatError(f"NDArrayView holds {flat.size} values for shape {shape}")
    # Column-major storage: C-order reshape to the reversed dims gives the row-major view.
    return flat.astype(dtype, copy=False).reshape(shape)


def to_python(value: Message) -> Any:
    """A ``DictionaryValue`` (or ``Dictionary``) as a plain Python value."""
    if value.DESCRIPTOR.name == "Dictionary":
        return {entry_key: to_python(entry) for entry_key, entry in value.data.items()}
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind in ("bool_value", "int_value", "size_t_value", "string_value"):
        return getattr(value, kind)
    if kind in ("float_value", "double_value"):
        return float(getattr(value, kind))
    if kind == "nd_shape_value":
        return _shape(value.nd_shape_value)
    if kind == "axis_value":
        axis = value.axis_value
        return Axis(axis.static_axis_idx, axis.name, axis.is_ordered_dynamic_axis)
    if kind == "vector_value":
        return [to_python(item) for item in value.vector_value.value]
    if kind == "dictionary_value":
        return to_python(value.dictionary_value)
    return _array(value.nd_array_view_value)


def parse_model_bytes(data: bytes) -> dict[str, Any]:
    """Parse the bytes of a CNTK v2 model file into a nested ``dict``."""
    message = _dictionary_class()()
    try:
        message.ParseFromString(data)
    except DecodeError as error:
        raise CntkFormatError(f"not a CNTK v2 model file ({error})") from error
    if not message.data:
        raise CntkFormatError("not a CNTK v2 model file (empty dictionary)")
    return to_python(message)


def read_model_file(path: str | Path) -> dict[str, Any]:
    """Read a CNTK v2 ``.model`` file into a nested ``dict`` (see :func:`to_python`)."""
    return parse_model_bytes(Path(path).read_bytes())


# --- The model graph -------------------------------------------------------------------

#: CNTK ``PrimitiveOpType`` codes (CNTK's ``PrimitiveOpType.h``; stable by design, new
#: ops are only appended).
OP_NAMES = {
    0: "Negate",
    1: "Sigmoid",
    2: "Tanh",
    3: "ReLU",
    4: "Exp",
    5: "Log",
    6: "Sqrt",
    7: "Floor",
    8: "Abs",
    9: "Reciprocal",
    10: "Softmax",
    11: "Hardmax",
    12: "TransposeAxes",
    13: "Where",
    14: "Slice",
    15: "Dropout",
    16: "Reshape",
    17: "Pooling",
    18: "SumAll",
    19: "Plus",
    20: "Minus",
    21: "ElementTimes",
    31: "Times",
    33: "Convolution",
    39: "ReduceElements",
    40: "BatchNormalization",
    41: "Clip",
    43: "Splice",
    44: "Combine",
    56: "Pass",
    57: "Block",
    62: "NoOp",
}
#: CNTK ``VariableKind`` codes.
VARIABLE_KINDS = {0: "input", 1: "output", 2: "parameter", 3: "constant", 4: "placeholder"}
#: ``Axis.static_axis_idx`` sentinels for "all static axes" / "all axes".
ALL_STATIC_AXES = 2147483646
ALL_AXES = 2147483645


@dataclass(frozen=True)
class Variable:
    """A graph leaf: the input, a learnable parameter, a constant or a placeholder.

    ``shape`` is row-major (as CNTK's Python API shows it), without the batch axis;
    ``value`` is the stored array (parameters and constants) of that shape, else None.
    """

    uid: str
    kind: str
    name: str
    shape: tuple[int, ...]
    value: np.ndarray | None


@dataclass(frozen=True)
class Function:
    """A primitive function (one op) of the graph.

    ``inputs`` are variable uids or ``<function uid>_Output_<n>`` output names. A
    ``Block`` function wraps a composite (``block_root`` is the uid of its inner root
    function) whose placeholders stand for the block's outer inputs (``block_arguments``
    maps placeholder uid -> outer input).
    """

    uid: str
    op: str
    name: str
    inputs: tuple[str, ...]
    attributes: dict[str, Any]
    block_op: str | None = None
    block_root: str | None = None
    block_arguments: dict[str, str] | None = None


def output_name(function_uid: str, index: int = 0) -> str:
    """The name CNTK gives a function's ``index``-th output."""
    return f"{function_uid}_Output_{index}"


def static_axis(axis: Axis, rank: int) -> int:
    """A CNTK static axis index (column-major numbering) as a row-major axis of a
    tensor of ``rank`` static dims (0 = the first, channel, axis)."""
    if not 0 <= axis.static_axis_idx < rank:
        raise CntkFormatError(f"axis {axis} is not a static axis of a rank-{rank} tensor")
    return rank - 1 - axis.static_axis_idx


@dataclass(frozen=True)
class CntkGraph:
    """A CNTK v2 composite function (a saved model): variables and primitive functions."""

    uid: str
    root: str
    variables: dict[str, Variable]
    functions: dict[str, Function]

    @property
    def inputs(self) -> list[Variable]:
        return [v for v in self.variables.values() if v.kind == "input"]

    @property
    def parameters(self) -> list[Variable]:
        return [v for v in self.variables.values() if v.kind == "parameter"]

    @property
    def constants(self) -> list[Variable]:
        return [v for v in self.variables.values() if v.kind == "constant"]

    def producer(self, name: str) -> Function | None:
        """The function whose output is ``name``, or None for a variable."""
        # Some outputs also appear as placeholder variables of the same name (CNTK's
        # serialisation of outputs shared by blocks): the producing function wins.
        uid, separator, _ = name.rpartition("_Output_")
        if separator and uid in self.functions:
            return self.functions[uid]
        if name in self.variables:
            return None
        raise CntkFormatError(f"graph refers to unknown node {name!r}")

    def top_level(self) -> list[Function]:
        """The functions reachable from the root without entering blocks, inputs first."""

        def inputs(uid: str) -> tuple[str, ...]:
            producers = (self.producer(name) for name in self.functions[uid].inputs)
            return tuple(function.uid for function in producers if function is not None)

        return [self.functions[uid] for uid in post_order(self.root, inputs)]


def post_order(root: str, inputs: Callable[[str], Sequence[str]]) -> list[str]:
    """The nodes reachable from ``root`` (a DAG given by ``inputs(node)``), each after all
    of its inputs. Iterative: graphs can be deeper than Python's recursion limit."""
    order: list[str] = []
    seen: set[str] = set()
    stack: list[tuple[str, bool]] = [(root, False)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
        elif node not in seen:
            seen.add(node)
            stack.append((node, True))
            stack.extend((argument, False) for argument in reversed(inputs(node)))
    return order


def _variable(entry: dict[str, Any]) -> Variable:
    kind = VARIABLE_KINDS.get(entry.get("kind", -1))
    if kind is None:
        raise CntkFormatError(f"variable {entry.get('uid')!r} has unknown kind {entry.get('kind')}")
    value = entry.get("value")
    return Variable(
        uid=entry["uid"],
        kind=kind,
        name=entry.get("name", ""),
        shape=tuple(entry.get("shape", ())),
        value=value if isinstance(value, np.ndarray) else None,
    )


def _function(entry: dict[str, Any]) -> Function:
    code = entry["op"]
    op = OP_NAMES.get(code, f"op{code}")
    block = entry.get("block_function_composite")
    arguments = None
    if block is not None:
        keys = entry.get("block_function_composite_arguments_map_keys", [])
        values = entry.get("block_function_composite_arguments_map_values", [])
        if len(keys) != len(values):
            raise CntkFormatError(f"block {entry['uid']!r} has an inconsistent argument map")
        arguments = dict(zip(keys, values, strict=True))
    return Function(
        uid=entry["uid"],
        op=op,
        name=entry.get("name", ""),
        inputs=tuple(entry.get("inputs", [])),
        attributes=dict(entry.get("attributes", {})),
        block_op=entry.get("block_function_op_name"),
        block_root=block["root"] if block is not None else None,
        block_arguments=arguments,
    )


def load_graph(path: str | Path) -> CntkGraph:
    """Read a CNTK v2 ``.model`` file as a :class:`CntkGraph`."""
    data = read_model_file(path)
    if data.get("type") != "CompositeFunction" or "primitive_functions" not in data:
        raise CntkFormatError(f"{path}: not a saved CNTK v2 model (no composite function)")
    variables = {v.uid: v for v in map(_variable, data.get("inputs", []))}
    functions = {f.uid: f for f in map(_function, data["primitive_functions"])}
    graph = CntkGraph(data["uid"], data["root"], variables, functions)
    graph.producer(output_name(graph.root))  # the root must exist
    return graph
