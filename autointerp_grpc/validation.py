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
from collections.abc import Sequence
from dataclasses import dataclass

from google.api import field_behavior_pb2
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from autointerp_grpc.errors import InvalidArgument
from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2 as pb


def is_required(field: FieldDescriptor) -> bool:
    """Whether the proto marks ``field`` as REQUIRED (google.api.field_behavior)."""
    behaviors = field.GetOptions().Extensions[field_behavior_pb2.field_behavior]
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
    for field in message.DESCRIPTOR.fields:
        where = f"{path}{field.name}"
        if (
            field.GetOptions().debug_redact
            and field.type == FieldDescriptor.TYPE_STRING
            and not _is_header_safe(getattr(message, field.name))
        ):
            # Keys travel as HTTP headers upstream; say what is wrong, never the value.
            raise InvalidArgument(f"{where} must be printable ASCII (it is sent as an HTTP header)")
        if is_required(field) and _is_empty(message, field):
            if field.type == FieldDescriptor.TYPE_ENUM:
                names = [v.name for v in field.enum_type.values if v.number != 0]
                raise InvalidArgument(f"{where} is required: one of {', '.join(names)}")
            raise InvalidArgument(f"{where} is required and must not be empty")
        if (
            field.type != FieldDescriptor.TYPE_MESSAGE
            or field.message_type.GetOptions().map_entry
            or field.name in skip
        ):
            continue
        if field.is_repeated:
            for i, item in enumerate(getattr(message, field.name)):
                check_required(item, f"{where}[{i}].")
        elif message.HasField(field.name):
            check_required(getattr(message, field.name), f"{where}.")


@dataclass(frozen=True)
class Limits:
    """Size limits on activation records (configurable; see Settings)."""

    max_records: int = 1000
    max_tokens_per_record: int = 4096


def check_activations(
    activations: Sequence[pb.Activation], limits: Limits, field: str = "activations"
) -> None:
    """Enforce the per-record rules on ``activations``."""
    if len(activations) == 0:
        raise InvalidArgument(f"{field} must hold at least one record")
    if len(activations) > limits.max_records:
        raise InvalidArgument(
            f"{field} holds {len(activations)} records; the limit is {limits.max_records}"
        )
    for i, record in enumerate(activations):
        where = f"{field}[{i}]"
        n_tokens, n_values = len(record.tokens), len(record.values)
        if n_tokens == 0:
            raise InvalidArgument(f"{where}.tokens must not be empty")
        if n_tokens > limits.max_tokens_per_record:
            raise InvalidArgument(
                f"{where}.tokens holds {n_tokens} tokens; the limit is "
                f"{limits.max_tokens_per_record} per record"
            )
        if n_tokens != n_values:
            raise InvalidArgument(
                f"{where} must have one value per token ({n_tokens} tokens, {n_values} values)"
            )
        for j, value in enumerate(record.values):
            if not math.isfinite(value):
                raise InvalidArgument(f"{where}.values[{j}] must be a finite number")
