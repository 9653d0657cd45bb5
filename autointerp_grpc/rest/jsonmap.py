"""proto3 JSON mapping, the way the REST door speaks it.

``google.protobuf.json_format`` defines the conversion. On top of it: every field is printed,
including defaults (``always_print_fields_with_no_presence``), and an unset ``optional``
field is printed as ``null`` — the legacy JSON API sent ``null`` for such values, and
proto3's JSON mapping would otherwise leave the key out.

The conversions run on :mod:`~autointerp_grpc.rest.fastjson`'s fast paths (orjson, messages
built and printed straight from their fields), which give exactly what the json_format
functions here give (:func:`json_format_parse`, :func:`json_format_dict`); a body or a
message they do not cover, and every body json_format would reject, goes the json_format way.
"""

from __future__ import annotations

import json
import re
from typing import Any, TypeVar

import orjson
from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from autointerp_grpc.descriptors import descriptor_of, message_type_of
from autointerp_grpc.errors import InvalidArgument
from autointerp_grpc.rest import fastjson
from autointerp_grpc.rest.fastjson import field_for_key as _field
from autointerp_grpc.rest.fastjson import is_proto3_optional, nullable_unset

__all__ = [
    "check_secret_fields",
    "drop_unknown_keys",
    "is_proto3_optional",
    "json_format_dict",
    "json_format_parse",
    "parse_error_message",
    "parse_json_body",
    "parse_query",
    "to_json_bytes",
    "to_json_dict",
]

M = TypeVar("M", bound=Message)


_INT64_TYPES = frozenset(
    {
        FieldDescriptor.TYPE_INT64,
        FieldDescriptor.TYPE_UINT64,
        FieldDescriptor.TYPE_SINT64,
        FieldDescriptor.TYPE_FIXED64,
        FieldDescriptor.TYPE_SFIXED64,
    }
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
            if nulls and nullable_unset(field) and not message.HasField(field.name):
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
    printer = fastjson.dict_printer(descriptor_of(message), nulls)
    return json_format_dict(message, nulls=nulls) if printer is None else printer(message)


def to_json_bytes(message: Message) -> bytes:
    """``message`` as the bytes the REST door sends: :func:`to_json_dict` as compact JSON,
    non-ASCII characters as they are (what Starlette's ``JSONResponse`` sends)."""
    data = fastjson.to_json_bytes(message)
    if data is not None:
        return data
    text = json.dumps(
        json_format_dict(message), ensure_ascii=False, allow_nan=False, separators=(",", ":")
    )
    return text.encode()


def json_format_dict(message: Message, *, nulls: bool = True) -> dict[str, Any]:
    """:func:`to_json_dict` by json_format: the definition the fast printer is held to, and
    the printer of the message types it does not cover."""
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
    message = _parse_plain(body, message_cls)
    return json_format_parse(body, message_cls) if message is None else message


def _parse_plain(body: bytes, message_cls: type[M]) -> M | None:
    """:func:`json_format_parse`'s message by the fast path (orjson; records built directly),
    or None for a body outside its plain shape. It never fails: any failure at all means
    json_format parses the whole body again, so every rejection, and its message, is
    json_format_parse's."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if type(data) is not dict:
        return None
    descriptor = descriptor_of(message_cls)
    try:
        rest, attach = fastjson.split_records(data, descriptor)
        known = drop_unknown_keys(rest, descriptor)
        check_secret_fields(known, descriptor)
        message = json_format.ParseDict(known, message_cls())
        attach(message)
    except Exception:  # json_format_parse reports every failure, as it did before
        return None
    return message


def json_format_parse(body: bytes, message_cls: type[M]) -> M:
    """:func:`parse_json_body` by ``json.loads`` and json_format: the definition the fast path
    is held to, and the parser of every body outside its plain shape."""
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
