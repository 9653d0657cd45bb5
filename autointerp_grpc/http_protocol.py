"""The REST door's HTTP/1.1 protocol: uvicorn's h11 protocol with a deadline on request heads.

uvicorn bounds idle keep-alive connections but not a client that sends its request head one
byte at a time (slowloris): each such connection would stay open for ever. Here every request
head must arrive within ``head_timeout_s`` of its first byte (of the connection, for the first
request), or the connection is closed. Head size is bounded by h11's
``max_incomplete_event_size`` (``AUTOINTERP_MAX_HEADER_BYTES``; beyond it, 400), and a slow
body by the gateway's own read deadline.
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.h11_impl import H11Protocol


class GuardedH11Protocol(H11Protocol):
    """uvicorn's ``H11Protocol`` plus a deadline on each request head."""

    head_timeout_s: float = 10.0
    _head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if not self._reading_head():
            self._disarm()
        elif self._head_timer is None:
            self._arm()  # the next request's head has begun to arrive

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _reading_head(self) -> bool:
        return self.cycle is None or self.cycle.response_complete

    def _arm(self) -> None:
        self._disarm()
        self._head_timer = self.loop.call_later(self.head_timeout_s, self._head_expired)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_expired(self) -> None:
        self._head_timer = None
        if self._reading_head() and not self.transport.is_closing():
            self.transport.close()


def guarded_protocol(head_timeout_s: float) -> type[GuardedH11Protocol]:
    """The protocol class with this server's head deadline (uvicorn takes a class)."""
    return type("GuardedH11Protocol", (GuardedH11Protocol,), {"head_timeout_s": head_timeout_s})
