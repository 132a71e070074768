# SPDX-License-Identifier: GPL-2.0-or-later
"""A few protobuf messages declared at run time, without ``protoc`` or generated
``*_pb2`` modules: the ONNX subset the plugin reads and rewrites
(:mod:`.onnx_file`) and the CNTK subset the model conversion reads
(``model_training.cntk.protobuf``). Only ``protobuf`` is needed (ONNX Runtime
requires it); it is imported when a schema is built, not with this module.

Field numbers and types must be those of the real schema: protobuf's wire format
names fields by number only, and fields not declared are kept as unknown fields.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any


def field(
    name: str,
    number: int,
    kind: int,
    *,
    repeated: bool = False,
    type_name: str = "",
    oneof: int | None = None,
    packed: bool = False,
) -> Any:
    """A ``FieldDescriptorProto``.

    Args:
        kind: a ``FieldDescriptorProto.TYPE_*`` code.
        type_name: a message's name relative to the schema's package (``"Axis"``,
            ``"NDArrayView.FloatValues"``) for ``TYPE_MESSAGE`` fields; qualified by
            :func:`message_class`.
        oneof: the index of the message's oneof (``message(oneofs=...)``) it belongs to.
        packed: repeated numbers packed (proto3's default; proto2 needs it said).
    """
    from google.protobuf import descriptor_pb2

    f = descriptor_pb2.FieldDescriptorProto
    declared = f(
        name=name,
        number=number,
        type=kind,
        label=f.LABEL_REPEATED if repeated else f.LABEL_OPTIONAL,
    )
    if type_name:
        declared.type_name = type_name
    if oneof is not None:
        declared.oneof_index = oneof
    if packed:
        declared.options.packed = True
    return declared


def message(
    name: str, fields: Iterable[Any], *, oneofs: Sequence[str] = (), nested: Iterable[Any] = ()
) -> Any:
    """A ``DescriptorProto`` of ``fields`` (:func:`field`), its ``oneofs`` and nested
    messages."""
    from google.protobuf import descriptor_pb2

    declared = descriptor_pb2.DescriptorProto(name=name)
    declared.field.extend(fields)
    declared.nested_type.extend(nested)
    for oneof in oneofs:
        declared.oneof_decl.add(name=oneof)
    return declared


def message_class(
    file_name: str, package: str, syntax: str, messages: Iterable[Any], root: str
) -> Any:
    """The class of the message ``root`` of a schema of ``messages``, in a pool of its
    own (the declarations never clash with another copy of the same schema in the
    process, e.g. the ``onnx`` package's).

    Args:
        syntax: ``"proto2"`` or ``"proto3"``, as the real schema's.
    """
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    schema = descriptor_pb2.FileDescriptorProto(name=file_name, package=package, syntax=syntax)
    schema.message_type.extend(messages)
    _qualify(schema.message_type, package)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(schema)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{package}.{root}"))


def _qualify(messages: Iterable[Any], package: str) -> None:
    """Message type names made absolute (``.package.Name``), nested messages too."""
    for declared in messages:
        for one in declared.field:
            if one.type_name and not one.type_name.startswith("."):
                one.type_name = f".{package}.{one.type_name}"
        _qualify(declared.nested_type, package)
