"""The REST door's fast JSON paths (autointerp_grpc/rest/fastjson.py) against json_format's.

Differential: for generated request bodies, well-formed and not, ``parse_json_body`` gives the
message (same bytes) or the error (same type, same words) that ``json_format_parse`` gives;
for generated messages of every type in the proto, ``to_json_dict`` and ``to_json_bytes``
give what json_format and ``json.dumps`` give. Then the fast paths are shown to be taken and
to be fast, and big bodies to be parsed on the service's own worker pool.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import struct
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
import pytest
from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from autointerp_grpc.config import Settings
from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2 as pb
from autointerp_grpc.rest import fastjson
from autointerp_grpc.rest.jsonmap import (
    _parse_plain,
    json_format_dict,
    json_format_parse,
    parse_json_body,
    to_json_bytes,
    to_json_dict,
)

MESSAGE_TYPES = sorted(pb.DESCRIPTOR.message_types_by_name.values(), key=lambda d: d.name)
# Every RPC's request type (each has a REST route).
REQUEST_TYPES = [m.input_type for m in pb.DESCRIPTOR.services_by_name["AutoInterp"].methods]


def _cls(descriptor: Descriptor) -> type[Message]:
    return getattr(pb, descriptor.name)


# ---- values -----------------------------------------------------------------------------

# Text with what JSON escapes or encodes specially: quotes, backslashes, control characters,
# non-ASCII, emoji, the line separators JavaScript cares about, a BOM.
_TEXT = st.text(
    alphabet=st.one_of(
        st.sampled_from(['"', "\\", "\n", "\t", "\x00", "\x1f", "\x7f", "é", "\u2028", "\ufeff"]),
        st.sampled_from(["😀", "猫", "\u200d", "a", " ", "/"]),
        st.characters(exclude_categories=["Cs"]),
    ),
    max_size=6,
)
_DOUBLES = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.floats(width=32, allow_nan=False, allow_infinity=False),  # float32 values in doubles
    st.sampled_from([1e-05, 1e16, -0.0, 0.1 + 0.2, 1e-4, 9.99e-5, 5e-324, 1.7976931348623157e308]),
    st.integers(min_value=-(2**70), max_value=2**70),
)
_ODD = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**66), max_value=2**66),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(["1.5", "NaN", "Infinity", "-Infinity", "12", "nan", "FUZZ", ""]),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.sampled_from(["a", "tokens", "values"]), st.integers(), max_size=2),
)


# A one-in-sixteen choice: not 0 or 15, which hypothesis draws far more often than the rest.
_RARE = 7


def _scalar(field: FieldDescriptor) -> st.SearchStrategy[Any]:
    kind = field.type
    if kind == FieldDescriptor.TYPE_STRING:
        return _TEXT
    if kind == FieldDescriptor.TYPE_DOUBLE:
        return _DOUBLES
    if kind == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if kind == FieldDescriptor.TYPE_ENUM:
        assert field.enum_type is not None
        return st.sampled_from([v.name for v in field.enum_type.values] + [1, 7])
    if kind in (FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_SINT32):
        return st.integers(min_value=-(2**31), max_value=2**31 - 1)
    return st.integers(min_value=0, max_value=2**32 - 1)


def _json_value(field: FieldDescriptor, depth: int) -> st.SearchStrategy[Any]:
    """A JSON value for ``field``: usually one json_format takes, sometimes not."""
    nested = field.message_type
    if nested is not None and nested.GetOptions().map_entry:
        good = st.dictionaries(_TEXT, _scalar(nested.fields_by_name["value"]), max_size=3)
    elif nested is not None:
        one = _json_object(nested, depth + 1) if depth < 4 else st.just({})
        good = st.lists(one, max_size=3) if field.is_repeated else one
    elif field.is_repeated:
        size = 40 if depth >= 1 else 4  # a record's tokens and values: longer lists
        good = st.lists(_scalar(field), max_size=size)
    else:
        good = _scalar(field)
    bad = _ODD
    if field.is_repeated and nested is None:
        # One bad element in an otherwise good list.
        bad = st.one_of(_ODD, st.lists(st.one_of(_scalar(field), _ODD), min_size=1, max_size=4))
    # Mostly good values: a body with one bad field among many is still worth parsing.
    return st.integers(0, 15).flatmap(lambda pick: bad if pick == _RARE else good)


@st.composite
def _json_object_draw(draw: st.DrawFn, descriptor: Descriptor, depth: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    oneofs_set: set[str] = set()
    for field in descriptor.fields:
        if draw(st.integers(0, 2)) == 0:
            continue
        oneof = field.containing_oneof
        if oneof is not None:  # usually one member of a oneof (two are json_format's error)
            if oneof.name in oneofs_set and draw(st.integers(0, 15)) != _RARE:
                continue
            oneofs_set.add(oneof.name)
        names = [field.json_name, field.name]
        key = draw(st.sampled_from(names))
        out[key] = draw(_json_value(field, depth))
        if field.json_name != field.name and draw(st.integers(0, 15)) == _RARE:
            out[field.name if key == field.json_name else field.json_name] = out[key]
    if draw(st.integers(0, 5)) == 0:
        out[draw(st.sampled_from(["unknown", "Tokens", "x\u00e9", "apiKey"]))] = draw(_ODD)
    keys = list(out)
    draw(st.randoms()).shuffle(keys)
    return {k: out[k] for k in keys}


def _json_object(descriptor: Descriptor, depth: int = 0) -> st.SearchStrategy[dict[str, Any]]:
    return _json_object_draw(descriptor, depth)


_MUTATIONS: list[Callable[[str], str]] = [
    lambda t: t.replace("0.0", "NaN", 1),
    lambda t: t.replace("1", "Infinity", 1),
    lambda t: t.replace('"', '"\\ud800', 1),
    lambda t: "\ufeff" + t,
    lambda t: t.replace("1", "1" * 25, 1),
    lambda t: '{"deep":' + "[" * 70 + "]" * 70 + "," + t[1:],
    lambda t: '{"deep":' + "[" * 1010 + "]" * 1010 + "," + t[1:],  # orjson's limit is 1024
    lambda t: '{"deep":' + "[" * 1100 + "]" * 1100 + "," + t[1:],
    lambda t: t.replace("e", "E", 1),
    lambda t: t[:-1],
    lambda t: t.replace(",", ",,", 1),
]
STYLES = 3 + len(_MUTATIONS)


def _text(data: Any, style: int) -> bytes:
    """``data`` as a request body, in one of several spellings a client may send (some
    no longer JSON, or JSON json_format refuses)."""
    if style == 0:
        return json.dumps(data).encode()  # ASCII, with \\u escapes
    if style == 1:
        return json.dumps(data, ensure_ascii=False, indent=1).encode("utf-8", "surrogatepass")
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    if style >= 3 and len(text) > 2:
        text = _MUTATIONS[style - 3](text)
    return text.encode("utf-8", "surrogatepass")


def _outcome(parse: Callable[[bytes, type[Message]], Message], body: bytes, cls: type[Message]):
    try:
        message = parse(body, cls)
    except Exception as exc:  # the comparison is of whatever it raises
        return ("error", type(exc).__name__, str(exc))
    return ("ok", message.SerializeToString(deterministic=True))


@pytest.mark.parametrize("descriptor", REQUEST_TYPES, ids=lambda d: d.name)
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_parse_gives_what_json_format_gives(descriptor: Descriptor, data: st.DataObject) -> None:
    cls = _cls(descriptor)
    body_data = data.draw(_json_object(descriptor), label="body")
    # Half the bodies spelled plainly, half mutated.
    plain = data.draw(st.booleans(), label="plain")
    style = data.draw(st.integers(0, 2) if plain else st.integers(3, STYLES - 1), label="style")
    body = _text(body_data, style)
    assert _outcome(parse_json_body, body, cls) == _outcome(json_format_parse, body, cls)


# Records in the shapes a client sends them: the fast path's own ground.
_RECORD = st.fixed_dictionaries(
    {"tokens": st.lists(_TEXT, max_size=30), "values": st.lists(_DOUBLES, max_size=30)},
    optional={"unknown": _ODD, "Values": _ODD},
)
_ATTENTION = st.fixed_dictionaries(
    {
        "tokens": st.lists(_TEXT, max_size=8),
        "weights": st.lists(_DOUBLES, max_size=8),
        "fromIndex": st.integers(min_value=-(2**32), max_value=2**32),
    }
)


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    records=st.lists(_RECORD, max_size=6),
    attention=st.lists(_ATTENTION, max_size=3),
    features=st.lists(st.lists(_RECORD, max_size=3), max_size=3),
    style=st.integers(0, 2),
)
def test_records_parse_as_json_format_parses_them(
    records: list[dict[str, Any]],
    attention: list[dict[str, Any]],
    features: list[list[dict[str, Any]]],
    style: int,
) -> None:
    bodies = [
        (pb.ExplainDefaultRequest, {"activations": records, "model": "m", "openrouterKey": "k"}),
        (
            pb.ExplainRequest,
            {
                "method": "contrastive",
                "activations": records,
                "non_activating": records[::-1],
                "attention": attention,
            },
        ),
        (
            pb.ExplainAndScoreRequest,
            {
                "features": [{"id": str(i), "activations": f} for i, f in enumerate(features)],
                "llm": {"model": "m"},
            },
        ),
    ]
    for cls, body_data in bodies:
        body = _text(body_data, style)
        assert _outcome(parse_json_body, body, cls) == _outcome(json_format_parse, body, cls)


@pytest.mark.parametrize(
    "body",
    [
        b'{"activations": [{"tokens": ["a"], "values": [1e400]}]}',
        b'{"activations": [{"tokens": ["a"], "values": [NaN]}]}',
        b'{"activations": [{"tokens": ["a\\ud800"], "values": [1]}]}',
        b'{"activations": [{"tokens": ["a"], "values": ["1.5"]}]}',
        b'{"activations": [{"tokens": ["a"], "values": [null]}]}',
        b'{"activations": [{"tokens": [1], "values": [1]}]}',
        b'{"activations": [{"tokens": null, "values": [1]}]}',
        b'{"activations": {"tokens": ["a"]}}',
        b'{"activations": [["a"]]}',
        b'{"activations": [{"tokens": ["a"], "values": [123456789012345678901234567890]}]}',
        b'{"activations": [{"tokens": ["a"], "values": [18446744073709551616]}]}',
        b'{"activations": [], "model": 12}',
        b'{"activations": [], "openrouterKey": 12}',
        b'{"activations": [], "unknown": ' + b"[" * 900 + b"]" * 900 + b"}",
        b'\xef\xbb\xbf{"activations": []}',
        b'{"activations": [], "model": "m", "model": 1}',
        b"[]",
        b'"x"',
        b"",
    ],
)
def test_bodies_off_the_plain_shape_parse_as_before(body: bytes) -> None:
    cls = pb.ExplainDefaultRequest
    assert _outcome(parse_json_body, body, cls) == _outcome(json_format_parse, body, cls)


def test_a_record_field_under_both_names_parses_as_before() -> None:
    body = b'{"attention": [{"fromIndex": 1, "from_index": 2, "tokens": ["a"], "weights": [1]}]}'
    outcome = _outcome(parse_json_body, body, pb.ExplainRequest)
    assert outcome == _outcome(json_format_parse, body, pb.ExplainRequest)


# ---- encoding ---------------------------------------------------------------------------

_ANY_DOUBLE = st.one_of(
    _DOUBLES.filter(lambda v: not isinstance(v, int)),
    st.sampled_from([math.nan, math.inf, -math.inf, 1e-9, 3.2e-07, 1e-10, 1e21, 2.5e-5]),
)


def _set_scalar(draw: st.DrawFn, field: FieldDescriptor) -> Any:
    kind = field.type
    if kind == FieldDescriptor.TYPE_DOUBLE:
        return draw(_ANY_DOUBLE)
    if kind == FieldDescriptor.TYPE_ENUM:
        assert field.enum_type is not None
        return draw(st.sampled_from([v.number for v in field.enum_type.values] + [9]))
    if kind == FieldDescriptor.TYPE_STRING:
        return draw(_TEXT)
    if kind == FieldDescriptor.TYPE_BOOL:
        return draw(st.booleans())
    if kind in (FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_SINT64):
        return draw(st.integers(min_value=-(2**63), max_value=2**63 - 1))
    if kind == FieldDescriptor.TYPE_UINT64:
        return draw(st.integers(min_value=0, max_value=2**64 - 1))
    if kind == FieldDescriptor.TYPE_UINT32:
        return draw(st.integers(min_value=0, max_value=2**32 - 1))
    return draw(st.integers(min_value=-(2**31), max_value=2**31 - 1))


def _fill(draw: st.DrawFn, message: Message, depth: int) -> None:
    for field in message.DESCRIPTOR.fields:
        if draw(st.integers(0, 2)) == 0:
            continue
        nested = field.message_type
        target = getattr(message, field.name)
        if nested is not None and nested.GetOptions().map_entry:
            for _ in range(draw(st.integers(0, 3))):
                key = _set_scalar(draw, nested.fields_by_name["key"])
                target[key] = _set_scalar(draw, nested.fields_by_name["value"])
        elif nested is not None and field.is_repeated:
            for _ in range(draw(st.integers(0, 2 if depth < 3 else 0))):
                _fill(draw, target.add(), depth + 1)
        elif nested is not None:
            if depth < 3:
                _fill(draw, target, depth + 1)
            target.SetInParent()
        elif field.is_repeated:
            target.extend(_set_scalar(draw, field) for _ in range(draw(st.integers(0, 6))))
        else:
            setattr(message, field.name, _set_scalar(draw, field))


@st.composite
def _message(draw: st.DrawFn, descriptor: Descriptor) -> Message:
    message = _cls(descriptor)()
    _fill(draw, message, 0)
    return message


def _reference_bytes(message: Message) -> bytes:
    data = json_format_dict(message)
    return json.dumps(data, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()


@pytest.mark.parametrize("descriptor", MESSAGE_TYPES, ids=lambda d: d.name)
@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_printing_gives_what_json_format_gives(descriptor: Descriptor, data: st.DataObject) -> None:
    message = data.draw(_message(descriptor), label="message")
    assert to_json_bytes(message) == _reference_bytes(message)
    assert to_json_dict(message) == json_format_dict(message)
    assert to_json_dict(message, nulls=False) == json_format_dict(message, nulls=False)


def test_every_message_type_has_a_fast_printer() -> None:
    uncovered = [d.name for d in MESSAGE_TYPES if fastjson.dict_printer(d, True) is None]
    assert uncovered == []
    assert fastjson.ORJSON_PRINTS_LIKE_JSON


def test_an_orjson_that_prints_otherwise_costs_only_speed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Should an orjson release print numbers or text unlike json.dumps (checked once at
    import), the fast printer's object goes through json.dumps instead: same bytes."""
    monkeypatch.setattr(fastjson, "ORJSON_PRINTS_LIKE_JSON", False)
    response = pb.ScoreFuzzDetectionResponse(score=1e-05)
    response.breakdown.add(str_tokens=["caf\u00e9", "\x00"], activations=[1e-05, 1e16, -0.0])
    assert to_json_bytes(response) == _reference_bytes(response)


def test_orjson_prints_doubles_from_1e_4_up_as_repr() -> None:
    """The rule the raw printer rests on: orjson's text of a double is ``repr``'s for zero
    and every magnitude from 1e-4 up (and only numbers below it differ)."""
    rng = random.Random(20_19)
    values = [
        struct.unpack("<d", rng.getrandbits(64).to_bytes(8, "little"))[0] for _ in range(50_000)
    ]
    values += [rng.uniform(-1, 1) * 10 ** rng.uniform(-5, 22) for _ in range(50_000)]
    values += [m * 10.0**e for e in range(-5, 309) for m in (1.0, -1.0, 9.999999999999999, 1.5)]
    values += [math.nextafter(1e-4, 0), 1e-4, math.nextafter(1e-4, 1), 0.0, -0.0]
    for value in values:
        if not math.isfinite(value):
            continue
        same = orjson.dumps(value) == repr(value).encode()
        expected = value == 0 or abs(value) >= 1e-4
        assert same or not expected, value


# ---- the fast paths are taken, and are fast ----------------------------------------------


def _records(n: int, width: int = 64) -> list[dict[str, Any]]:
    return [
        {
            "tokens": [f" tok{i}_{j}é" for j in range(width)],
            "values": [((i * 7 + j) % 11) / 10 for j in range(width)],
        }
        for i in range(n)
    ]


def test_plain_bodies_take_the_fast_path() -> None:
    records = _records(3, 5)
    bodies = [
        (pb.ExplainDefaultRequest, {"activations": records, "openrouterKey": "k", "model": "m"}),
        (
            pb.ScoreRequest,
            {
                "method": "detection",
                "explanation": "cats",
                "activations": records,
                "llm": {"model": "m", "apiKey": "k"},
                "detectionParams": {"nExamplesPerPrompt": 5},
            },
        ),
        (
            pb.ExplainAndScoreRequest,
            {
                "features": [{"id": "a", "activations": records, "nonActivating": records}],
                "explainer": {"method": "default"},
                "scorers": [{"method": "detection"}],
                "llm": {"model": "m"},
            },
        ),
        (pb.ScoreFuzzDetectionRequest, {"activations": records, "type": "FUZZ"}),
    ]
    for cls, data in bodies:
        body = json.dumps(data).encode()
        message = _parse_plain(body, cls)
        assert message is not None, cls.__name__
        assert message == json_format_parse(body, cls)


def _best_of(fn: Callable[[], object], runs: int = 3) -> float:
    best = math.inf
    for _ in range(runs):
        began = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - began)
    return best


def _old_parse(body: bytes, cls: type[Message]) -> Message:
    """The parse as it was: ``json.loads`` and json_format over the whole body."""
    return json_format.ParseDict(json.loads(body), cls())


def test_parsing_records_costs_a_fraction_of_json_format() -> None:
    """Issue 19 item 5: 1,000 records took 181 ms in json_format.ParseDict."""
    body = json.dumps({"activations": _records(300), "openrouterKey": "k", "model": "m"}).encode()
    fast = _best_of(lambda: parse_json_body(body, pb.ExplainDefaultRequest))
    old = _best_of(lambda: _old_parse(body, pb.ExplainDefaultRequest))
    assert fast < 0.3 * old, (fast, old)


def test_printing_a_breakdown_costs_a_fraction_of_json_format() -> None:
    """Issue 19 item 5: a 1,000-record fuzz breakdown took 119 ms to_json_dict + 37 ms dumps."""
    response = pb.ScoreFuzzDetectionResponse(score=0.5)
    for record in _records(300):
        response.breakdown.add(
            str_tokens=record["tokens"],
            activations=record["values"],
            distance=1,
            ground_truth=True,
            prediction=False,
            highlighted=False,
            probability=0.25,
            correct=False,
        )
    fast = _best_of(lambda: to_json_bytes(response))
    old = _best_of(lambda: _reference_bytes(response))
    assert fast < 0.5 * old, (fast, old)


async def test_big_bodies_are_parsed_on_the_services_worker_pool(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Not on the loop's default executor, which also resolves upstream host names (see
    autointerp_grpc/offload.py)."""
    from autointerp_grpc.rest import routes  # the whole service: imported by this test only

    threads: list[str] = []

    def parse(body: bytes, cls: type[Message]) -> Message:
        threads.append(threading.current_thread().name)
        return parse_json_body(body, cls)

    monkeypatch.setattr(routes, "parse_json_body", parse)
    big = json.dumps({"activations": _records(200), "model": "m"}).encode()
    assert len(big) > 256 * 1024

    class _Request:
        """The two things ``_reader`` asks of a Starlette request."""

        def __init__(self) -> None:
            self.headers = {"content-length": str(len(big))}

        async def stream(self) -> AsyncIterator[bytes]:
            yield big

    binding = next(b for b in routes.http_bindings() if b.method.name == "ExplainDefault")
    settings_ = Settings(max_request_bytes=10**8, request_head_timeout_s=5.0)
    read = routes._reader(_Request(), binding, settings_, asyncio.Event())  # type: ignore[arg-type]
    message = await read(pb.ExplainDefaultRequest)
    assert len(message.activations) == 200  # type: ignore[attr-defined]
    assert threads and threads[0].startswith("autointerp-cpu"), threads
