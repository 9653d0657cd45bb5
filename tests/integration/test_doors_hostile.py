"""Hostile input at the two doors (issue 17): huge JSON integers, request ids that are not
safe to echo or log, a second instance on an occupied gRPC port, a legacy launch line
without the head deadline."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from support import REPO, free_port

from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2 as pb
from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2_grpc as pb_grpc
from autointerp_grpc.rest.routes import http_bindings

# --- item 5: integers JSON allows but no number field can hold ------------------------------

JSON_ROUTES = [b.path for b in http_bindings() if b.body == "*"]


def _body_with_value(path: str, literal: str) -> bytes:
    record = '{"tokens": ["a", "b"], "values": [0, ' + literal + "]}"
    if path == "/v1/explain-and-score":
        return ('{"features": [{"id": "f1", "activations": [' + record + "]}]}").encode()
    return ('{"activations": [' + record + '], "explanation": "x"}').encode()


def test_every_json_route_is_covered() -> None:
    assert len(JSON_ROUTES) == 6, JSON_ROUTES


@pytest.mark.parametrize("path", JSON_ROUTES)
@pytest.mark.parametrize("digits", [310, 400, 5000, 100_000])
async def test_a_huge_integer_is_a_400_naming_the_field(app, path: str, digits: int) -> None:
    """Regression (issue 17, item 5): a 310-digit integer raised OverflowError in json_format
    and one over 4,300 digits a ValueError in json.loads: both were 500s."""
    headers = {**app.headers, "Content-Type": "application/json"}
    for literal in ("9" * digits, "-" + "9" * digits):
        response = await app.rest.post(path, content=_body_with_value(path, literal),
                                       headers=headers)  # fmt: skip
        assert response.status_code == 400, response.text
        body = response.json()
        assert body["code"] == "INVALID_ARGUMENT"
        assert "values" in body["detail"], body
        assert "out of range" in body["detail"], body
        assert "999" not in body["detail"]


@pytest.mark.parametrize("path", JSON_ROUTES)
async def test_large_integers_a_double_can_hold_still_parse(app, path: str) -> None:
    """A 300-digit integer is a valid double (1e299): parsed, not refused as out of range."""
    headers = {**app.headers, "Content-Type": "application/json"}
    response = await app.rest.post(path, content=_body_with_value(path, "1" + "0" * 299),
                                   headers=headers)  # fmt: skip
    assert "out of range" not in response.text


async def test_an_integer_field_past_64_bits_names_the_field(app) -> None:
    headers = {**app.headers, "Content-Type": "application/json"}
    body = _body_with_value("/v1/explain", "1")[:-1] + b', "llm": {"maxTokens": %s}}' % (b"9" * 400)
    response = await app.rest.post("/v1/explain", content=body, headers=headers)
    assert response.status_code == 400, response.text
    assert response.json()["detail"] == (
        "Invalid request body: llm.maxTokens is out of range (a number its type cannot hold)"
    )


# --- items 6 and 12: request ids are echoed and logged only when safe ----------------------

SAFE_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
GENERATED_ID = re.compile(r"[0-9a-f]{32}")
UNSAFE_IDS = [
    "a b status=OK rpc=Fake",
    "id\tstatus=OK",
    'x" injected="1',
    "é€",
    "a" * 129,
    "line\nbreak",
]


@pytest.mark.parametrize("given", UNSAFE_IDS)
async def test_an_unsafe_rest_request_id_is_replaced(app, given: str) -> None:
    """Regression (issue 17, item 12): an id with spaces was echoed and logged raw, so a caller
    could forge `status=OK rpc=...` in the text log."""
    headers = {**app.headers, "Content-Type": "application/json"}
    raw = [(k.encode(), v.encode()) for k, v in headers.items()]
    raw.append((b"x-request-id", given.encode("utf-8")))
    for path in ("/v1/score/embedding", "/health", "/no-such-route"):
        method = "POST" if path == "/v1/score/embedding" else "GET"
        response = await app.rest.request(method, path, content=b"{", headers=raw)
        echoed = response.headers["x-request-id"]
        assert GENERATED_ID.fullmatch(echoed), (path, echoed)
    log = app.log_text()
    assert "status=OK rpc=Fake" not in log
    assert given not in log


async def test_a_safe_request_id_round_trips(app) -> None:
    given = "req-1.2:3_A"
    response = await app.rest.get("/health", headers={"x-request-id": given})
    assert response.headers["x-request-id"] == given


async def _grpc_call(app, request_id: bytes | str) -> tuple[grpc.StatusCode, str]:
    async with grpc.aio.insecure_channel(app.grpc_target) as channel:
        stub = pb_grpc.AutoInterpStub(channel)
        call = stub.ListMethods(
            pb.ListMethodsRequest(), metadata=(*app.auth, ("x-request-id", request_id))
        )
        await call
        echoed = dict(await call.initial_metadata())["x-request-id"]
        return await call.code(), echoed


# (grpc itself refuses to send a tab or a line break, and a str that is not ASCII.)
@pytest.mark.parametrize("given", [UNSAFE_IDS[0], UNSAFE_IDS[2], UNSAFE_IDS[4]])
async def test_an_unsafe_grpc_request_id_is_replaced(app, given: str) -> None:
    code, echoed = await _grpc_call(app, given)
    assert code == grpc.StatusCode.OK
    assert GENERATED_ID.fullmatch(echoed), echoed
    assert given not in app.log_text()


def _hpack_int(value: int, prefix_bits: int, first: int = 0) -> bytes:
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([first | value])
    out, value = bytearray([first | limit]), value - limit
    while value >= 128:
        out.append(value % 128 + 128)
        value //= 128
    return bytes([*out, value])


def _hpack_literal(name: bytes, value: bytes) -> bytes:
    """A header field as an HPACK literal without indexing, no Huffman coding."""
    return _hpack_int(0, 4) + _hpack_int(len(name), 7) + name + _hpack_int(len(value), 7) + value


def _frame(kind: int, flags: int, stream: int, payload: bytes) -> bytes:
    return (
        len(payload).to_bytes(3, "big") + bytes([kind, flags]) + stream.to_bytes(4, "big") + payload
    )


async def _raw_grpc_call(
    target: str, headers: list[tuple[bytes, bytes]]
) -> list[tuple[int, int, bytes]]:
    """A unary gRPC call (an empty message) on a hand-made HTTP/2 connection, so header values
    grpc's own client refuses to send (UTF-8 bytes) reach the server. The frames that came
    back: (type, flags, payload), up to the one that ends the stream."""
    host, port = target.rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    block = b"".join(_hpack_literal(k, v) for k, v in headers)
    writer.write(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + _frame(4, 0, 0, b""))
    writer.write(_frame(1, 0x4, 1, block) + _frame(0, 0x1, 1, b"\x00\x00\x00\x00\x00"))
    await writer.drain()
    frames = []
    try:
        while True:
            head = await asyncio.wait_for(reader.readexactly(9), 10)
            length, kind, flags = int.from_bytes(head[:3], "big"), head[3], head[4]
            payload = await reader.readexactly(length)
            if kind == 4 and not flags & 0x1:
                writer.write(_frame(4, 0x1, 0, b""))  # ack the server's settings
            frames.append((kind, flags, payload))
            if kind in (3, 7) or (kind in (0, 1) and flags & 0x1):  # RST, GOAWAY, END_STREAM
                return frames
    finally:
        writer.close()


async def test_a_non_ascii_grpc_request_id_is_replaced_not_an_internal_error(app) -> None:
    """Regression (issue 17, item 6): UTF-8 bytes in x-request-id were echoed in the initial
    metadata, which grpc refuses: INTERNAL "Invalid metadata", an ERROR traceback per call,
    no request log line, no metric."""
    before = app.log_text()
    frames = await _raw_grpc_call(
        app.grpc_target,
        [
            (b":method", b"POST"),
            (b":scheme", b"http"),
            (b":path", b"/autointerp.v1.AutoInterp/ListMethods"),
            (b":authority", app.grpc_target.encode()),
            (b"content-type", b"application/grpc"),
            (b"te", b"trailers"),
            (b"x-secret-key", app.secret.encode()),
            (b"x-request-id", "é€".encode()),
        ],
    )
    data = b"".join(payload for kind, _, payload in frames if kind == 0)
    assert len(data) > 5, frames  # the ListMethodsResponse came back (an abort sends none)
    new = app.log_text()[len(before) :]
    lines = [line for line in new.splitlines() if "rpc=ListMethods" in line]
    assert len(lines) == 1 and "status=OK" in lines[0], new
    assert re.search(r"request_id=[0-9a-f]{32}\b", lines[0]), lines
    assert "Traceback" not in new and "ERROR" not in new and "Invalid metadata" not in new


async def test_a_safe_grpc_request_id_round_trips(app) -> None:
    code, echoed = await _grpc_call(app, "grpc-req_7.x:y")
    assert (code, echoed) == (grpc.StatusCode.OK, "grpc-req_7.x:y")


def test_request_ids_are_never_unsafe() -> None:
    from autointerp_grpc.service import request_id_from

    for given in [*UNSAFE_IDS, "", None, b"abc", "é€".encode()]:
        assert SAFE_ID.fullmatch(request_id_from(given))  # type: ignore[arg-type]
    assert request_id_from("ok-1") == "ok-1"


# --- item 9: a second instance on a taken gRPC port does not start -------------------------


def _run_server(env: dict[str, str], timeout_s: float = 120) -> subprocess.Popen:
    """`python server.py` with ``env`` over a clean environment, output captured."""
    base = {
        k: v for k, v in os.environ.items() if k != "SECRET" and not k.startswith("AUTOINTERP_")
    }
    base.update(HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", **env)
    return subprocess.Popen(
        [sys.executable, "server.py"],
        cwd=REPO,
        env=base,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


@pytest.mark.slow
def test_a_second_instance_on_a_taken_port_exits_with_one_clear_line(server) -> None:
    """Regression (issue 17, item 9): grpc sets SO_REUSEPORT, so a second instance on the
    same AUTOINTERP_GRPC_PORT started and the kernel split connections between the two. A
    taken REST port printed uvicorn's traceback. Both second instances run side by side."""
    grpc_port = server.grpc_target.rsplit(":", 1)[1]
    http_port = server.http_base.rsplit(":", 1)[1]
    clashes = {
        "gRPC": (grpc_port, str(free_port())),
        "REST": (str(free_port()), http_port),
    }
    running = {
        door: _run_server(
            {
                "AUTOINTERP_HOST": "127.0.0.1",
                "AUTOINTERP_GRPC_PORT": ports[0],
                "AUTOINTERP_HTTP_PORT": ports[1],
                "SECRET": "another-secret",
            }
        )
        for door, ports in clashes.items()
    }
    for door, second in running.items():
        try:
            output, _ = second.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            second.kill()
            second.communicate()
            pytest.fail(f"a second instance started on a taken {door} port")
        assert second.returncode == 1, output
        last = output.strip().splitlines()[-1]
        port = grpc_port if door == "gRPC" else http_port
        assert last.startswith(f"autointerp: cannot listen for {door} on 127.0.0.1:{port} "), output
        assert "in use" in last and "Traceback" not in output, output
    # The first instance still serves.
    with grpc.insecure_channel(server.grpc_target) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=5
        )
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


# --- item 16: operator mistakes are one line and exit 2 -------------------------------------

CONFIG_MISTAKES = {
    "AUTOINTERP_LOG_LEVEL": ({"AUTOINTERP_LOG_LEVEL": "verbose"}, "must be one of"),
    "AUTOINTERP_LLM_PROVIDERS": ({"AUTOINTERP_LLM_PROVIDERS": "{bad"}, "must be a JSON object"),
    "AUTOINTERP_HTTP_PORT": (
        {"AUTOINTERP_HTTP_PORT": "7001", "AUTOINTERP_GRPC_PORT": "7001"},
        "must differ from AUTOINTERP_GRPC_PORT",
    ),
    "AUTOINTERP_HOST": ({"AUTOINTERP_HOST": "no-such-host.invalid"}, "does not resolve"),
    "SECRET": ({"SECRET": " s3cr3t-with-spaces "}, "must be printable ASCII"),
}


@pytest.mark.slow
def test_config_mistakes_are_one_line_and_exit_2() -> None:
    """Regression (issue 17, item 16): these printed raw tracebacks (or pydantic's multi-line
    report). `python server.py` runs one process per mistake, side by side."""
    running = {name: _run_server(env) for name, (env, _) in CONFIG_MISTAKES.items()}
    for name, process in running.items():
        output, _ = process.communicate(timeout=180)
        rule = CONFIG_MISTAKES[name][1]
        assert process.returncode == 2, (name, output)
        assert len(output.strip().splitlines()) == 1, (name, output)
        assert output.startswith(f"invalid configuration: {name}: {rule}"), (name, output)
        assert "s3cr3t" not in output


async def test_rest_connections_have_nagle_off() -> None:
    """The REST door's pre-bound socket says TCP, so asyncio sets TCP_NODELAY on each accepted
    connection (with protocol 0 it did not, and every keep-alive response waited ~40 ms for
    the client's delayed ACK: /health p50 44 ms instead of 2 ms)."""
    import socket

    from autointerp_grpc.config import Settings
    from autointerp_grpc.runtime import _rest_socket

    listening = _rest_socket(Settings(host="127.0.0.1", http_port=free_port()))
    accepted: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    class Probe(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            sock = transport.get_extra_info("socket")
            accepted.set_result(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            transport.close()

    server = await asyncio.get_running_loop().create_server(Probe, sock=listening)
    try:
        port = listening.getsockname()[1]
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        assert await asyncio.wait_for(accepted, 5) != 0
        writer.close()
    finally:
        server.close()
        await server.wait_closed()
