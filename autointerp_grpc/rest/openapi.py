"""The OpenAPI 3.1 document of the REST door, generated from the proto descriptors.

Paths come from the RPCs' ``google.api.http`` options (via :mod:`autointerp_grpc.rest.routes`),
schemas from the message descriptors: property names are the proto3 JSON names (camelCase),
``required`` lists the fields annotated ``(google.api.field_behavior) = REQUIRED``, ``optional``
fields are nullable, and descriptions are the proto comments, read from the descriptor set
with source info that ``make protos`` writes next to the generated code.
"""

from __future__ import annotations

from importlib import metadata
from typing import Any

from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor

from autointerp_grpc import __version__
from autointerp_grpc.descriptors import descriptor_of, enum_type_of, message_type_of
from autointerp_grpc.proto_comments import proto_comments
from autointerp_grpc.rest.jsonmap import is_proto3_optional
from autointerp_grpc.rest.routes import http_bindings
from autointerp_grpc.service import SERVICE
from autointerp_grpc.validation import is_required

ERROR_SCHEMA = "ErrorResponse"
DISTRIBUTION = "autointerp-grpc"


def package_version() -> str:
    """The installed distribution's version (what ``info.version`` says), else the source
    tree's ``__version__`` when the package is run without being installed."""
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return __version__


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
    # proto3 JSON prints 64-bit integers as strings; the REST door prints them as numbers
    # (jsonmap), which every JSON parser reads and json_format accepts back.
    FieldDescriptor.TYPE_INT64: {"type": "integer", "format": "int64"},
    FieldDescriptor.TYPE_UINT64: {"type": "integer", "format": "int64", "minimum": 0},
    FieldDescriptor.TYPE_SINT64: {"type": "integer", "format": "int64"},
    FieldDescriptor.TYPE_FIXED64: {"type": "integer", "format": "int64", "minimum": 0},
    FieldDescriptor.TYPE_SFIXED64: {"type": "integer", "format": "int64"},
    FieldDescriptor.TYPE_BYTES: {"type": "string", "format": "byte"},
}


def _describe(schema: dict[str, Any], full_name: str) -> dict[str, Any]:
    text = proto_comments().get(full_name)
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
        message = message_type_of(field)
        _add_message(message, schemas)
        item: dict[str, Any] = _ref(message.name)
    elif field.type == FieldDescriptor.TYPE_ENUM:
        enum = enum_type_of(field)
        schemas.setdefault(enum.name, _enum_schema(enum))
        item = _ref(enum.name)
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

    _add_message(descriptor_of(pb.ErrorResponse), schemas)
    error_content = {"application/json": {"schema": _ref(ERROR_SCHEMA)}}
    for binding in http_bindings():
        method = binding.method
        _add_message(method.input_type, schemas)
        _add_message(method.output_type, schemas)
        operation: dict[str, Any] = {
            "operationId": _operation_id(method.name, binding.verb),
            "summary": method.name,
            "responses": {
                "200": {
                    "description": (
                        "A stream of messages, one JSON object per line"
                        if method.server_streaming
                        else "Successful response"
                    ),
                    "content": {
                        "application/x-ndjson" if method.server_streaming else "application/json": {
                            "schema": _ref(method.output_type.name)
                        }
                    },
                },
                "400": {"description": "Invalid request", "content": error_content},
                "401": {"description": "Missing or wrong X-SECRET-KEY", "content": error_content},
                "default": {"description": "Error", "content": error_content},
            },
        }
        if binding.body == "*":
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": _ref(method.input_type.name)}},
            }
        else:
            # No body: the request's top-level fields are query parameters.
            operation["parameters"] = [
                {
                    "name": field.json_name,
                    "in": "query",
                    "required": is_required(field),
                    "schema": _field_schema(field, schemas),
                }
                for field in method.input_type.fields
            ]
        _describe(operation, method.full_name)
        paths.setdefault(binding.path, {})[binding.verb] = operation
    return {
        "openapi": "3.1.0",
        "info": _describe({"title": title, "version": package_version()}, SERVICE.full_name),
        # Relative to where the document was fetched: generators then build base paths that
        # work behind any host or port (the operations' paths carry their own /v1 prefix).
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": dict(sorted(schemas.items())),
            "securitySchemes": {
                "SimpleSecretAuth": {"type": "apiKey", "in": "header", "name": "X-SECRET-KEY"}
            },
        },
        "security": [{"SimpleSecretAuth": []}],
    }
