"""The REST door's HTTP/1.1 protocol: uvicorn's h11 protocol with a deadline on request heads.

uvicorn bounds idle keep-alive connections but not a client that sends its request head one
byte at a time (slowloris): each such connection would stay open for ever. Here every request
head must arrive within ``head_timeout_s`` of its first byte (of the connection, for the first
request), or the connection is closed. Head size is bounded by h11's
``max_incomplete_event_size`` (``AUTOINTERP_MAX_HEADER_BYTES``; beyond it, 400 in the
service's JSON error shape), and a slow body by the gateway's own read deadline.
"""

from __future__ import annotations

import asyncio
import json
import uuid

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from autointerp_grpc.service import REQUEST_ID_HEADER


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

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to a request it cannot parse (e.g. a head over the size cap), in
        the service's one error shape: ``{"detail", "code"}`` JSON with a request id."""
        body = json.dumps({"detail": msg, "code": "INVALID_ARGUMENT"}).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (REQUEST_ID_HEADER.encode(), uuid.uuid4().hex.encode()),
            (b"connection", b"close"),
        ]
        try:
            for event in (
                h11.Response(status_code=400, headers=headers, reason=b"Bad Request"),
                h11.Data(data=body),
                h11.EndOfMessage(),
            ):
                self.transport.write(self.conn.send(event))
        except h11.LocalProtocolError:
            pass  # the connection's state allows no response any more: just close it
        self.transport.close()

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
