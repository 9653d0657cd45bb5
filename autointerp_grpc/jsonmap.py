"""proto3 JSON mapping, the way the REST door speaks it.

``google.protobuf.json_format`` does the conversion. On top of it: every field is printed,
including defaults (``always_print_fields_with_no_presence``), and an unset ``optional``
field is printed as ``null`` — the legacy JSON API sent ``null`` for such values, and
proto3's JSON mapping would otherwise leave the key out.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

from google.protobuf import json_format
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from autointerp_grpc.errors import InvalidArgument

M = TypeVar("M", bound=Message)


def is_proto3_optional(field: FieldDescriptor) -> bool:
    """An ``optional`` scalar in proto3: it sits alone in protoc's synthetic ``_<name>`` oneof."""
    oneof = field.containing_oneof
    return oneof is not None and oneof.name == f"_{field.name}" and len(oneof.fields) == 1


def _nullable_unset(field: FieldDescriptor) -> bool:
    if field.is_repeated:
        return False
    return is_proto3_optional(field) or (
        field.type == FieldDescriptor.TYPE_MESSAGE and field.containing_oneof is None
    )


def _fill_nulls(message: Message, out: dict[str, Any]) -> None:
    for field in message.DESCRIPTOR.fields:
        value = getattr(message, field.name)
        if (
            field.type == FieldDescriptor.TYPE_MESSAGE
            and not field.message_type.GetOptions().map_entry
        ):
            if field.is_repeated:
                for item, item_out in zip(value, out.get(field.json_name, []), strict=False):
                    _fill_nulls(item, item_out)
                continue
            if message.HasField(field.name) and isinstance(out.get(field.json_name), dict):
                _fill_nulls(value, out[field.json_name])
                continue
        if _nullable_unset(field) and not message.HasField(field.name):
            out[field.json_name] = None


def to_json_dict(message: Message) -> dict[str, Any]:
    """``message`` as its JSON object (camelCase keys, every field present)."""
    out = json_format.MessageToDict(
        message,
        always_print_fields_with_no_presence=True,
        preserving_proto_field_name=False,
    )
    _fill_nulls(message, out)
    return out


def _reject_constant(name: str) -> float:
    raise InvalidArgument(f"Invalid JSON: {name} is not a number JSON allows")


def parse_json_body(body: bytes, message_cls: type[M]) -> M:
    """Parse a request body into ``message_cls``; camelCase and snake_case keys both work,
    unknown keys are ignored (as the legacy server did)."""
    try:
        data = json.loads(body, parse_constant=_reject_constant)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidArgument(f"The request body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidArgument("The request body must be a JSON object")
    try:
        return json_format.ParseDict(data, message_cls(), ignore_unknown_fields=True)
    except json_format.ParseError as exc:
        raise InvalidArgument(f"Invalid request body: {exc}") from None
