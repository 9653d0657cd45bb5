"""The blocking client: a grpc channel, and the generated per-RPC methods."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from types import TracebackType
from typing import Any

import grpc

from autointerp_grpc.client._rpcs import SyncRpcs
from autointerp_grpc.client.targets import channel_options
from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2 as pb
from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2_grpc as pb_grpc


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


class AutoInterpClient(SyncRpcs[EventStream]):
    """Blocking client. ``timeout`` is the default deadline (seconds) of the unary calls.

    One method per RPC: ``list_methods()``, ``explain(request)``, ``score(request)``,
    ``explain_default(request)``, ``score_embedding(request)``,
    ``score_fuzz_detection(request)`` return the response; ``explain_and_score(request)``
    returns an :class:`EventStream` (per finished feature, an event with ``result`` then one
    with ``progress``; no deadline unless ``timeout`` is given, as a bulk run's length grows
    with its size). Each also takes keyword-only ``timeout`` and ``request_id``.

    Every method raises :class:`grpc.RpcError` when the call fails (``.code()``,
    ``.details()``), TypeError / json_format.ParseError when the request is malformed.
    """

    _stream_cls = EventStream

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
