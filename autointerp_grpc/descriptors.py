"""The descriptor of a generated message, typed as ``google.protobuf.descriptor.Descriptor``.

typeshed types ``Message.DESCRIPTOR`` as ``descriptor.Descriptor`` or
``google._upb._message.Descriptor``. At run time (protobuf's upb backend) it is the upb class,
which ``isinstance`` reports as a ``descriptor.Descriptor`` too (protobuf's descriptor classes
delegate their instance checks to the C ones), and the code here reads only the API both share.
One cast here stands for all of them. The field helpers narrow ``Descriptor | None`` types.
"""

from __future__ import annotations

from typing import cast

from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor
from google.protobuf.message import Message


def descriptor_of(message: Message | type[Message]) -> Descriptor:
    """``message.DESCRIPTOR`` (of a message or a message class)."""
    return cast(Descriptor, message.DESCRIPTOR)


def message_type_of(field: FieldDescriptor) -> Descriptor:
    """The message type of a ``TYPE_MESSAGE`` field (typed ``Descriptor | None`` for any field)."""
    if field.message_type is None:
        raise TypeError(f"{field.full_name} is not a message field")
    return field.message_type


def enum_type_of(field: FieldDescriptor) -> EnumDescriptor:
    """The enum type of a ``TYPE_ENUM`` field (typed ``EnumDescriptor | None`` for any field)."""
    if field.enum_type is None:
        raise TypeError(f"{field.full_name} is not an enum field")
    return field.enum_type
