"""What the sync and async clients share, including their per-RPC methods, written once.

Every RPC of the proto's ``AutoInterp`` service becomes a method of both clients, named in
snake_case (``ExplainDefault`` → ``explain_default``). The methods are generated from the
service descriptor when a client class is defined, as the server's handlers are, so an RPC
added to the proto appears in both clients with no edit here. A method takes the request
(no request when its message has no fields: ``list_methods()``) and keyword-only ``timeout``
and ``request_id``, and starts the call; what it returns is the client's concern: the sync
client gives the response or an ``EventStream``, the async one the awaitable grpc.aio call or
an ``AsyncEventStream``.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar, cast

import grpc
from google.protobuf import json_format, message_factory
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor
from google.protobuf.message import Message

from autointerp_grpc.client.targets import grpc_target
from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2 as pb

SECRET_METADATA = "x-secret-key"  # noqa: S105  (a metadata key, not a secret)
REQUEST_ID_METADATA = "x-request-id"
SERVICE: ServiceDescriptor = pb.DESCRIPTOR.services_by_name["AutoInterp"]

M = TypeVar("M", bound=Message)
RequestLike = Message | Mapping[str, Any]
"""A request: the proto message itself, or a dict in proto3 JSON form."""


def to_message(request: RequestLike, cls: type[M]) -> M:
    """``request`` as a ``cls`` message: a message of that type as is, a dict parsed as JSON.

    Raises TypeError for a message of another type and google.protobuf.json_format.ParseError
    for a dict that is not valid proto3 JSON of ``cls``.
    """
    if isinstance(request, cls):
        return request
    if isinstance(request, Message):
        raise TypeError(
            f"expected {cls.DESCRIPTOR.full_name} or a dict, got {request.DESCRIPTOR.full_name}"
        )
    if not isinstance(request, Mapping):
        raise TypeError(f"expected {cls.DESCRIPTOR.full_name} or a dict, got {type(request)}")
    return json_format.ParseDict(dict(request), cls())


def rpc_status(error: grpc.RpcError) -> tuple[grpc.StatusCode, str]:
    """The status code and details of a failed call (sync or grpc.aio)."""
    code, details = getattr(error, "code", None), getattr(error, "details", None)
    if callable(code) and callable(details):
        return cast(grpc.StatusCode, code()), cast(str | None, details()) or ""
    return grpc.StatusCode.UNKNOWN, "the call failed without a status"


def rpc_failure(name: str, error: grpc.RpcError, request_id: str | None = None) -> str:
    """``"<name> failed: <CODE>: <details>"``, plus the request id when given."""
    status, details = rpc_status(error)
    suffix = f" (request id {request_id})" if request_id else ""
    return f"{name} failed: {status.name}: {details}{suffix}"


# ---- the RPC table -------------------------------------------------------------------------


@dataclass(frozen=True)
class Rpc:
    """One RPC of the service, as the clients call it."""

    descriptor: MethodDescriptor
    request_cls: type[Message]
    response_cls: type[Message]

    @property
    def name(self) -> str:
        return self.descriptor.name

    @property
    def attribute(self) -> str:
        """The client method's name: the RPC's name in snake_case."""
        return re.sub(r"(?<!^)(?=[A-Z])", "_", self.name).lower()

    @property
    def streaming(self) -> bool:
        return self.descriptor.server_streaming

    @property
    def takes_request(self) -> bool:
        """False for a request message without fields: the method then takes no request."""
        return bool(self.request_cls.DESCRIPTOR.fields)


def _rpc(descriptor: MethodDescriptor) -> Rpc:
    return Rpc(
        descriptor,
        message_factory.GetMessageClass(descriptor.input_type),
        message_factory.GetMessageClass(descriptor.output_type),
    )


RPCS: tuple[Rpc, ...] = tuple(_rpc(m) for m in SERVICE.methods)
"""Every RPC of the service, in the proto's order."""


# ---- the shared base -----------------------------------------------------------------------


class ClientBase:
    """Target, metadata and deadlines; and one method per RPC, installed on each subclass.

    A subclass sets ``_stub`` (the sync or grpc.aio stub), ``_stream_cls`` (wraps a streaming
    call and its request id) and ``_awaitable`` (whether its unary calls are awaited).
    """

    _stub: Any
    _stream_cls: ClassVar[type]
    _awaitable: ClassVar[bool]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for rpc in RPCS:
            if getattr(cls, rpc.attribute, None) is None:  # a subclass may write its own
                setattr(cls, rpc.attribute, _rpc_method(cls, rpc))

    def __init__(
        self,
        servers: str | Sequence[str],
        *,
        secret: str | None = None,
        timeout: float | None = None,
    ) -> None:
        self.target = grpc_target(servers)
        self.timeout = timeout
        self._secret = secret or None

    def __repr__(self) -> str:  # never shows the secret
        return f"{type(self).__name__}(target={self.target!r}, timeout={self.timeout!r})"

    def _metadata(self, request_id: str | None) -> tuple[tuple[str, str], ...]:
        metadata = [(REQUEST_ID_METADATA, request_id or uuid.uuid4().hex)]
        if self._secret:
            metadata.append((SECRET_METADATA, self._secret))
        return tuple(metadata)

    def _timeout(self, timeout: float | None, *, stream: bool = False) -> float | None:
        if timeout is not None:
            return timeout
        return None if stream else self.timeout

    def _start(
        self, rpc: Rpc, request: RequestLike, timeout: float | None, request_id: str | None
    ) -> Any:
        """Start ``rpc`` on the stub: a unary call's result (sync: the response; async: the
        awaitable call), or a streaming call wrapped in ``_stream_cls``."""
        message = to_message(request, rpc.request_cls)
        request_id = request_id or uuid.uuid4().hex
        call = getattr(self._stub, rpc.name)(
            message,
            timeout=self._timeout(timeout, stream=rpc.streaming),
            metadata=self._metadata(request_id),
        )
        return self._stream_cls(call, request_id) if rpc.streaming else call


def _rpc_method(owner: type[ClientBase], rpc: Rpc) -> Callable[..., Any]:
    """``owner``'s method for ``rpc``, with its signature, annotations and docstring."""

    def with_request(
        self: ClientBase,
        request: RequestLike,
        *,
        timeout: float | None = None,
        request_id: str | None = None,
    ) -> Any:
        return self._start(rpc, request, timeout, request_id)

    def without_request(
        self: ClientBase, *, timeout: float | None = None, request_id: str | None = None
    ) -> Any:
        return self._start(rpc, {}, timeout, request_id)

    method = with_request if rpc.takes_request else without_request
    annotations: dict[str, Any] = {"request": RequestLike} if rpc.takes_request else {}
    out = rpc.response_cls.__name__
    if rpc.streaming:
        returns: Any = owner._stream_cls
        result = (
            f"Returns an {owner._stream_cls.__name__} of {out} at once (not a coroutine). "
            "No deadline unless ``timeout`` is given."
        )
    elif owner._awaitable:
        returns = Awaitable[rpc.response_cls]
        result = f"Returns the grpc.aio call; awaiting it gives the {out}."
    else:
        returns = rpc.response_cls
        result = f"Returns the {out}."
    request = (
        f"``request``: the {rpc.request_cls.__name__} message, or a dict in its proto3 JSON form. "
        if rpc.takes_request
        else ""
    )
    method.__name__ = rpc.attribute
    method.__qualname__ = f"{owner.__qualname__}.{rpc.attribute}"
    method.__module__ = owner.__module__
    method.__doc__ = (
        f"Call {rpc.name}. {request}{result}\n\n"
        "``timeout``: deadline in seconds (default: the client's); ``request_id``: sent as "
        "x-request-id (default: a fresh uuid4 hex)."
    )
    method.__annotations__ = {
        **annotations,
        "timeout": float | None,
        "request_id": str | None,
        "return": returns,
    }
    return method
