"""Method parameters: defaults, ranges and allowed values from the proto's ParameterSpec.

A parameters message (e.g. ``ClassifierScorerParams``) declares each parameter as an
``optional`` field with ``[(autointerp.v1.parameter) = {default_value, minimum, maximum,
allowed}]``. ``make protos`` generates a frozen dataclass of the same name per parameters
message (:mod:`autointerp_grpc.gen.params`), its fields typed and defaulted from the
descriptor. :func:`resolve` turns a (possibly unset) message into that class: the sent values,
checked, rejecting out-of-range values with a message that names the parameter, and the
defaults for the rest. :func:`describe` lists the parameters for ListMethods from the
descriptors.
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any, TypeVar

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from autointerp_grpc.descriptors import descriptor_of
from autointerp_grpc.errors import InvalidArgument
from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2 as pb

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

P = TypeVar("P", bound="DataclassInstance")
"""A generated parameters class (:mod:`autointerp_grpc.gen.params`)."""

_TYPE_NAMES = {
    FieldDescriptor.TYPE_DOUBLE: "number",
    FieldDescriptor.TYPE_FLOAT: "number",
    FieldDescriptor.TYPE_INT32: "integer",
    FieldDescriptor.TYPE_BOOL: "boolean",
    FieldDescriptor.TYPE_STRING: "string",
}


def spec_of(field: FieldDescriptor) -> pb.ParameterSpec:
    """The field's ParameterSpec (empty when it has none)."""
    # protoc's .pyi types an extension as a plain FieldDescriptor; typeshed's Extensions[...]
    # wants its generic _ExtensionFieldDescriptor. The stubs disagree; the call is right.
    return field.GetOptions().Extensions[pb.parameter]  # pyright: ignore[reportArgumentType]


def type_name(field: FieldDescriptor) -> str:
    return _TYPE_NAMES.get(field.type, "string")


def _default(field: FieldDescriptor) -> Any:
    text = spec_of(field).default_value
    if text:
        return json.loads(text)
    return None


def check_value(field: FieldDescriptor, value: Any, where: str) -> None:
    """Raise InvalidArgument when ``value`` breaks the field's ParameterSpec."""
    spec = spec_of(field)
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidArgument(f"{where} must be a finite number")
    if spec.HasField("minimum") and value < spec.minimum:
        raise InvalidArgument(f"{where} must be at least {spec.minimum:g} (got {value:g})")
    if spec.HasField("maximum") and value > spec.maximum:
        raise InvalidArgument(f"{where} must be at most {spec.maximum:g} (got {value:g})")
    if spec.allowed and value and value not in spec.allowed:
        raise InvalidArgument(f"{where} must be one of {', '.join(spec.allowed)}")


def resolve(message: Message | None, descriptor: Descriptor, params_type: type[P], where: str) -> P:
    """``descriptor``'s parameters as ``params_type`` (its generated class): the values
    ``message`` sends, checked, and the class's defaults (the proto's) for the rest."""
    values: dict[str, Any] = {}
    if message is not None:
        for field in descriptor.fields:
            if field.has_presence:
                sent = message.HasField(field.name)
            else:  # a plain proto3 field: sent when not empty
                sent = bool(getattr(message, field.name))
            if sent:
                value = getattr(message, field.name)
                check_value(field, value, f"{where}.{field.json_name}")
                values[field.name] = value
    return params_type(**values)


def describe(descriptor: Descriptor, comments: dict[str, str]) -> list[pb.ParameterInfo]:
    """ListMethods' description of every parameter of ``descriptor``."""
    infos = []
    for field in descriptor.fields:
        spec = spec_of(field)
        info = pb.ParameterInfo(
            name=field.json_name,
            type=type_name(field),
            default_value=spec.default_value,
            allowed=list(spec.allowed),
            description=comments.get(field.full_name, ""),
        )
        if spec.HasField("minimum"):
            info.minimum = spec.minimum
        if spec.HasField("maximum"):
            info.maximum = spec.maximum
        infos.append(info)
    return infos


def field_value(message: Message, name: str, where: str) -> Any:
    """A top-level parameter of a request (e.g. ScoreRequest.min_answered): the sent value,
    checked against its ParameterSpec, or its default."""
    field = descriptor_of(message).fields_by_name[name]
    if field.has_presence and message.HasField(name):
        value = getattr(message, name)
        check_value(field, value, where)
        return value
    return _default(field)
