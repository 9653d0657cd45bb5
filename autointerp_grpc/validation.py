"""Request validation shared by both doors.

Two layers:

* :func:`check_required` walks a message with its descriptor and rejects every field marked
  ``[(google.api.field_behavior) = REQUIRED]`` that is empty (an empty string or list, an enum
  left at its zero value), recursing into nested messages. The proto is the only place that
  says what is required; the OpenAPI generator reads the same annotation.
* :func:`check_activations` enforces the rules on activation records that no schema can state:
  one value per token, finite values, text tokens, and the configured size limits.

Errors are :class:`~autointerp_grpc.errors.InvalidArgument` whose message names the field by
its path (``activations[2].values``) and the rule, never a field's value.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Protocol

from google.api import field_behavior_pb2
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from autointerp_grpc import config
from autointerp_grpc.descriptors import descriptor_of, enum_type_of, message_type_of
from autointerp_grpc.errors import InvalidArgument
from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2 as pb


def is_required(field: FieldDescriptor) -> bool:
    """Whether the proto marks ``field`` as REQUIRED (google.api.field_behavior)."""
    # googleapis-common-protos' .pyi types the extension as a plain FieldDescriptor; typeshed's
    # Extensions[...] wants its generic _ExtensionFieldDescriptor. The call is right.
    extension = field_behavior_pb2.field_behavior
    behaviors = field.GetOptions().Extensions[extension]  # pyright: ignore[reportArgumentType]
    return field_behavior_pb2.FieldBehavior.REQUIRED in behaviors


def _is_empty(message: Message, field: FieldDescriptor) -> bool:
    value = getattr(message, field.name)
    if field.is_repeated:
        return len(value) == 0
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        return not message.HasField(field.name)
    if field.type == FieldDescriptor.TYPE_STRING:
        return value.strip() == ""
    if field.type == FieldDescriptor.TYPE_ENUM:
        return value == 0
    # Numbers and booleans: zero and false are legitimate values of a required field.
    return False


def _is_header_safe(value: str) -> bool:
    return value.isascii() and value.isprintable()


def check_required(message: Message, path: str = "", *, skip: frozenset[str] = frozenset()) -> None:
    """Raise InvalidArgument for the first REQUIRED field of ``message`` that is empty, or
    secret field (``debug_redact``) that could not be sent as an HTTP header.

    Nested messages are checked too, except the top-level fields named in ``skip`` (whose
    items are checked one by one elsewhere, e.g. the features of a bulk request)."""
    for field in descriptor_of(message).fields:
        where = f"{path}{field.name}"
        if field.GetOptions().debug_redact and field.type == FieldDescriptor.TYPE_STRING:
            # Keys travel as HTTP headers upstream; say what is wrong, never the value.
            value = getattr(message, field.name)
            if not _is_header_safe(value):
                raise InvalidArgument(
                    f"{where} must be printable ASCII (it is sent as an HTTP header)"
                )
            if value != value.strip():
                # Else the provider sees a different key and the caller a vague failure.
                raise InvalidArgument(f"{where} has leading or trailing whitespace")
        if is_required(field) and _is_empty(message, field):
            if field.type == FieldDescriptor.TYPE_ENUM:
                names = [v.name for v in enum_type_of(field).values if v.number != 0]
                raise InvalidArgument(f"{where} is required: one of {', '.join(names)}")
            raise InvalidArgument(f"{where} is required and must not be empty")
        if (
            field.type != FieldDescriptor.TYPE_MESSAGE
            or message_type_of(field).GetOptions().map_entry
            or field.name in skip
        ):
            continue
        if field.is_repeated:
            for i, item in enumerate(getattr(message, field.name)):
                check_required(item, f"{where}[{i}].")
        elif message.HasField(field.name):
            check_required(getattr(message, field.name), f"{where}.")


Limits = config.Limits
"""Size limits on what one request may ask for: the settings group ``limits.*``
(:class:`~autointerp_grpc.config.Limits`), taken as it is, so each limit is declared once,
with its rule and description."""


class _HasTokens(Protocol):
    @property
    def tokens(self) -> Sequence[str]: ...


def token_count(*groups: Iterable[_HasTokens]) -> int:
    """How many tokens the records (activation or attention records) of ``groups`` hold."""
    return sum(len(record.tokens) for group in groups for record in group)


def check_request_tokens(limits: Limits, *groups: Iterable[_HasTokens]) -> None:
    """All the records of a request (or bulk feature) together hold at most
    ``max_request_tokens`` tokens: memory per request grows with tokens, and empty-string
    tokens cost no characters, so the character budget alone does not bound it."""
    total = token_count(*groups)
    if total > limits.max_request_tokens:
        raise InvalidArgument(
            f"the records hold {total} tokens in all; the limit is "
            f"{limits.max_request_tokens} per request or feature"
        )


def _check_count(n: int, field: str, limits: Limits) -> None:
    if n == 0:
        raise InvalidArgument(f"{field} must hold at least one record")
    if n > limits.max_records:
        raise InvalidArgument(f"{field} holds {n} records; the limit is {limits.max_records}")


def _check_shape(
    where: str, tokens: Sequence[str], n_values: int, unit: str, limits: Limits
) -> int:
    """One record's shape rules (tokens, one ``unit`` per token, characters); its characters."""
    n_tokens = len(tokens)
    if n_tokens == 0:
        raise InvalidArgument(f"{where}.tokens must not be empty")
    if n_tokens > limits.max_tokens_per_record:
        raise InvalidArgument(
            f"{where}.tokens holds {n_tokens} tokens; the limit is "
            f"{limits.max_tokens_per_record} per record"
        )
    if n_tokens != n_values:
        raise InvalidArgument(
            f"{where} must have one {unit} per token ({n_tokens} tokens, {n_values} {unit}s)"
        )
    chars = sum(len(t) for t in tokens)
    if chars > limits.max_record_chars:
        raise InvalidArgument(
            f"{where}.tokens hold {chars} characters; the limit is "
            f"{limits.max_record_chars} per record"
        )
    return chars


def _check_total_chars(total: int, where: str, limits: Limits) -> None:
    if total > limits.max_request_chars:
        raise InvalidArgument(
            f"the records hold more than {limits.max_request_chars} characters in all "
            f"(the limit per request or feature), counting up to {where}"
        )


def check_activations(
    activations: Sequence[pb.Activation],
    limits: Limits,
    field: str = "activations",
    *,
    chars_so_far: int = 0,
) -> int:
    """Enforce the per-record rules on ``activations``; returns the characters they hold plus
    ``chars_so_far`` (records sent in several fields share one budget)."""
    _check_count(len(activations), field, limits)
    total = chars_so_far
    for i, record in enumerate(activations):
        where = f"{field}[{i}]"
        total += _check_shape(where, record.tokens, len(record.values), "value", limits)
        _check_total_chars(total, where, limits)
        for j, value in enumerate(record.values):
            if not math.isfinite(value):
                raise InvalidArgument(f"{where}.values[{j}] must be a finite number")
    return total


def check_request_records(records: Sequence[pb.Activation], limits: Limits) -> int:
    """A request whose records are all in one field: the request's token budget, then the
    per-record rules (:func:`check_activations`); the characters they hold."""
    check_request_tokens(limits, records)
    return check_activations(records, limits)


def check_explanation_size(explanation: str, limits: Limits) -> None:
    if len(explanation) > limits.max_explanation_chars:
        raise InvalidArgument(
            f"explanation holds {len(explanation)} characters; the limit is "
            f"{limits.max_explanation_chars}"
        )


def check_top_logits(logits: Sequence[str], limits: Limits) -> None:
    if len(logits) > limits.max_top_logits:
        raise InvalidArgument(
            f"topPositiveLogits holds {len(logits)} tokens; the limit is {limits.max_top_logits}"
        )
    for i, token in enumerate(logits):
        if len(token) > 200:
            raise InvalidArgument(f"topPositiveLogits[{i}] is longer than 200 characters")


def check_attention(records: Sequence[pb.AttentionRecord], limits: Limits) -> int:
    """Enforce the rules on attention records (the ``oai_attention_head`` explainer's input);
    returns the characters they hold (they count against the request's character budget).

    Shapes: one weight per token, ``0 <= from_index < len(tokens)``. Values: finite, zero
    after ``from_index`` (attention only looks back) and at least one positive weight at or
    before it (else there is no token attended to).
    """
    field = "attention"
    _check_count(len(records), field, limits)
    total = 0
    for i, record in enumerate(records):
        where = f"{field}[{i}]"
        total += _check_shape(where, record.tokens, len(record.weights), "weight", limits)
        if not 0 <= record.from_index < len(record.tokens):
            raise InvalidArgument(
                f"{where}.fromIndex must be a token index, 0 to {len(record.tokens) - 1}"
            )
        _check_total_chars(total, where, limits)
        _check_attention_weights(record, where)
    return total


def _check_attention_weights(record: pb.AttentionRecord, where: str) -> None:
    for j, weight in enumerate(record.weights):
        if not math.isfinite(weight):
            raise InvalidArgument(f"{where}.weights[{j}] must be a finite number")
        if j > record.from_index and weight != 0:
            raise InvalidArgument(
                f"{where}.weights[{j}] must be 0: attention only looks back, to tokens at "
                f"or before fromIndex ({record.from_index})"
            )
    if not any(w > 0 for w in record.weights[: record.from_index + 1]):
        raise InvalidArgument(
            f"{where}.weights must hold a positive weight at or before fromIndex "
            "(the token attended to)"
        )
