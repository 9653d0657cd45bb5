"""proto3 JSON mapping, the way the REST door speaks it.

``google.protobuf.json_format`` does the conversion. On top of it: every field is printed,
including defaults (``always_print_fields_with_no_presence``), and an unset ``optional``
field is printed as ``null`` — the legacy JSON API sent ``null`` for such values, and
proto3's JSON mapping would otherwise leave the key out.
"""

from __future__ import annotations

import json
import re
from typing import Any, TypeVar

from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from autointerp_grpc.descriptors import descriptor_of, message_type_of
from autointerp_grpc.errors import InvalidArgument

M = TypeVar("M", bound=Message)


def is_proto3_optional(field: FieldDescriptor) -> bool:
    """An ``optional`` scalar in proto3: it sits alone in protoc's synthetic ``_<name>`` oneof."""
    oneof = field.containing_oneof
    return oneof is not None and oneof.name == f"_{field.name}" and len(oneof.fields) == 1


_INT64_TYPES = frozenset(
    {
        FieldDescriptor.TYPE_INT64,
        FieldDescriptor.TYPE_UINT64,
        FieldDescriptor.TYPE_SINT64,
        FieldDescriptor.TYPE_FIXED64,
        FieldDescriptor.TYPE_SFIXED64,
    }
)


def _nullable_unset(field: FieldDescriptor) -> bool:
    if field.is_repeated:
        return False
    return is_proto3_optional(field) or (
        field.type == FieldDescriptor.TYPE_MESSAGE and field.containing_oneof is None
    )


def _normalize(message: Message, printed: dict[str, Any], nulls: bool = True) -> dict[str, Any]:
    """``printed`` (json_format's output for ``message``) with keys in proto field order,
    unset optional fields as null and 64-bit integers as numbers, recursively.

    json_format prints set fields before defaulted ones, so ``{"score": 0.0, ...}`` would come
    out as ``{"breakdown": ..., "score": 0.0}``; the legacy API printed schema order.
    """
    out: dict[str, Any] = {}
    for field in descriptor_of(message).fields:
        key = field.json_name
        if key not in printed:
            if nulls and _nullable_unset(field) and not message.HasField(field.name):
                out[key] = None
            continue
        value: Any = printed[key]  # JSON: any shape, by the field's type
        if field.type in _INT64_TYPES:
            # proto3 JSON prints 64-bit integers as strings; ours are counts: numbers.
            value = [int(v) for v in value] if field.is_repeated else int(value)
        is_message = field.type == FieldDescriptor.TYPE_MESSAGE
        if is_message and not message_type_of(field).GetOptions().map_entry:
            sub = getattr(message, field.name)
            if field.is_repeated:
                value = [
                    _normalize(m, v, nulls) if isinstance(v, dict) else v
                    for m, v in zip(sub, value, strict=True)
                ]
            elif (
                isinstance(value, dict) and message_type_of(field).file.package != "google.protobuf"
            ):
                value = _normalize(sub, value, nulls)
        out[key] = value
    return out


def to_json_dict(message: Message, *, nulls: bool = True) -> dict[str, Any]:
    """``message`` as its JSON object (camelCase keys in field order, 64-bit integers as
    numbers, every field present: unset optional and message fields as null, unless
    ``nulls`` is false, then left out)."""
    printed = json_format.MessageToDict(
        message,
        always_print_fields_with_no_presence=True,
        preserving_proto_field_name=False,
    )
    return _normalize(message, printed, nulls)


def _reject_constant(name: str) -> float:
    raise InvalidArgument(f"Invalid JSON: {name} is not a number JSON allows")


# The longest integer literal any of our integer fields can hold: uint64's 20 digits, int64's
# 19 and a sign.
_MAX_EXACT_INT_CHARS = 20


def _parse_int(literal: str) -> int | float:
    """A JSON integer literal: an int when an integer field could hold it, else its (correctly
    rounded) float — infinite beyond a double's range. So no literal reaches ``int()`` past
    Python's 4,300-digit limit, nor ``float(int)``'s OverflowError in json_format; a value out
    of its field's range is json_format's ParseError, which names the field."""
    if len(literal) <= _MAX_EXACT_INT_CHARS:
        return int(literal)
    return float(literal)


def _field(descriptor: Descriptor, key: str) -> FieldDescriptor | None:
    """The field a JSON key names (camelCase or snake_case), or None. Field names are ASCII:
    any other key is unknown (and upb's name maps raise SystemError on a lone surrogate)."""
    if not key.isascii():
        return None
    return descriptor.fields_by_camelcase_name.get(key) or descriptor.fields_by_name.get(key)


def drop_unknown_keys(data: dict[str, Any], descriptor: Descriptor) -> dict[str, Any]:
    """``data`` without the keys ``descriptor`` does not know (at any depth).

    The legacy server ignored unknown keys, so we do too; but json_format's own
    ``ignore_unknown_fields`` also silently drops unknown *enum values* (``"type": "FUZZY"``
    would become "unset"), so unknown keys are removed here and the parse stays strict.
    """
    out: dict[str, Any] = {}
    for key, value in data.items():
        field = _field(descriptor, key)
        if field is not None:
            out[key] = _drop_unknown_in_value(field, value)
    return out


def _drop_unknown_in_value(field: FieldDescriptor, value: Any) -> Any:
    nested = field.message_type
    if nested is None or nested.GetOptions().map_entry or nested.file.package == "google.protobuf":
        return value
    if field.is_repeated and isinstance(value, list):
        return [drop_unknown_keys(v, nested) if isinstance(v, dict) else v for v in value]
    if isinstance(value, dict):
        return drop_unknown_keys(value, nested)
    return value


def check_secret_fields(data: dict[str, Any], descriptor: Descriptor, path: str = "") -> None:
    """Secret fields (``debug_redact``) must be strings; checked here so that json_format,
    whose parse errors quote the offending value, never sees a malformed secret."""
    for key, value in data.items():
        field = _field(descriptor, key)
        if field is None:
            continue
        if field.GetOptions().debug_redact and not isinstance(value, str):
            raise InvalidArgument(f"{path}{field.json_name} must be a string")
        nested = field.message_type
        if nested is not None and isinstance(value, dict):
            check_secret_fields(value, nested, f"{path}{field.json_name}.")


# json_format's words for a number its field's type cannot hold (an infinite double, an
# integer past 64 bits).
_OUT_OF_RANGE_MARKS = (
    "Infinity or value too large",
    "out of range",
    "too large",
    "too small",
    "Couldn't parse integer: inf",
    "Couldn't parse integer: -inf",
)
_FAILED_FIELD_RE = re.compile(r"Failed to parse (\w+) field")
_AT_PATH_RE = re.compile(r" at \w+((?:\.\w+(?:\[\d+\])*)+)\.*$")


def parse_error_message(exc: json_format.ParseError, descriptor: Descriptor, what: str) -> str:
    """What was wrong with a body json_format could not parse — the field's path and the
    kind of problem, never the value itself (it could be a key sent in the wrong field)."""
    text = str(exc)
    field: FieldDescriptor | None = None
    names: list[str] = []
    current: Descriptor | None = descriptor
    for name in _FAILED_FIELD_RE.findall(text):
        field = _field(current, name) if current is not None else None
        if field is None:
            break
        names.append(field.json_name)
        current = field.message_type
    at = _AT_PATH_RE.search(text)
    where = at.group(1).lstrip(".") if at else ".".join(names)
    where = where or "a field"
    if field is not None and field.enum_type is not None:
        allowed = ", ".join(v.name for v in field.enum_type.values if v.number != 0)
        return f"{what}: {where} must be one of {allowed}"
    if "surrogate" in text:
        return f"{what}: {where} holds text that is not valid Unicode (an unpaired surrogate)"
    if any(mark in text for mark in _OUT_OF_RANGE_MARKS):
        return f"{what}: {where} is out of range (a number its type cannot hold)"
    return f"{what}: {where} has a value of the wrong type"


def parse_query(query: dict[str, str], message_cls: type[M]) -> M:
    """Top-level scalar fields of ``message_cls`` from query parameters (unknown ones ignored)."""
    try:
        known = drop_unknown_keys(dict(query), descriptor_of(message_cls))
        return json_format.ParseDict(known, message_cls())
    except json_format.ParseError as exc:
        message = parse_error_message(exc, descriptor_of(message_cls), "Invalid query parameters")
        raise InvalidArgument(message) from None


def parse_json_body(body: bytes, message_cls: type[M]) -> M:
    """Parse a request body into ``message_cls``; camelCase and snake_case keys both work,
    unknown keys are ignored (as the legacy server did)."""
    try:
        data = json.loads(body, parse_constant=_reject_constant, parse_int=_parse_int)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidArgument(f"The request body is not valid JSON: {exc}") from None
    except RecursionError:
        raise InvalidArgument("The request body is nested too deeply") from None
    if not isinstance(data, dict):
        raise InvalidArgument("The request body must be a JSON object")
    try:
        known = drop_unknown_keys(data, descriptor_of(message_cls))
        check_secret_fields(known, descriptor_of(message_cls))
        return json_format.ParseDict(known, message_cls())
    except json_format.ParseError as exc:
        message = parse_error_message(exc, descriptor_of(message_cls), "Invalid request body")
        raise InvalidArgument(message) from None
