"""The OpenAPI 3.1 document of the REST door, generated from the proto descriptors.

Paths come from the RPCs' ``google.api.http`` options (via :mod:`autointerp_grpc.gateway`),
schemas from the message descriptors: property names are the proto3 JSON names (camelCase),
``required`` lists the fields annotated ``(google.api.field_behavior) = REQUIRED``, ``optional``
fields are nullable, and descriptions are the proto comments, read from the descriptor set
with source info that ``make protos`` writes next to the generated code.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

from google.protobuf import descriptor_pb2
from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor

from autointerp_grpc import __version__
from autointerp_grpc.gateway import http_bindings
from autointerp_grpc.jsonmap import is_proto3_optional
from autointerp_grpc.protogen import DESCRIPTOR_SET
from autointerp_grpc.service import SERVICE
from autointerp_grpc.validation import is_required

ERROR_SCHEMA = "ErrorResponse"
_SCALARS: dict[int, dict[str, Any]] = {
    FieldDescriptor.TYPE_DOUBLE: {"type": "number", "format": "double"},
    FieldDescriptor.TYPE_FLOAT: {"type": "number", "format": "float"},
    FieldDescriptor.TYPE_INT32: {"type": "integer", "format": "int32"},
    FieldDescriptor.TYPE_SINT32: {"type": "integer", "format": "int32"},
    FieldDescriptor.TYPE_SFIXED32: {"type": "integer", "format": "int32"},
    FieldDescriptor.TYPE_UINT32: {"type": "integer", "format": "int64", "minimum": 0},
    FieldDescriptor.TYPE_FIXED32: {"type": "integer", "format": "int64", "minimum": 0},
    FieldDescriptor.TYPE_BOOL: {"type": "boolean"},
    FieldDescriptor.TYPE_STRING: {"type": "string"},
    # proto3 JSON prints 64-bit integers and bytes as strings.
    FieldDescriptor.TYPE_INT64: {"type": "string", "format": "int64"},
    FieldDescriptor.TYPE_UINT64: {"type": "string", "format": "uint64"},
    FieldDescriptor.TYPE_SINT64: {"type": "string", "format": "int64"},
    FieldDescriptor.TYPE_FIXED64: {"type": "string", "format": "uint64"},
    FieldDescriptor.TYPE_SFIXED64: {"type": "string", "format": "int64"},
    FieldDescriptor.TYPE_BYTES: {"type": "string", "format": "byte"},
}


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
def _comments() -> dict[str, str]:
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


def _describe(schema: dict[str, Any], full_name: str) -> dict[str, Any]:
    text = _comments().get(full_name)
    if text:
        schema["description"] = text
    return schema


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _enum_schema(enum: EnumDescriptor) -> dict[str, Any]:
    # The zero value (…_UNSPECIFIED) means "not set" and is rejected, so it is not offered.
    values = [v.name for v in enum.values if v.number != 0]
    return _describe({"title": enum.name, "type": "string", "enum": values}, enum.full_name)


def _field_schema(field: FieldDescriptor, schemas: dict[str, Any]) -> dict[str, Any]:
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        _add_message(field.message_type, schemas)
        item: dict[str, Any] = _ref(field.message_type.name)
    elif field.type == FieldDescriptor.TYPE_ENUM:
        schemas.setdefault(field.enum_type.name, _enum_schema(field.enum_type))
        item = _ref(field.enum_type.name)
    else:
        item = dict(_SCALARS[field.type])
    if field.is_repeated:
        schema: dict[str, Any] = {"type": "array", "items": item}
    elif is_proto3_optional(field):
        schema = {"anyOf": [item, {"type": "null"}]}
    else:
        schema = item
    return _describe(schema, field.full_name)


def _add_message(message: Descriptor, schemas: dict[str, Any]) -> None:
    if message.name in schemas:
        return
    schema: dict[str, Any] = {"title": message.name, "type": "object", "properties": {}}
    schemas[message.name] = schema  # placed first so recursive messages terminate
    required = []
    for field in message.fields:
        schema["properties"][field.json_name] = _field_schema(field, schemas)
        if is_required(field):
            required.append(field.json_name)
    if required:
        schema["required"] = required
    _describe(schema, message.full_name)


def _operation_id(method_name: str, verb: str) -> str:
    return method_name[0].lower() + method_name[1:] + verb.capitalize()


def build_openapi(title: str = "autointerp") -> dict[str, Any]:
    """The OpenAPI 3.1 document for every RPC with an HTTP rule."""
    schemas: dict[str, Any] = {}
    paths: dict[str, Any] = {}
    from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2 as pb

    _add_message(pb.ErrorResponse.DESCRIPTOR, schemas)
    error_content = {"application/json": {"schema": _ref(ERROR_SCHEMA)}}
    for binding in http_bindings():
        method = binding.method
        _add_message(method.input_type, schemas)
        _add_message(method.output_type, schemas)
        operation: dict[str, Any] = {
            "operationId": _operation_id(method.name, binding.verb),
            "summary": method.name,
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": _ref(method.input_type.name)}},
            },
            "responses": {
                "200": {
                    "description": "Successful response",
                    "content": {"application/json": {"schema": _ref(method.output_type.name)}},
                },
                "400": {"description": "Invalid request", "content": error_content},
                "401": {"description": "Missing or wrong X-SECRET-KEY", "content": error_content},
                "default": {"description": "Error", "content": error_content},
            },
        }
        _describe(operation, method.full_name)
        paths.setdefault(binding.path, {})[binding.verb] = operation
    return {
        "openapi": "3.1.0",
        "info": _describe({"title": title, "version": __version__}, SERVICE.full_name),
        "paths": paths,
        "components": {
            "schemas": dict(sorted(schemas.items())),
            "securitySchemes": {
                "SimpleSecretAuth": {"type": "apiKey", "in": "header", "name": "X-SECRET-KEY"}
            },
        },
        "security": [{"SimpleSecretAuth": []}],
    }
