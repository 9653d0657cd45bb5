"""The REST door's HTTP/1.1 protocol: uvicorn's h11 protocol with a deadline on request heads.

uvicorn bounds idle keep-alive connections but not a client that sends its request head one
byte at a time (slowloris): each such connection would stay open for ever. Here every request
head must arrive within ``head_timeout_s`` of its first byte (of the connection, for the first
request), or the connection is closed.

Head size: h11's ``max_incomplete_event_size`` counts only the bytes it has not parsed yet, so
a head that arrives in one read of the socket (up to 256 KiB) passes it. Here every byte of a
request head is counted as it arrives — a head pipelined behind another request, buffered
while that one ran, once its response is out — and a head longer than ``max_head_bytes``
(``AUTOINTERP_MAX_HEADER_BYTES``) is answered 400, in the service's JSON error shape, before
h11 parses it. A slow body is bounded by the RPC routes' own read deadline
(:mod:`autointerp_grpc.rest.routes`).
"""

from __future__ import annotations

import asyncio
import json
import uuid

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from autointerp_grpc.service import REQUEST_ID_HEADER


class GuardedH11Protocol(H11Protocol):
    """uvicorn's ``H11Protocol`` plus a deadline on each request head."""

    head_timeout_s: float = 10.0
    max_head_bytes: int = 65536
    _head_timer: asyncio.TimerHandle | None = None
    _head_bytes: int = 0
    """Bytes of the current request head received so far."""
    _head_tail: bytes = b""
    """The last bytes of the head so far (an end-of-head mark may span two reads)."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        if self._reading_head() and not self._head_within_limit(data):
            self.send_400_response(self._too_large)
            return
        super().data_received(data)
        if not self._reading_head():
            self._disarm()
            self._head_bytes, self._head_tail = 0, b""
        elif self._head_timer is None:
            self._arm()  # the next request's head has begun to arrive

    def on_response_complete(self) -> None:
        """A response is out: what the client pipelined behind its request while it ran was
        buffered by h11 uncounted; it is the start of the next head, so count it now."""
        self._head_bytes, self._head_tail = 0, b""
        if self.conn.our_state is h11.DONE and self.conn.their_state is h11.DONE:
            buffered, _ = self.conn.trailing_data
            if not self._head_within_limit(buffered):
                self.conn.start_next_cycle()  # a response may be sent in the next cycle only
                self.send_400_response(self._too_large)
                return
        super().on_response_complete()
        if self._reading_head() and self._head_bytes and self._head_timer is None:
            self._arm()  # the next head has begun to arrive (pipelined)

    @property
    def _too_large(self) -> str:
        return f"The request head is larger than the limit of {self.max_head_bytes} bytes"

    def _head_within_limit(self, data: bytes) -> bool:
        """Count ``data`` against the head limit: the bytes up to the end of the head (a
        blank line) if it is in ``data``, else all of them."""
        seen = self._head_tail + data if self._head_tail else data
        # Only the first bytes can end a head within the limit: the search stops there.
        end = seen.find(b"\r\n\r\n", 0, self.max_head_bytes + len(self._head_tail) + 1)
        if end >= 0:
            size = self._head_bytes - len(self._head_tail) + end + 4
        else:
            size = self._head_bytes + len(data)
            self._head_tail = seen[-3:]
        self._head_bytes = size
        return size <= self.max_head_bytes

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


def guarded_protocol(
    head_timeout_s: float, max_head_bytes: int = 65536
) -> type[GuardedH11Protocol]:
    """The protocol class with this server's head deadline and head size limit (uvicorn takes
    a class)."""
    return type(
        "GuardedH11Protocol",
        (GuardedH11Protocol,),
        {"head_timeout_s": head_timeout_s, "max_head_bytes": max_head_bytes},
    )


def install(config: uvicorn.Config, head_timeout_s: float, max_head_bytes: int) -> None:
    """Make a uvicorn server built from ``config`` serve with the guarded protocol, whatever
    its ``--http`` said: ``config.http`` (a class is taken as is when ``config.load()`` runs)
    and, if it has run, the class it resolved. uvicorn builds each connection's protocol from
    ``config.http_protocol_class`` when the connection is made, so this works until the
    server starts listening."""
    protocol = guarded_protocol(head_timeout_s, max_head_bytes)
    config.http = protocol
    if config.loaded or hasattr(config, "http_protocol_class"):
        config.http_protocol_class = protocol
    config.h11_max_incomplete_event_size = max_head_bytes
