"""The asyncio client: a grpc.aio channel, and the generated per-RPC methods."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from types import TracebackType

import grpc.aio

from autointerp_grpc.client._rpcs import AsyncRpcs
from autointerp_grpc.client.targets import channel_options
from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2 as pb
from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2_grpc as pb_grpc


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
        # typeshed's grpc.aio stub lacks EOF (the sentinel read() returns at the end).
        if event is grpc.aio.EOF:  # pyright: ignore[reportAttributeAccessIssue]
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


class AsyncAutoInterpClient(AsyncRpcs[AsyncEventStream]):
    """asyncio client (grpc.aio); create it inside the event loop that uses it.

    The same methods as :class:`~autointerp_grpc.client.AutoInterpClient`. The unary ones
    return the grpc.aio call, an awaitable: ``await client.explain(...)`` gives the response
    (the call object also offers ``initial_metadata()`` and ``cancel()``).
    ``explain_and_score(...)`` is not a coroutine: it returns an :class:`AsyncEventStream` at
    once; ``async for event in stream``. ``timeout`` is the default deadline (seconds) of the
    unary calls. Awaiting a failed call raises :class:`grpc.RpcError`
    (``grpc.aio.AioRpcError``); a malformed request raises TypeError /
    json_format.ParseError at once.
    """

    _stream_cls = AsyncEventStream

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
