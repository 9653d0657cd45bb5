"""The REST door's HTTP protocol answers what its parser refuses in the service's one error
shape."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator

import h11
import uvicorn

from autointerp_grpc.rest.http_protocol import GuardedH11Protocol, guarded_protocol


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


# --- the head size limit counts every byte of a head, however it arrives ------------------

LIMIT = 4096


async def _echo_app(scope, receive, send) -> None:
    if scope["type"] != "http":
        return
    size = 0
    while True:
        message = await receive()
        size += len(message.get("body", b""))
        if not message.get("more_body"):
            break
    body = json.dumps({"body_bytes": size}).encode()
    headers = [(b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@contextlib.asynccontextmanager
async def _server(head_timeout_s: float = 5.0) -> AsyncIterator[int]:
    config = uvicorn.Config(
        _echo_app,
        host="127.0.0.1",
        port=0,
        http=guarded_protocol(head_timeout_s, LIMIT),
        h11_max_incomplete_event_size=LIMIT,
        log_level="critical",
        lifespan="off",
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield port
    finally:
        server.should_exit = True
        await task


def _head(header_bytes: int, *, body: int = 0) -> bytes:
    head = (
        f"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: {body}\r\n"
        f"x-pad: {'a' * header_bytes}\r\n\r\n"
    ).encode()
    return head + b"b" * body


async def _exchange(port: int, *chunks: bytes, responses: int = 1) -> list[bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for chunk in chunks:
            writer.write(chunk)
            await writer.drain()
            await asyncio.sleep(0.02)  # separate reads on the server
        answers = []
        for _ in range(responses):
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            length = int(
                next(
                    line.split(b":", 1)[1]
                    for line in head.lower().split(b"\r\n")
                    if line.startswith(b"content-length")
                )
            )
            answers.append(head + await reader.readexactly(length))
        return answers
    finally:
        writer.close()


async def test_a_head_over_the_limit_in_one_read_is_refused() -> None:
    """Regression (issue 11, item 4): h11 counts only bytes it has not parsed, so a 70 KiB head
    arriving in one read passed a 64 KiB cap. Every byte of the head is counted now."""
    async with _server() as port:
        (answer,) = await _exchange(port, _head(3 * LIMIT))
        head, body = answer.split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.1 400")
        assert json.loads(body) == {
            "detail": f"The request head is larger than the limit of {LIMIT} bytes",
            "code": "INVALID_ARGUMENT",
        }


async def test_a_head_over_the_limit_in_pieces_is_refused() -> None:
    async with _server() as port:
        # An unfinished head, 1,000 bytes a read, until it passes the limit.
        data = _head(2 * LIMIT)[: LIMIT + 1000]
        pieces = [data[i : i + 1000] for i in range(0, len(data), 1000)]
        (answer,) = await _exchange(port, *pieces)
        assert answer.startswith(b"HTTP/1.1 400")


async def test_heads_within_the_limit_pass_however_they_arrive() -> None:
    async with _server() as port:
        data = _head(LIMIT - 200)
        end = data.index(b"\r\n\r\n")
        # The blank line that ends the head split across two reads.
        (answer,) = await _exchange(port, data[: end + 2], data[end + 2 :])
        assert answer.startswith(b"HTTP/1.1 200")
        (answer,) = await _exchange(port, data)
        assert answer.startswith(b"HTTP/1.1 200")


async def test_the_body_does_not_count_against_the_head_limit() -> None:
    async with _server() as port:
        (answer,) = await _exchange(port, _head(100, body=20 * LIMIT))
        assert answer.startswith(b"HTTP/1.1 200")
        assert answer.endswith(json.dumps({"body_bytes": 20 * LIMIT}).encode())


async def test_each_request_of_a_connection_gets_the_whole_limit() -> None:
    async with _server() as port:
        one = _head(LIMIT - 200)
        answers = await _exchange(port, one, one, one, responses=3)
        assert all(a.startswith(b"HTTP/1.1 200") for a in answers)


async def test_a_head_over_the_limit_pipelined_behind_a_request_is_refused() -> None:
    """Regression (issue 17, item 11): a request pipelined behind another in the same write
    was buffered while the first one ran, uncounted: a 70,000-byte head got a 200 where the
    same head alone gets a 400."""
    first = b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n"
    for chunks in ([first + _head(3 * LIMIT)], [first, _head(3 * LIMIT)]):
        async with _server() as port:
            answers = await _exchange(port, *chunks, responses=2)
            assert answers[0].startswith(b"HTTP/1.1 200")
            head, body = answers[1].split(b"\r\n\r\n", 1)
            assert head.startswith(b"HTTP/1.1 400"), answers[1][:200]
            assert json.loads(body)["detail"] == (
                f"The request head is larger than the limit of {LIMIT} bytes"
            )


async def test_heads_within_the_limit_pipelined_in_one_write_pass() -> None:
    async with _server() as port:
        one = _head(LIMIT - 200)
        answers = await _exchange(port, one + one + one, responses=3)
        assert all(a.startswith(b"HTTP/1.1 200") for a in answers)


async def test_a_partial_head_pipelined_behind_a_request_has_the_head_deadline() -> None:
    """The deadline of a head pipelined behind another request runs from the first
    request's response (uvicorn's keep-alive timer, 5 s, would close it later)."""
    async with _server(head_timeout_s=0.5) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(b"GET / HTTP/1.1\r\nhost: x\r\n\r\nPOST / HTTP/1.1\r\nhost: x\r\n")
            await writer.drain()
            began = asyncio.get_running_loop().time()
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            assert head.startswith(b"HTTP/1.1 200")
            await asyncio.wait_for(reader.read(), 5)  # the body, then EOF when it closes
            assert asyncio.get_running_loop().time() - began < 2
        finally:
            writer.close()
