"""What both doors share: the RPC table, admission, dispatch, accounting and request ids.

Each door turns its transport's call into a method name, the presented secret, a request id
and a ``read`` coroutine that produces the request message (parsing bytes or JSON), then
calls :meth:`AutoInterpService.call` (or :meth:`~AutoInterpService.call_stream`). Every
request passes the same admission — authentication, then drain, then the in-flight cap —
*before* its body is read or parsed, then its keys join the redaction list, then its
handler runs; one log line and the metrics close it. A door reports any exception through
:func:`~autointerp_grpc.errors.as_wire_error`, so errors read the same everywhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import re
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import cast

from google.protobuf import message_factory
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor
from google.protobuf.message import Message

from autointerp_grpc.errors import (
    AutoInterpError,
    DeadlineExceeded,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
)
from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2 as pb
from autointerp_grpc.handlers import HANDLERS, Deps, Handler
from autointerp_grpc.observability import Metrics, RequestStats, current_request
from autointerp_grpc.redaction import Secrets, secret_fields
from autointerp_grpc.validation import check_required

log = logging.getLogger(__name__)

SERVICE: ServiceDescriptor = pb.DESCRIPTOR.services_by_name["AutoInterp"]
# Repeated fields of streaming requests whose items are validated item by item.
STREAMED_ITEMS = frozenset({"features"})
SECRET_HEADER = "x-secret-key"  # noqa: S105  (a header name, not a secret)
REQUEST_ID_HEADER = "x-request-id"

# The secret as a caller presented it: the header's value, or all of its values.
Presented = str | bytes | Sequence[str | bytes] | None

# Produces the request message once the call is admitted: parses the gRPC bytes or the REST
# body, given the method's request class.
Reader = Callable[[type[Message]], Awaitable[Message]]


# A caller's request id is echoed in a header / gRPC metadata and written into log lines:
# only ids made of these characters are kept (no spaces, quotes or `=` to forge a log field
# with, nothing gRPC metadata cannot carry).
_SAFE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def request_id_from(given: str | bytes | None) -> str:
    """The caller's x-request-id if it is 1 to 128 characters of ``[A-Za-z0-9._:-]``, else a
    fresh id (32 hex digits)."""
    if isinstance(given, str) and _SAFE_REQUEST_ID.fullmatch(given):
        return given
    return uuid.uuid4().hex


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

    def check(self, presented: Presented) -> None:
        """``presented``: the secret header's value, or every value the caller sent."""
        if self._secret is None:
            return
        values = [presented] if isinstance(presented, str | bytes) else list(presented or ())
        if len(values) > 1:
            # Doors and proxies disagree on which of several copies counts: accept none.
            raise Unauthenticated(
                "The secret was sent more than once: send one X-SECRET-KEY header (gRPC "
                "metadata x-secret-key)"
            )
        presented = values[0] if values else None
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


def deadline_of(limit_s: float, time_remaining: float | None = None) -> float:
    """The ``time.monotonic()`` at which a request's time runs out: the server's ``limit_s``
    or the client's ``time_remaining``, whichever comes first."""
    budget = limit_s if time_remaining is None else max(0.0, min(limit_s, time_remaining))
    return time.monotonic() + budget


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
        *,
        max_in_flight: int = 256,
        request_timeout_s: float = 600.0,
        secrets: Secrets | None = None,
        metrics: Metrics | None = None,
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
        # Tasks running a unary call or waiting on a stream's next message (see cut_off).
        self._cuttable_tasks: set[asyncio.Task[object]] = set()
        self._cut_off = False
        self.secrets = secrets or Secrets()
        self.metrics = metrics or Metrics()

    def _admit(self, secret: Presented) -> None:
        self.authenticator.check(secret)
        if self.draining:
            raise Unavailable("The server is shutting down; retry (another replica will answer)")
        if self.in_flight >= self.max_in_flight:
            raise ResourceExhausted(
                f"The server is at its limit of {self.max_in_flight} requests in flight; "
                "retry shortly"
            )
        self.in_flight += 1
        self.metrics.in_flight.inc()
        self.idle.clear()

    def _release(self) -> None:
        self.in_flight -= 1
        self.metrics.in_flight.dec()
        if self.in_flight == 0:
            self.idle.set()

    def record(
        self,
        method: str,
        code: str,
        seconds: float,
        request_id: str,
        *,
        stats: RequestStats | None = None,
        detail: str = "",
    ) -> None:
        """Metrics and the one log line of a finished request (every request, including
        those refused at admission or whose body could not be parsed)."""
        stats = stats or RequestStats()
        self.metrics.requests.labels(method, code).inc()
        self.metrics.request_seconds.labels(method, code).observe(seconds)
        fields = {
            "rpc": method,
            "status": code,
            "duration_ms": round(seconds * 1000, 1),
            "llm_calls": stats.usage.llm_calls,
            "prompt_tokens": stats.usage.prompt_tokens,
            "completion_tokens": stats.usage.completion_tokens,
            "request_id": request_id,
        }
        text = " ".join(f"{k}={v}" for k, v in fields.items())
        log.info("%s%s", text, f" detail={detail!r}" if detail else "", extra=fields)

    @contextlib.contextmanager
    def _accounted(self, method: str, request_id: str) -> Iterator[RequestStats]:
        began = time.perf_counter()
        stats = RequestStats(request_id=request_id)
        token = current_request.set(stats)
        code, detail = "OK", ""
        try:
            yield stats
        except AutoInterpError as exc:
            code, detail = exc.code_name, exc.message
            raise
        except asyncio.CancelledError:
            code = "CANCELLED"
            raise
        except Exception:
            code = "INTERNAL"
            raise
        finally:
            # A stream closed from another context cannot reset; its context dies with it.
            with contextlib.suppress(ValueError):
                current_request.reset(token)
            elapsed = time.perf_counter() - began
            self.record(method, code, elapsed, request_id, stats=stats, detail=detail)

    @contextlib.asynccontextmanager
    async def _admitted(
        self, method: str, secret: Presented, request_id: str, read: Reader
    ) -> AsyncIterator[Message]:
        """The one admission path: accounting, auth, drain, in-flight cap, then the request
        read and its keys held for redaction until after its log line is written."""
        if method not in self.methods:
            raise RuntimeError(f"no such RPC: {method}")
        with contextlib.ExitStack() as held, self._accounted(method, request_id):
            self._admit(secret)
            try:
                request = await read(self.methods[method].request_cls)
                held.enter_context(self.secrets.holding(secret_fields(request)))
                yield request
            finally:
                self._release()

    async def call(
        self,
        method: str,
        secret: Presented,
        request_id: str,
        read: Reader,
        *,
        time_remaining: float | None = None,
    ) -> Message:
        """A unary RPC: its response, within the server's time limit and the client's
        deadline (``time_remaining`` seconds, where the door sees one). Cut off at the end of
        a stop's grace period (:meth:`cut_off`), it answers UNAVAILABLE."""
        with self._cuttable("request"):
            async with self._admitted(method, secret, request_id, read) as request:
                return await self._dispatch(method, request, time_remaining)

    @contextlib.contextmanager
    def _cuttable(self, what: str) -> Iterator[None]:
        """While the block runs, :meth:`cut_off` may cancel the current task; the block then
        raises UNAVAILABLE instead of the cancellation."""
        task = asyncio.current_task()
        if task is not None:
            self._cuttable_tasks.add(task)
        try:
            yield
        except asyncio.CancelledError:
            if self._cut_off and task is not None and task.cancelling():
                task.uncancel()
                raise Unavailable(
                    f"The server stopped before the {what} finished (it was still running at "
                    "the end of the shutdown grace period); retry"
                ) from None
            raise
        finally:
            self._cuttable_tasks.discard(task)  # type: ignore[arg-type]

    def cut_off(self) -> None:
        """End of a stop's grace period: cancel the unary calls still running; each answers
        UNAVAILABLE to its caller (rather than a door's own error page)."""
        self._cut_off = True
        for task in list(self._cuttable_tasks):
            task.cancel()

    async def call_stream(
        self, method: str, secret: Presented, request_id: str, read: Reader
    ) -> AsyncGenerator[Message, None]:
        """A server-streaming RPC: its messages as they come. A bulk run may take hours, so
        the server's per-request time limit does not apply (the client's deadline does)."""
        async with self._admitted(method, secret, request_id, read) as request:
            # The items a stream works through (a bulk request's features) are checked one
            # by one, so one bad item fails alone, not the whole stream.
            check_required(request, skip=STREAMED_ITEMS)
            # A streaming RPC's handler is an async generator (Method.streaming).
            stream = cast(AsyncIterator[Message], self.methods[method].handler(request, self.deps))
            while True:
                # Whichever task is waiting for the next message can be cut off at the grace.
                with self._cuttable("stream"):
                    try:
                        message = await anext(stream)
                    except StopAsyncIteration:
                        break
                yield message

    async def _dispatch(
        self, method: str, request: Message, time_remaining: float | None = None
    ) -> Message:
        check_required(request)
        stats = current_request.get()
        if stats is not None:
            stats.deadline = deadline_of(self.request_timeout_s, time_remaining)
        timeout = asyncio.timeout(self.request_timeout_s)
        try:
            async with timeout:
                # A unary RPC's handler is a coroutine function.
                return await cast(
                    Awaitable[Message], self.methods[method].handler(request, self.deps)
                )
        except TimeoutError:
            if not timeout.expired():
                raise
            raise DeadlineExceeded(
                f"The request did not finish within the server's limit of "
                f"{self.request_timeout_s:g} s"
            ) from None
