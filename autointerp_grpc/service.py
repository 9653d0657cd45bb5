"""What both doors share: the RPC table, authentication, validation and dispatch.

The gRPC servicer and the REST gateway each turn their transport's request into a proto
message plus the presented secret, call :meth:`AutoInterpService.call`, and map the typed
errors it raises to their own status (the table in :mod:`autointerp_grpc.errors`). So auth,
validation and error semantics are written once.
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import AsyncIterator
from dataclasses import dataclass

from google.protobuf import message_factory
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor
from google.protobuf.message import Message

from autointerp_grpc.errors import DeadlineExceeded, ResourceExhausted, Unauthenticated, Unavailable
from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2 as pb
from autointerp_grpc.handlers import HANDLERS, Deps, Handler
from autointerp_grpc.redaction import Secrets, secret_fields
from autointerp_grpc.validation import check_required

SERVICE: ServiceDescriptor = pb.DESCRIPTOR.services_by_name["AutoInterp"]
SECRET_HEADER = "x-secret-key"  # noqa: S105  (a header name, not a secret)


@dataclass(frozen=True)
class Method:
    """One RPC: its descriptor, message classes and handler."""

    descriptor: MethodDescriptor
    request_cls: type[Message]
    response_cls: type[Message]
    handler: Handler

    @property
    def name(self) -> str:
        return self.descriptor.name

    @property
    def full_name(self) -> str:
        return f"/{SERVICE.full_name}/{self.descriptor.name}"

    @property
    def streaming(self) -> bool:
        """Server-streaming: the handler is an async generator of responses."""
        return self.descriptor.server_streaming


def _message_class(descriptor: object) -> type[Message]:
    return message_factory.GetMessageClass(descriptor)  # type: ignore[arg-type]


def build_methods(handlers: dict[str, Handler] = HANDLERS) -> dict[str, Method]:
    """Pair every RPC of the proto's service with its handler; fail fast on a missing one."""
    missing = [m.name for m in SERVICE.methods if m.name not in handlers]
    if missing:
        raise RuntimeError(f"no handler registered for RPC(s): {', '.join(missing)}")
    return {
        m.name: Method(
            descriptor=m,
            request_cls=_message_class(m.input_type),
            response_cls=_message_class(m.output_type),
            handler=handlers[m.name],
        )
        for m in SERVICE.methods
    }


class Authenticator:
    """The shared-secret check. No secret configured → every caller is let in."""

    def __init__(self, secret: str | None) -> None:
        self._secret = secret.encode("utf-8") if secret else None

    @property
    def enabled(self) -> bool:
        return self._secret is not None

    def check(self, presented: str | bytes | None) -> None:
        if self._secret is None:
            return
        if presented is None or len(presented) == 0:
            raise Unauthenticated(
                "Missing secret: send it in the X-SECRET-KEY header (gRPC metadata x-secret-key)"
            )
        given = presented if isinstance(presented, bytes) else presented.encode("utf-8", "replace")
        # Bytes, not str: compare_digest on str rejects non-ASCII input with a TypeError.
        if not hmac.compare_digest(given, self._secret):
            raise Unauthenticated(
                "Invalid secret in the X-SECRET-KEY header (gRPC metadata x-secret-key); "
                "check that it matches the server's SECRET"
            )


class AutoInterpService:
    """Dispatches an authenticated, validated request to its handler.

    Also where both doors' load rules live: at most ``max_in_flight`` requests are served at
    once (beyond that, RESOURCE_EXHAUSTED at once rather than an unbounded queue), each within
    ``request_timeout_s``, and none once the server has begun shutting down.
    """

    def __init__(
        self,
        deps: Deps,
        authenticator: Authenticator,
        max_in_flight: int = 256,
        request_timeout_s: float = 600.0,
        secrets: Secrets | None = None,
    ) -> None:
        self.deps = deps
        self.authenticator = authenticator
        self.methods = build_methods()
        self.max_in_flight = max_in_flight
        self.request_timeout_s = request_timeout_s
        self.in_flight = 0
        self.idle = asyncio.Event()
        """Set whenever no request is in flight."""
        self.idle.set()
        self.draining = False
        self.secrets = secrets or Secrets()

    def _admit(self, secret: str | bytes | None) -> None:
        self.authenticator.check(secret)
        if self.draining:
            raise Unavailable("The server is shutting down; retry (another replica will answer)")
        if self.in_flight >= self.max_in_flight:
            raise ResourceExhausted(
                f"The server is at its limit of {self.max_in_flight} requests in flight; "
                "retry shortly"
            )
        self.in_flight += 1
        self.idle.clear()

    def _release(self) -> None:
        self.in_flight -= 1
        if self.in_flight == 0:
            self.idle.set()

    async def call(self, method: str, request: Message, secret: str | bytes | None) -> Message:
        """A unary RPC: its response, within the server's time limit."""
        self._admit(secret)
        try:
            with self.secrets.holding(secret_fields(request)):
                return await self._dispatch(method, request)
        finally:
            self._release()

    async def call_stream(
        self, method: str, request: Message, secret: str | bytes | None
    ) -> AsyncIterator[Message]:
        """A server-streaming RPC: its messages as they come. A bulk run may take hours, so
        the server's per-request time limit does not apply (the client's deadline does)."""
        self._admit(secret)
        try:
            with self.secrets.holding(secret_fields(request)):
                check_required(request)
                async for message in self.methods[method].handler(request, self.deps):
                    yield message
        finally:
            self._release()

    async def _dispatch(self, method: str, request: Message) -> Message:
        check_required(request)
        timeout = asyncio.timeout(self.request_timeout_s)
        try:
            async with timeout:
                return await self.methods[method].handler(request, self.deps)
        except TimeoutError:
            if not timeout.expired():
                raise
            raise DeadlineExceeded(
                f"The request did not finish within the server's limit of "
                f"{self.request_timeout_s:g} s"
            ) from None
