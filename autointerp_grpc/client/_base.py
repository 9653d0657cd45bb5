"""What the sync and async clients share: target, metadata, deadlines, and starting a call.

Every RPC of the proto's ``AutoInterp`` service is a method of both clients, named in
snake_case (``ExplainDefault`` → ``explain_default``). ``make protos`` generates those methods
from the service descriptor into :mod:`._rpcs` (a mixin per client, typed per RPC: the request
message, the response), and each calls :meth:`ClientBase._start` with its RPC's name; the RPC
table here is read from the runtime descriptor. A method takes the request (no request when its
message has no fields: ``list_methods()``) and keyword-only ``timeout`` and ``request_id``;
what it returns is the client's concern: the sync client gives the response or an
``EventStream``, the async one the awaitable grpc.aio call or an ``AsyncEventStream``.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
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
JsonRequest = Mapping[str, Any]
"""A request as a dict in proto3 JSON form (camelCase or snake_case field names)."""
RequestLike = Message | JsonRequest
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
    def streaming(self) -> bool:
        return self.descriptor.server_streaming


def _rpc(descriptor: MethodDescriptor) -> Rpc:
    return Rpc(
        descriptor,
        message_factory.GetMessageClass(descriptor.input_type),
        message_factory.GetMessageClass(descriptor.output_type),
    )


RPCS: dict[str, Rpc] = {m.name: _rpc(m) for m in SERVICE.methods}
"""Every RPC of the service by name, in the proto's order."""


# ---- the shared base -----------------------------------------------------------------------


class ClientBase:
    """Target, metadata and deadlines, and starting a call; the per-RPC methods come from the
    generated mixins of :mod:`._rpcs`.

    A subclass sets ``_stub`` (the sync or grpc.aio stub) and ``_stream_cls`` (wraps a streaming
    call and its request id).
    """

    _stub: Any
    _stream_cls: ClassVar[type]

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
        self, name: str, request: RequestLike, timeout: float | None, request_id: str | None
    ) -> Any:
        """Start the RPC ``name`` on the stub: a unary call's result (sync: the response; async:
        the awaitable call), or a streaming call wrapped in ``_stream_cls``."""
        rpc = RPCS[name]
        message = to_message(request, rpc.request_cls)
        request_id = request_id or uuid.uuid4().hex
        call = getattr(self._stub, rpc.name)(
            message,
            timeout=self._timeout(timeout, stream=rpc.streaming),
            metadata=self._metadata(request_id),
        )
        return self._stream_cls(call, request_id) if rpc.streaming else call
