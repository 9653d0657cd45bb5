"""The REST door's HTTP protocol answers what its parser refuses in the service's one error
shape."""

from __future__ import annotations

import json

import h11

from autointerp_grpc.http_protocol import GuardedH11Protocol


class _Transport:
    def __init__(self) -> None:
        self.data = b""
        self.closed = False

    def write(self, data: bytes) -> None:
        self.data += data

    def close(self) -> None:
        self.closed = True


def test_a_refused_request_gets_the_json_error_shape_with_a_request_id() -> None:
    protocol = GuardedH11Protocol.__new__(GuardedH11Protocol)
    protocol.conn = h11.Connection(h11.SERVER)
    transport = _Transport()
    protocol.transport = transport  # type: ignore[assignment]
    protocol.send_400_response("Invalid HTTP request received.")
    head, body = transport.data.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 400")
    assert b"content-type: application/json" in head.lower()
    assert b"x-request-id: " in head.lower()
    assert json.loads(body) == {
        "detail": "Invalid HTTP request received.",
        "code": "INVALID_ARGUMENT",
    }
    assert transport.closed
