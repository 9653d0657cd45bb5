"""The REST door's fast JSON paths, each giving exactly what the json_format path gives.

``google.protobuf.json_format`` walks every value in pure Python: a request of 1,000
activation records took 180 ms to parse (the same message from gRPC bytes: under 1 ms) and
a 1,000-item breakdown 120 ms to print before ``json.dumps`` ran. The two paths here do the
same work from plans compiled once per message type:

* Decoding (:func:`split_records`): the body is parsed by orjson and the records (messages
  made only of repeated strings, repeated doubles and int32s: ``Activation``,
  ``AttentionRecord``) are taken out of it and built directly into the message; json_format
  parses what is left, which is small. Only the plain shape is taken: a record field that is
  not a list of records, a record that is not an object, a field given under both of its
  names, a value of another type, nesting deeper than :data:`MAX_FAST_DEPTH`: any of these,
  and ``jsonmap`` parses the whole body the json_format way instead, so every rejection
  (and its message) comes from the code that made it before.
* Encoding (:func:`dict_printer`): the message's JSON object straight from its fields, with
  json_format's rules (camelCase names, every field printed, non-finite doubles as strings,
  enums by name) and the REST door's (proto field order, 64-bit integers as numbers, unset
  optional fields as ``null``). For the bytes sent, doubles orjson would print differently
  from ``json.dumps`` (``repr``: ``1e-05``, where orjson prints ``0.00001``; only numbers
  under 1e-4 differ) go in as ``orjson.Fragment`` of their ``repr``.

A message type the plans do not cover (bytes, 32-bit floats, well-known types, maps of
messages) gets no plan, and ``jsonmap`` uses json_format for it. The differential tests
(tests/unit/test_fast_codec.py) hold both paths to json_format's results on generated
bodies and messages.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable
from typing import Any

import orjson
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from autointerp_grpc.descriptors import descriptor_of

# ---- fields by JSON key, presence -----------------------------------------------------------


def field_for_key(descriptor: Descriptor, key: str) -> FieldDescriptor | None:
    """The field a JSON key names (camelCase or snake_case), or None. Field names are ASCII:
    any other key is unknown (and upb's name maps raise SystemError on a lone surrogate)."""
    if not key.isascii():
        return None
    return descriptor.fields_by_camelcase_name.get(key) or descriptor.fields_by_name.get(key)


def is_proto3_optional(field: FieldDescriptor) -> bool:
    """An ``optional`` scalar in proto3: it sits alone in protoc's synthetic ``_<name>`` oneof."""
    oneof = field.containing_oneof
    return oneof is not None and oneof.name == f"_{field.name}" and len(oneof.fields) == 1


def nullable_unset(field: FieldDescriptor) -> bool:
    """Whether an unset ``field`` prints as ``null``: a proto3 ``optional`` scalar or a
    message field outside any oneof."""
    if field.is_repeated:
        return False
    return is_proto3_optional(field) or (
        field.type == FieldDescriptor.TYPE_MESSAGE and field.containing_oneof is None
    )


def _is_map(field: FieldDescriptor) -> bool:
    return field.message_type is not None and field.message_type.GetOptions().map_entry


# ---- decoding: records built directly ------------------------------------------------------

MAX_FAST_DEPTH = 64
"""Bodies nested deeper than this take the json_format path: ``json.loads`` refuses about
1,000 levels as nested too deeply where orjson reads up to 1,024 (our messages need 6)."""

_STRINGS, _DOUBLES, _INT32 = "strings", "doubles", "int32"


def _record_kind(field: FieldDescriptor) -> str | None:
    """How a record's field is taken from JSON, or None when it is no record field."""
    if field.containing_oneof is not None or field.GetOptions().debug_redact:
        return None
    if field.json_name != field.camelcase_name:
        return None
    if field.is_repeated:
        if field.type == FieldDescriptor.TYPE_STRING:
            return _STRINGS
        if field.type == FieldDescriptor.TYPE_DOUBLE:
            return _DOUBLES
        return None
    return _INT32 if field.type == FieldDescriptor.TYPE_INT32 else None


@functools.cache
def _record_fields(descriptor: Descriptor) -> dict[str, tuple[str, str]] | None:
    """A record type's fields by JSON key (both names): (field name, kind); None when the type
    holds anything else."""
    keys: dict[str, tuple[str, str]] = {}
    for field in descriptor.fields:
        kind = _record_kind(field)
        if kind is None:
            return None
        keys[field.camelcase_name] = keys[field.name] = (field.name, kind)
    return keys or None


class _DecodePlan:
    """Which keys of a message's JSON object hold records (repeated record messages) and
    which hold lists of messages that hold records (``features``)."""

    __slots__ = ("containers", "records")

    def __init__(
        self,
        records: dict[str, tuple[str, dict[str, tuple[str, str]]]],
        containers: dict[str, tuple[str, _DecodePlan]],
    ) -> None:
        self.records = records
        self.containers = containers


@functools.cache
def _decode_plan(descriptor: Descriptor) -> _DecodePlan | None:
    """The plan of ``descriptor``, or None when no field (at any depth, through repeated
    message fields) holds records."""
    records: dict[str, tuple[str, dict[str, tuple[str, str]]]] = {}
    containers: dict[str, tuple[str, _DecodePlan]] = {}
    for field in descriptor.fields:
        nested = field.message_type
        if not field.is_repeated or nested is None or _is_map(field):
            continue
        if field.containing_oneof is not None or field.json_name != field.camelcase_name:
            continue
        record = _record_fields(nested)
        if record is not None:
            records[field.camelcase_name] = records[field.name] = (field.name, record)
            continue
        plan = _decode_plan(nested) if nested is not descriptor else None
        if plan is not None:
            containers[field.camelcase_name] = containers[field.name] = (field.name, plan)
    if not records and not containers:
        return None
    return _DecodePlan(records, containers)


class _Unusual(ValueError):
    """A body outside the fast path's plain shape: the json_format path parses it."""


Attach = Callable[[Message], None]


def _shallow(value: Any, budget: int) -> None:
    """Raise :class:`_Unusual` when ``value`` nests more than ``budget`` levels."""
    if type(value) is dict:
        if budget <= 0:
            raise _Unusual
        for item in value.values():
            if type(item) is dict or type(item) is list:
                _shallow(item, budget - 1)
    elif type(value) is list:
        if budget <= 0:
            raise _Unusual
        for item in value:
            if type(item) is dict or type(item) is list:
                _shallow(item, budget - 1)


def _record_kwargs(item: Any, fields: dict[str, tuple[str, str]], budget: int) -> dict[str, Any]:
    """One record's fields as keyword arguments of its message's constructor. The values go
    to upb as they are: of what orjson makes, it takes exactly what json_format takes, with
    the same results (str for strings; int, float and bool for doubles; an int in range, not
    a bool, for int32), and raises TypeError or ValueError on the rest (where json_format
    also takes "1.5" for a double or 1.0 for an int32), which sends the body the json_format
    way."""
    if type(item) is not dict:
        raise _Unusual
    kwargs: dict[str, Any] = {}
    for key, value in item.items():
        spec = fields.get(key)
        if spec is None:
            if type(value) is dict or type(value) is list:
                _shallow(value, budget - 1)  # an unknown key, dropped: json.loads still nests it
            continue
        name, kind = spec
        if name in kwargs:
            raise _Unusual  # both names of one field: left to json_format
        if kind != _INT32 and type(value) is not list:
            raise _Unusual
        kwargs[name] = value
    return kwargs


def _split(data: dict[str, Any], plan: _DecodePlan, budget: int) -> tuple[dict[str, Any], Attach]:
    rest: dict[str, Any] = {}
    taken: list[tuple[str, list[dict[str, Any]]]] = []
    nested: list[tuple[str, list[Attach]]] = []
    seen: set[str] = set()
    for key, value in data.items():
        record = plan.records.get(key)
        container = plan.containers.get(key)
        if record is None and container is None:
            rest[key] = value
            continue
        if type(value) is not list:
            raise _Unusual
        if record is not None:
            name, fields = record
            taken.append((name, [_record_kwargs(item, fields, budget - 1) for item in value]))
        else:
            assert container is not None
            name, item_plan = container
            items: list[dict[str, Any]] = []
            attaches: list[Attach] = []
            for item in value:
                if type(item) is not dict:
                    raise _Unusual
                item_rest, attach_item = _split(item, item_plan, budget - 2)
                items.append(item_rest)
                attaches.append(attach_item)
            rest[key] = items
            nested.append((name, attaches))
        if name in seen:
            raise _Unusual  # both names of one field: left to json_format
        seen.add(name)

    def attach(message: Message) -> None:
        for name, records in taken:
            add = getattr(message, name).add
            for kwargs in records:
                add(**kwargs)
        for name, attaches in nested:
            members = getattr(message, name)
            if len(members) != len(attaches):
                raise _Unusual
            for member, attach_member in zip(members, attaches, strict=True):
                attach_member(member)

    return rest, attach


def split_records(data: dict[str, Any], descriptor: Descriptor) -> tuple[dict[str, Any], Attach]:
    """``data`` (orjson's parse of a request body) without its records, and a function that
    adds them, built directly, to the message json_format parses from the rest. Raises
    :class:`ValueError` when the body is not in the plain shape (see the module's docstring);
    the function it returns raises TypeError or ValueError when upb refuses a value."""
    plan = _decode_plan(descriptor)
    if plan is None:
        _shallow(data, MAX_FAST_DEPTH)
        return data, _attach_nothing
    rest, attach = _split(data, plan, MAX_FAST_DEPTH)
    _shallow(rest, MAX_FAST_DEPTH)
    return rest, attach


def _attach_nothing(message: Message) -> None:
    del message


# ---- encoding: JSON objects straight from the fields ---------------------------------------

_OMIT = object()

# The smallest magnitude whose orjson text is json.dumps's (repr's) text; below it orjson
# prints 1e-05 as 0.00001 and 1e-07 as 1e-7. Zero prints the same in both.
_SAME_TEXT_FROM = 1e-4
_MAX_DOUBLE = 1.7976931348623157e308


def _nonfinite(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    return "Infinity" if value > 0 else "-Infinity"


def _double(value: float) -> Any:
    """A double as json_format prints it: non-finite ones as strings."""
    return value if math.isfinite(value) else _nonfinite(value)


def _double_raw(value: float) -> Any:
    """A double for orjson: itself where orjson prints it as ``repr`` does, else a fragment
    of its ``repr`` (or json_format's string for a non-finite one)."""
    magnitude = abs(value)
    if magnitude == 0.0 or _SAME_TEXT_FROM <= magnitude <= _MAX_DOUBLE:
        return value
    if not math.isfinite(value):
        return _nonfinite(value)
    return orjson.Fragment(repr(value))


def _doubles(values: Any) -> list[Any]:
    items = values[:]  # a list; upb slices faster than it iterates
    if math.isfinite(sum(items)):  # no NaN or infinity (or a sum past the largest double)
        return items
    return [_double(v) for v in items]


def _doubles_raw(values: Any) -> Any:
    items = values[:]
    if not items:
        return items
    text = orjson.dumps(items)
    # orjson prints NaN and infinities as null and numbers under 1e-4 as 0.0000... or d.de-N:
    # those lists are printed one number at a time.
    if b"null" in text or b"e-" in text or b"0.0000" in text:
        return [_double_raw(v) for v in items]
    return orjson.Fragment(text)


Getter = Callable[[Message], Any]


class _Unsupported(Exception):
    """A field the printer plans do not cover; the message is printed by json_format."""


def _scalar_converter(field: FieldDescriptor, raw: bool) -> Callable[[Any], Any] | None:
    """How one value of a scalar field is printed; None when it is printed as it is."""
    kind = field.type
    if kind == FieldDescriptor.TYPE_DOUBLE:
        return _double_raw if raw else _double
    if kind in (FieldDescriptor.TYPE_FLOAT, FieldDescriptor.TYPE_BYTES, FieldDescriptor.TYPE_GROUP):
        raise _Unsupported
    if kind == FieldDescriptor.TYPE_ENUM:
        enum_type = field.enum_type
        assert enum_type is not None
        names = {value.number: value.name for value in enum_type.values}
        return lambda number: names.get(number, number)
    return None


_INT64_TYPES = frozenset(
    {
        FieldDescriptor.TYPE_INT64,
        FieldDescriptor.TYPE_UINT64,
        FieldDescriptor.TYPE_SINT64,
        FieldDescriptor.TYPE_FIXED64,
        FieldDescriptor.TYPE_SFIXED64,
    }
)


def _map_getter(field: FieldDescriptor, raw: bool) -> Getter:
    """A map with string keys and scalar values (``extra_metrics``). Other maps are left to
    json_format, which prints their values unnormalised (64-bit integers as strings,
    messages in its own key order)."""
    entry = field.message_type
    assert entry is not None
    key_field, value_field = entry.fields_by_name["key"], entry.fields_by_name["value"]
    if key_field.type != FieldDescriptor.TYPE_STRING:
        raise _Unsupported
    if value_field.type == FieldDescriptor.TYPE_MESSAGE or value_field.type in _INT64_TYPES:
        raise _Unsupported
    convert = _scalar_converter(value_field, raw)
    name = field.name
    if convert is None:
        return lambda message: dict(getattr(message, name))

    def get(message: Message) -> Any:
        entries = getattr(message, name)
        return {key: convert(entries[key]) for key in entries}

    return get


def _message_getter(field: FieldDescriptor, nulls: bool, raw: bool) -> Getter:
    nested = field.message_type
    assert nested is not None
    if nested.file.package == "google.protobuf":
        raise _Unsupported  # well-known types print in their own JSON forms
    name = field.name
    # The nested type's printer is looked up on first use: a type may contain itself.
    printers: list[Printer] = []

    def nested_printer() -> Printer:
        if not printers:
            printers.append(_printer(nested, nulls, raw))
        return printers[0]

    if field.is_repeated:

        def get_all(message: Message) -> Any:
            printer = printers[0] if printers else nested_printer()
            return [printer(item) for item in getattr(message, name)]

        return get_all
    unset = None if nulls and nullable_unset(field) else _OMIT

    def get_one(message: Message) -> Any:
        if not message.HasField(name):
            return unset
        printer = printers[0] if printers else nested_printer()
        return printer(getattr(message, name))

    return get_one


def _scalar_getter(field: FieldDescriptor, nulls: bool, raw: bool) -> Getter:
    name = field.name
    convert = _scalar_converter(field, raw)
    if field.is_repeated:
        if field.type == FieldDescriptor.TYPE_DOUBLE:
            many = _doubles_raw if raw else _doubles
            return lambda message: many(getattr(message, name))
        if convert is None:
            return lambda message: getattr(message, name)[:]
        return lambda message: [convert(v) for v in getattr(message, name)]
    if field.has_presence:
        unset = None if nulls and nullable_unset(field) else _OMIT

        def get_present(message: Message) -> Any:
            if not message.HasField(name):
                return unset
            value = getattr(message, name)
            return value if convert is None else convert(value)

        return get_present
    if convert is None:
        return lambda message: getattr(message, name)
    return lambda message: convert(getattr(message, name))


def _getter(field: FieldDescriptor, nulls: bool, raw: bool) -> Getter:
    if _is_map(field):
        return _map_getter(field, raw)
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        return _message_getter(field, nulls, raw)
    return _scalar_getter(field, nulls, raw)


Printer = Callable[[Message], dict[str, Any]]


@functools.cache
def _printer(descriptor: Descriptor, nulls: bool, raw: bool) -> Printer:
    getters = [(field.json_name, _getter(field, nulls, raw)) for field in descriptor.fields]

    def print_message(message: Message) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, get in getters:
            value = get(message)
            if value is not _OMIT:
                out[key] = value
        return out

    return print_message


@functools.cache
def _covered(descriptor: Descriptor) -> bool:
    """Whether the plans cover ``descriptor`` and every message type under it."""
    seen: set[str] = set()
    pending = [descriptor]
    while pending:
        current = pending.pop()
        if current.full_name in seen:
            continue
        seen.add(current.full_name)
        for field in current.fields:
            try:
                _getter(field, True, True)
            except _Unsupported:
                return False
            if field.message_type is not None and not _is_map(field):
                pending.append(field.message_type)
    return True


def dict_printer(descriptor: Descriptor, nulls: bool, raw: bool = False) -> Printer | None:
    """A function printing a message of type ``descriptor`` as ``jsonmap.to_json_dict`` does,
    or None when its type (or one under it) is not covered. With ``raw``, doubles are ready
    for orjson (see :func:`to_json_bytes`)."""
    if not _covered(descriptor):
        return None
    return _printer(descriptor, nulls, raw)


# orjson's text must be json.dumps's for the numbers and strings passed to it as they are;
# checked once, so an orjson that prints them otherwise only costs the fast encoder.
_PROBE_NUMBERS = (
    0.0,
    -0.0,
    1e-4,
    -1.5e-4,
    0.1 + 0.2,
    1 / 3,
    123.456,
    1e15,
    9999999999999998.0,
    1e16,
    -1.2345678901234567e16,
    1e22,
    2.0**53 + 2,
    1.5e300,
    _MAX_DOUBLE,
    0,
    -(2**63),
    2**64 - 1,
)
_PROBE_TEXT = "".join(chr(c) for c in range(0x80)) + "\u2028\u2029\u00e9\ufeff\U0001f600"


def _orjson_prints_like_json() -> bool:
    probe: dict[str, Any] = {_PROBE_TEXT: [_PROBE_TEXT, *_PROBE_NUMBERS, True, None, {}]}
    expected = json.dumps(probe, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return orjson.dumps(probe) == expected.encode()


ORJSON_PRINTS_LIKE_JSON = _orjson_prints_like_json()


def to_json_bytes(message: Message, nulls: bool = True) -> bytes | None:
    """``message``'s JSON object as bytes, exactly ``json.dumps(to_json_dict(message),
    ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()``; None when its type
    is not covered."""
    if not ORJSON_PRINTS_LIKE_JSON:
        printer = dict_printer(descriptor_of(message), nulls)
        if printer is None:
            return None
        text = json.dumps(
            printer(message), ensure_ascii=False, allow_nan=False, separators=(",", ":")
        )
        return text.encode()
    printer = dict_printer(descriptor_of(message), nulls, raw=True)
    return None if printer is None else orjson.dumps(printer(message))
