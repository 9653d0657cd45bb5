"""A typed Python client for the autointerp gRPC service, sync and async.

    from autointerp_grpc.client import AutoInterpClient

    with AutoInterpClient("127.0.0.1:50051", secret=os.environ.get("SECRET")) as client:
        methods = client.list_methods()
        answer = client.explain({"method": "default", "activations": [...],
                                 "llm": {"model": "openai/gpt-4o-mini", "apiKey": key}})
        for event in client.explain_and_score({...}):
            ...

``servers`` is one ``host:port`` or several (``"a:50051,b:50051"`` or a list): with several,
the channel balances calls and streams over them round-robin (see :func:`grpc_target`).
Requests are proto messages or dicts in proto3 JSON form (camelCase or snake_case field
names). The shared secret travels as ``x-secret-key`` metadata and every call carries an
``x-request-id`` (a fresh uuid4 hex unless you pass ``request_id=``), which the server logs
and echoes.

Errors: a failed call raises :class:`grpc.RpcError` (sync: also a :class:`grpc.Call`; async:
a :class:`grpc.aio.AioRpcError`); either way ``error.code()`` is the :class:`grpc.StatusCode`
and ``error.details()`` the server's message (which never contains the secret or API keys).
A stream raises it from the iteration.
"""

from __future__ import annotations

import ipaddress
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Iterator, Mapping, Sequence
from types import TracebackType
from typing import Any, TypeVar

import grpc
import grpc.aio
from google.protobuf import json_format
from google.protobuf.message import Message

from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2 as pb
from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2_grpc as pb_grpc

__all__ = [
    "REQUEST_ID_METADATA",
    "SECRET_METADATA",
    "AsyncAutoInterpClient",
    "AsyncEventStream",
    "AutoInterpClient",
    "EventStream",
    "RequestLike",
    "channel_options",
    "grpc_target",
    "split_servers",
    "to_message",
]

SECRET_METADATA = "x-secret-key"  # noqa: S105  (a metadata key, not a secret)
REQUEST_ID_METADATA = "x-request-id"
ROUND_ROBIN_SERVICE_CONFIG = '{"loadBalancingConfig": [{"round_robin": {}}]}'
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
"""Largest message the client sends or accepts (the server enforces its own request cap)."""

M = TypeVar("M", bound=Message)
RequestLike = Message | Mapping[str, Any]
"""A request: the proto message itself, or a dict in proto3 JSON form."""


# ---- targets -------------------------------------------------------------------------------


def split_servers(servers: str | Sequence[str]) -> list[str]:
    """``"a:1, b:2"`` or ``["a:1", "b:2"]`` → ``["a:1", "b:2"]`` (blanks and repeats dropped)."""
    items = servers.split(",") if isinstance(servers, str) else list(servers)
    out: list[str] = []
    for item in items:
        address = item.strip()
        if address and address not in out:
            out.append(address)
    if not out:
        raise ValueError("no server address given")
    return out


def _host_port(address: str) -> tuple[str, int]:
    """Split ``host:port`` / ``[v6]:port`` / ``ipv4:host:port``; the port is required."""
    for scheme in ("ipv4:", "ipv6:", "dns:///", "dns:"):
        if address.startswith(scheme):
            address = address[len(scheme) :]
            break
    if address.startswith("["):
        host, sep, rest = address[1:].partition("]")
        port_text = rest[1:] if sep and rest.startswith(":") else ""
    else:
        host, _, port_text = address.rpartition(":")
    if not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"server address {address!r} is not host:port")
    return host, int(port_text)


def _resolve(host: str, port: int) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """One address of ``host``: the first IPv4 one when it has any, else the first IPv6 one."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ValueError(f"cannot resolve server host {host!r}: {exc.strerror}") from exc
    addresses = [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]
    v4 = [a for a in addresses if a.version == 4]
    if v4:
        return v4[0]
    if addresses:
        return addresses[0]
    raise ValueError(f"cannot resolve server host {host!r}: no address")


def grpc_target(servers: str | Sequence[str]) -> str:
    """The gRPC target for one or several servers.

    One address is returned as it is (gRPC's default DNS resolver handles it). Several become
    one ``ipv4:`` (or ``ipv6:``) target listing every server's IP and port, which a channel with
    the round-robin policy (:func:`channel_options`) balances calls over; host names are resolved
    here first (IPv4 preferred). Raises ValueError for a malformed address, an unresolvable host,
    or a mix of IPv4-only and IPv6-only servers (gRPC targets take one family).
    """
    addresses = split_servers(servers)
    if len(addresses) == 1:
        return addresses[0]
    resolved = [(_resolve(host, port), port) for host, port in map(_host_port, addresses)]
    families = {ip.version for ip, _ in resolved}
    if len(families) > 1:
        raise ValueError("servers mix IPv4 and IPv6 addresses; give them all in one family")
    endpoints: list[str] = []
    for ip, port in resolved:
        endpoint = f"{ip}:{port}" if ip.version == 4 else f"[{ip}]:{port}"
        if endpoint not in endpoints:
            endpoints.append(endpoint)
    if len(endpoints) == 1:
        return endpoints[0]
    scheme = "ipv4" if families == {4} else "ipv6"
    return f"{scheme}:{','.join(endpoints)}"


def channel_options() -> list[tuple[str, Any]]:
    """Channel options: round-robin load balancing and 64 MiB message limits."""
    return [
        ("grpc.service_config", ROUND_ROBIN_SERVICE_CONFIG),
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ]


# ---- requests ------------------------------------------------------------------------------


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


class _Base:
    """What the sync and async clients share: target, metadata, deadlines, unary calls."""

    _stub: Any  # the sync or grpc.aio stub, set by the subclass

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

    def _unary(
        self,
        name: str,
        request: RequestLike,
        cls: type[Message],
        timeout: float | None,
        request_id: str | None,
    ) -> Any:
        """Call unary RPC ``name`` on the subclass's stub (sync: the response; async: the
        awaitable call)."""
        message = to_message(request, cls)
        return getattr(self._stub, name)(
            message, timeout=self._timeout(timeout), metadata=self._metadata(request_id)
        )


# ---- sync ----------------------------------------------------------------------------------


class EventStream(Iterator[pb.ExplainAndScoreEvent]):
    """The events of one ExplainAndScore call; iterate it, or ``cancel()`` it.

    A failed stream raises :class:`grpc.RpcError` from ``next()``. As a context manager it
    cancels the call on exit if it is still running.
    """

    def __init__(self, call: Any, request_id: str) -> None:
        self._call = call
        self.request_id = request_id
        """The x-request-id this call was sent with."""

    def __next__(self) -> pb.ExplainAndScoreEvent:
        return next(self._call)

    def cancel(self) -> bool:
        """Cancel the call; True if it was still running."""
        return bool(self._call.cancel())

    def __enter__(self) -> EventStream:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.cancel()


class AutoInterpClient(_Base):
    """Blocking client. ``timeout`` is the default deadline (seconds) of the unary calls.

    Every method raises :class:`grpc.RpcError` when the call fails (``.code()``,
    ``.details()``), TypeError / json_format.ParseError when the request is malformed.
    """

    def __init__(
        self,
        servers: str | Sequence[str],
        *,
        secret: str | None = None,
        timeout: float | None = None,
    ) -> None:
        super().__init__(servers, secret=secret, timeout=timeout)
        self.channel = grpc.insecure_channel(self.target, options=channel_options())
        self._stub = pb_grpc.AutoInterpStub(self.channel)

    def close(self) -> None:
        """Close the channel (cancels calls in flight)."""
        self.channel.close()

    def __enter__(self) -> AutoInterpClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def list_methods(
        self, *, timeout: float | None = None, request_id: str | None = None
    ) -> pb.ListMethodsResponse:
        """Every explainer and scorer, with parameters and metrics; and the LLM providers."""
        return self._unary("ListMethods", {}, pb.ListMethodsRequest, timeout, request_id)

    def explain(
        self, request: RequestLike, *, timeout: float | None = None, request_id: str | None = None
    ) -> pb.ExplainResponse:
        """Explain with any explainer (``ExplainRequest``)."""
        return self._unary("Explain", request, pb.ExplainRequest, timeout, request_id)

    def score(
        self, request: RequestLike, *, timeout: float | None = None, request_id: str | None = None
    ) -> pb.ScoreResponse:
        """Score with any scorer (``ScoreRequest``)."""
        return self._unary("Score", request, pb.ScoreRequest, timeout, request_id)

    def explain_default(
        self, request: RequestLike, *, timeout: float | None = None, request_id: str | None = None
    ) -> pb.ExplainDefaultResponse:
        """The legacy explain/default call (``ExplainDefaultRequest``)."""
        return self._unary("ExplainDefault", request, pb.ExplainDefaultRequest, timeout, request_id)

    def score_embedding(
        self, request: RequestLike, *, timeout: float | None = None, request_id: str | None = None
    ) -> pb.ScoreEmbeddingResponse:
        """The legacy score/embedding call (``ScoreEmbeddingRequest``)."""
        return self._unary("ScoreEmbedding", request, pb.ScoreEmbeddingRequest, timeout, request_id)

    def score_fuzz_detection(
        self, request: RequestLike, *, timeout: float | None = None, request_id: str | None = None
    ) -> pb.ScoreFuzzDetectionResponse:
        """The legacy score/fuzz-detection call (``ScoreFuzzDetectionRequest``)."""
        return self._unary(
            "ScoreFuzzDetection", request, pb.ScoreFuzzDetectionRequest, timeout, request_id
        )

    def explain_and_score(
        self, request: RequestLike, *, timeout: float | None = None, request_id: str | None = None
    ) -> EventStream:
        """Explain and score many features (``ExplainAndScoreRequest``), streaming events.

        Per finished feature, an event with ``result`` then one with ``progress``. No deadline
        unless ``timeout`` is given (a bulk run's length grows with its size).
        """
        message = to_message(request, pb.ExplainAndScoreRequest)
        request_id = request_id or uuid.uuid4().hex
        call = self._stub.ExplainAndScore(
            message,
            timeout=self._timeout(timeout, stream=True),
            metadata=self._metadata(request_id),
        )
        return EventStream(call, request_id)


# ---- async ---------------------------------------------------------------------------------


class AsyncEventStream(AsyncIterator[pb.ExplainAndScoreEvent]):
    """The events of one ExplainAndScore call (async); ``async for`` it, or ``cancel()`` it.

    A failed stream raises :class:`grpc.RpcError` (a :class:`grpc.aio.AioRpcError`) from the
    iteration. As an async context manager it cancels the call on exit if still running.
    """

    def __init__(self, call: grpc.aio.UnaryStreamCall, request_id: str) -> None:
        self._call = call
        self.request_id = request_id
        """The x-request-id this call was sent with."""

    async def __anext__(self) -> pb.ExplainAndScoreEvent:
        event = await self._call.read()
        if event is grpc.aio.EOF:
            raise StopAsyncIteration
        return event  # type: ignore[return-value]

    def cancel(self) -> bool:
        """Cancel the call; True if it was still running."""
        return bool(self._call.cancel())

    async def __aenter__(self) -> AsyncEventStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.cancel()


class AsyncAutoInterpClient(_Base):
    """asyncio client (grpc.aio); create it inside the event loop that uses it.

    The unary methods return the grpc.aio call, an awaitable: ``await client.explain(...)``
    gives the response (the call object also offers ``initial_metadata()`` and ``cancel()``).
    ``timeout`` is the default deadline (seconds) of the unary calls. Awaiting a failed call
    raises :class:`grpc.RpcError` (``grpc.aio.AioRpcError``); a malformed request raises
    TypeError / json_format.ParseError at once.
    """

    def __init__(
        self,
        servers: str | Sequence[str],
        *,
        secret: str | None = None,
        timeout: float | None = None,
    ) -> None:
        super().__init__(servers, secret=secret, timeout=timeout)
        self.channel = grpc.aio.insecure_channel(self.target, options=channel_options())
        self._stub = pb_grpc.AutoInterpStub(self.channel)

    async def close(self) -> None:
        """Close the channel (cancels calls in flight)."""
        await self.channel.close()

    async def __aenter__(self) -> AsyncAutoInterpClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def list_methods(
        self, *, timeout: float | None = None, request_id: str | None = None
    ) -> Awaitable[pb.ListMethodsResponse]:
        """Every explainer and scorer, with parameters and metrics; and the LLM providers."""
        return self._unary("ListMethods", {}, pb.ListMethodsRequest, timeout, request_id)

    def explain(
        self, request: RequestLike, *, timeout: float | None = None, request_id: str | None = None
    ) -> Awaitable[pb.ExplainResponse]:
        """Explain with any explainer (``ExplainRequest``)."""
        return self._unary("Explain", request, pb.ExplainRequest, timeout, request_id)

    def score(
        self, request: RequestLike, *, timeout: float | None = None, request_id: str | None = None
    ) -> Awaitable[pb.ScoreResponse]:
        """Score with any scorer (``ScoreRequest``)."""
        return self._unary("Score", request, pb.ScoreRequest, timeout, request_id)

    def explain_default(
        self, request: RequestLike, *, timeout: float | None = None, request_id: str | None = None
    ) -> Awaitable[pb.ExplainDefaultResponse]:
        """The legacy explain/default call (``ExplainDefaultRequest``)."""
        return self._unary("ExplainDefault", request, pb.ExplainDefaultRequest, timeout, request_id)

    def score_embedding(
        self, request: RequestLike, *, timeout: float | None = None, request_id: str | None = None
    ) -> Awaitable[pb.ScoreEmbeddingResponse]:
        """The legacy score/embedding call (``ScoreEmbeddingRequest``)."""
        return self._unary("ScoreEmbedding", request, pb.ScoreEmbeddingRequest, timeout, request_id)

    def score_fuzz_detection(
        self, request: RequestLike, *, timeout: float | None = None, request_id: str | None = None
    ) -> Awaitable[pb.ScoreFuzzDetectionResponse]:
        """The legacy score/fuzz-detection call (``ScoreFuzzDetectionRequest``)."""
        return self._unary(
            "ScoreFuzzDetection", request, pb.ScoreFuzzDetectionRequest, timeout, request_id
        )

    def explain_and_score(
        self, request: RequestLike, *, timeout: float | None = None, request_id: str | None = None
    ) -> AsyncEventStream:
        """Explain and score many features (``ExplainAndScoreRequest``), streaming events.

        Not a coroutine: returns the stream at once; ``async for event in stream``. Per finished
        feature, an event with ``result`` then one with ``progress``. No deadline unless
        ``timeout`` is given.
        """
        message = to_message(request, pb.ExplainAndScoreRequest)
        request_id = request_id or uuid.uuid4().hex
        call = self._stub.ExplainAndScore(
            message,
            timeout=self._timeout(timeout, stream=True),
            metadata=self._metadata(request_id),
        )
        return AsyncEventStream(call, request_id)
