"""Comments of the proto files, by element full name.

The runtime pb2 modules drop source comments; ``make protos`` writes a descriptor set with
source info next to them, which this reads. The OpenAPI document and ListMethods use the
comments as descriptions, so the proto stays the one place they are written.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

from google.protobuf import descriptor_pb2

# Written by `make protos` (autointerp_grpc.protogen) next to the generated modules.
DESCRIPTOR_SET = "descriptor_set.binpb"


def _walk_message(
    msg: descriptor_pb2.DescriptorProto, path: tuple[int, ...], prefix: str, names: dict
) -> None:
    full = f"{prefix}.{msg.name}"
    names[path] = full
    for i, field in enumerate(msg.field):
        names[(*path, 2, i)] = f"{full}.{field.name}"
    for i, nested in enumerate(msg.nested_type):
        _walk_message(nested, (*path, 3, i), full, names)
    for i, enum in enumerate(msg.enum_type):
        _walk_enum(enum, (*path, 4, i), full, names)


def _walk_enum(
    enum: descriptor_pb2.EnumDescriptorProto, path: tuple[int, ...], prefix: str, names: dict
) -> None:
    full = f"{prefix}.{enum.name}"
    names[path] = full
    for i, value in enumerate(enum.value):
        names[(*path, 2, i)] = f"{full}.{value.name}"


@cache
def proto_comments() -> dict[str, str]:
    """Leading comments of every message, field, enum, enum value and RPC, by full name."""
    data = (resources.files("autointerp_grpc.gen") / DESCRIPTOR_SET).read_bytes()
    fds = descriptor_pb2.FileDescriptorSet.FromString(data)
    out: dict[str, str] = {}
    for file in fds.file:
        # Source locations address elements by their path of field numbers in the
        # FileDescriptorProto (4 = message_type, 5 = enum_type, 6 = service, ...).
        names: dict[tuple[int, ...], str] = {}
        for i, msg in enumerate(file.message_type):
            _walk_message(msg, (4, i), file.package, names)
        for i, enum in enumerate(file.enum_type):
            _walk_enum(enum, (5, i), file.package, names)
        for i, service in enumerate(file.service):
            names[(6, i)] = f"{file.package}.{service.name}"
            for j, method in enumerate(service.method):
                names[(6, i, 2, j)] = f"{file.package}.{service.name}.{method.name}"
        for location in file.source_code_info.location:
            name = names.get(tuple(location.path))
            comment = location.leading_comments.strip()
            if name and comment:
                out[name] = " ".join(line.strip() for line in comment.splitlines())
    return out
