"""A hostile world, over real sockets: what an unauthenticated caller can do to the process."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from samples import cat_records
from support import REPO, TEST_SECRET, RunningServer, free_port, launch_server, stop_server

from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2 as pb
from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2_grpc as pb_grpc

pytestmark = pytest.mark.slow

GRACE_S = 5.0
MAX_WATCHERS = 24


def _explain_request() -> pb.ExplainDefaultRequest:
    request = pb.ExplainDefaultRequest(openrouter_key="sk-hostile-test-key-1234", model="m")
    for record in cat_records():
        request.activations.add(tokens=record["tokens"], values=record["values"])
    return request


async def test_health_watch_streams_cannot_wedge_the_server(fake_llm, tmp_path) -> None:
    """Regression (issue 11, item 1): Watch streams, cancelled or left open, used to pin the
    sync health servicer's executor threads, after which Check timed out, upstream
    connections hung and SIGTERM never finished."""
    log_path = tmp_path / "server.log"
    running = launch_server(
        fake_llm.base_url,
        log_path,
        AUTOINTERP_SHUTDOWN_GRACE_S=str(GRACE_S),
        AUTOINTERP_HEALTH_MAX_WATCHERS=str(MAX_WATCHERS),
    )
    process, target = running.process, running.grpc_target
    try:
        async with grpc.aio.insecure_channel(target) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            request = health_pb2.HealthCheckRequest(service="")
            # 20 streams cancelled after their first event (no secret sent).
            for _ in range(20):
                call = health.Watch(request)
                first = await asyncio.wait_for(call.read(), 5)
                assert first.status == health_pb2.HealthCheckResponse.SERVING
                call.cancel()
            # Then as many as the cap allows left open, and one past the cap refused.
            held = [health.Watch(request) for _ in range(MAX_WATCHERS)]
            for call in held:
                await asyncio.wait_for(call.read(), 5)
            extra = health.Watch(request)
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await asyncio.wait_for(extra.read(), 5)
            assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED

            began = time.monotonic()
            checked = await health.Check(request, timeout=1.0)
            assert checked.status == health_pb2.HealthCheckResponse.SERVING
            assert time.monotonic() - began < 1.0

            stub = pb_grpc.AutoInterpStub(channel)
            answer = await stub.ExplainDefault(
                _explain_request(), metadata=(("x-secret-key", TEST_SECRET),), timeout=20
            )
            assert answer.explanation

            # SIGTERM with the Watch streams still open: a clean exit within the grace.
            began = time.monotonic()
            process.send_signal(signal.SIGTERM)
            code = await asyncio.to_thread(process.wait, GRACE_S + 5)
            elapsed = time.monotonic() - began
            assert code == 0, log_path.read_text(errors="replace")
            assert elapsed < GRACE_S, f"exit took {elapsed:.1f} s"
            for call in held:
                call.cancel()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


# --- item 4: request heads and metadata are bounded in size and time ------------------------

HEAD_TIMEOUT_S = 2.0
HEAD_MARGIN_S = 1.5
SLOW_HEAD = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: "


@pytest.fixture(scope="module")
def guarded_server(fake_llm, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """`python server.py` with a 2 s deadline for each request head (default size caps)."""
    log_path = tmp_path_factory.mktemp("guarded") / "server.log"
    running = launch_server(
        fake_llm.base_url, log_path, AUTOINTERP_REQUEST_HEAD_TIMEOUT_S=str(HEAD_TIMEOUT_S)
    )
    try:
        yield running
    finally:
        assert stop_server(running.process) == 0, running.log_text()


def _http_port(server: RunningServer) -> int:
    return int(server.http_base.rsplit(":", 1)[1])


class HealthProbe:
    """Polls GET /health every 20 ms (at most ``max_polls`` times) until stopped, keeping
    each poll's status and latency."""

    def __init__(self, base: str, max_polls: int = 1000) -> None:
        self.base = base
        self.max_polls = max_polls
        self.results: list[tuple[int, float]] = []
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        async with httpx.AsyncClient(base_url=self.base, timeout=10) as http:
            for _ in range(self.max_polls):
                began = time.perf_counter()
                try:
                    status = (await http.get("/health")).status_code
                except httpx.HTTPError:
                    status = 0
                self.results.append((status, time.perf_counter() - began))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), 0.02)
                if self._stop.is_set():
                    return

    async def __aenter__(self) -> HealthProbe:
        self._task = asyncio.ensure_future(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._task is not None
        await asyncio.wait_for(self._task, 15)

    def check(self, min_polls: int, max_latency_s: float = 1.0) -> None:
        assert len(self.results) >= min_polls, self.results
        assert all(status == 200 for status, _ in self.results), self.results
        worst = max(latency for _, latency in self.results)
        assert worst < max_latency_s, f"/health took {worst * 1000:.0f} ms"


async def _send_head(port: int, head: bytes) -> tuple[bytes, float]:
    """Send a request head at once; what came back (b"" if the server closed or reset the
    connection without an answer) and how long it took."""
    began = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    answer = b""
    try:
        with contextlib.suppress(ConnectionError):
            writer.write(head)
            await asyncio.wait_for(writer.drain(), 5)
        with contextlib.suppress(ConnectionError):
            answer = await asyncio.wait_for(reader.read(4096), 5)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    return answer, time.monotonic() - began


async def _slowloris(port: int, max_s: float = 8.0) -> tuple[float | None, bytes]:
    """An unfinished request head, then one more byte every second: how long until the
    server closed the connection (None: still open after ``max_s``) and what it sent."""
    began = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    received = b""
    try:
        writer.write(SLOW_HEAD)
        await writer.drain()
        for _ in range(int(max_s)):
            try:
                chunk = await asyncio.wait_for(reader.read(1024), 1.0)
            except TimeoutError:
                try:
                    writer.write(b"a")
                    await writer.drain()
                except ConnectionError:
                    return time.monotonic() - began, received
                continue
            except ConnectionError:
                return time.monotonic() - began, received
            if not chunk:
                return time.monotonic() - began, received
            received += chunk
        return None, received
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def test_huge_request_head_is_refused_at_once(guarded_server: RunningServer) -> None:
    """Regression (issue 11, item 4): a 96 MiB header used to be parsed for 20 s while
    /health slowed to a crawl. Now a head over AUTOINTERP_MAX_HEADER_BYTES (64 KiB) is
    answered 400 (or the connection dropped) as soon as the cap is passed."""
    port = _http_port(guarded_server)
    huge = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (1024 * 1024) + b"\r\n\r\n"
    async with HealthProbe(guarded_server.http_base) as probe:
        for _ in range(3):
            results = await asyncio.gather(*(_send_head(port, huge) for _ in range(5)))
            for answer, elapsed in results:
                assert answer == b"" or answer.startswith(b"HTTP/1.1 400"), answer[:200]
                if answer:  # the service's one error shape, even from the HTTP parser
                    assert b"content-type: application/json" in answer.lower(), answer[:300]
                    assert b"x-request-id:" in answer.lower()
                # Well inside the 2 s head deadline: the size cap refused it, not the clock.
                assert elapsed < 1.5, f"refusing a 1 MiB head took {elapsed:.2f} s"
        await asyncio.sleep(0.2)
    probe.check(min_polls=5)
    # A head well within the cap still works.
    answer, _ = await _send_head(
        port, b"GET /health HTTP/1.1\r\nHost: x\r\nX-Fine: " + b"a" * 32_000 + b"\r\n\r\n"
    )
    assert answer.startswith(b"HTTP/1.1 200"), answer[:200]


async def test_unfinished_request_head_is_closed_at_the_deadline(
    guarded_server: RunningServer,
) -> None:
    """Regression (issue 11, item 4): a slowloris connection (a head that never ends, one
    byte a second) used to stay open for ever; now it is closed at the head deadline."""
    closed_after, received = await _slowloris(_http_port(guarded_server))
    assert closed_after is not None, "still open 8 s later"
    assert HEAD_TIMEOUT_S - 0.5 <= closed_after < HEAD_TIMEOUT_S + HEAD_MARGIN_S, closed_after
    assert b"200" not in received


async def test_fifty_slowloris_connections_do_not_stop_health(
    guarded_server: RunningServer,
) -> None:
    """Regression (issue 11, item 4): 50 unfinished heads at once are all closed at the
    deadline, /health answers quickly meanwhile, and the server holds no socket for them."""
    port = _http_port(guarded_server)
    fds = Path(f"/proc/{guarded_server.process.pid}/fd")
    open_before = len(list(fds.iterdir()))
    async with HealthProbe(guarded_server.http_base) as probe:
        outcomes = await asyncio.gather(*(_slowloris(port) for _ in range(50)))
    probe.check(min_polls=20)
    times = [closed_after for closed_after, _ in outcomes]
    assert all(t is not None for t in times), f"{times.count(None)} of 50 still open"
    assert max(t for t in times if t is not None) < HEAD_TIMEOUT_S + HEAD_MARGIN_S, times
    # Every one of them closed on the server's side too (the probe's connection is gone).
    for _ in range(20):
        if len(list(fds.iterdir())) <= open_before:
            break
        await asyncio.sleep(0.1)
    assert len(list(fds.iterdir())) <= open_before


async def test_oversized_grpc_metadata_is_refused_harmlessly(
    guarded_server: RunningServer,
) -> None:
    """Regression (issue 11, item 4): gRPC metadata is capped like REST heads (64 KiB); a
    call over it fails at once, and the next calls, on the same channel, are served."""
    request = health_pb2.HealthCheckRequest(service="")
    async with grpc.aio.insecure_channel(guarded_server.grpc_target) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        began = time.monotonic()
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await health.Check(request, metadata=(("x-padding", "a" * (1024 * 1024)),), timeout=5)
        assert time.monotonic() - began < 3
        assert refused.value.code() in (
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            grpc.StatusCode.INTERNAL,
            grpc.StatusCode.UNAVAILABLE,
        ), refused.value
        checked = await health.Check(request, timeout=2)
        assert checked.status == health_pb2.HealthCheckResponse.SERVING
        # Within the cap, metadata passes.
        checked = await health.Check(request, metadata=(("x-padding", "a" * 16_000),), timeout=2)
        assert checked.status == health_pb2.HealthCheckResponse.SERVING
        answer = await pb_grpc.AutoInterpStub(channel).ExplainDefault(
            _explain_request(), metadata=(("x-secret-key", TEST_SECRET),), timeout=20
        )
        assert answer.explanation


# --- item 11: SIGTERM with a REST request in flight ----------------------------------------

DRAIN_GRACE_S = 2.0
HUNG_MODEL = "openai/gpt-4o-mini@fault=hang"


class OpenShutdownDefect(AssertionError):
    """A part of item 11 the server does not meet yet (see the test's docstring)."""


def _expect(condition: bool, message: str) -> None:
    if not condition:
        raise OpenShutdownDefect(message)


async def _ndjson_lines(
    http: httpx.AsyncClient, path: str, body: dict, headers: dict[str, str]
) -> tuple[int, list[str], str | None]:
    """POST a streaming route: its status, the lines read and how the stream ended (None:
    complete; else the client's error, e.g. a body cut off mid-chunk)."""
    lines: list[str] = []
    try:
        async with http.stream("POST", path, json=body, headers=headers) as response:
            async for line in response.aiter_lines():
                if line.strip() and len(lines) < 1000:
                    lines.append(line)
        return response.status_code, lines, None
    except httpx.HTTPError as exc:
        return 0, lines, f"{type(exc).__name__}: {exc}"


def _bulk_body() -> dict:
    records = cat_records()
    return {
        "features": [
            {
                "id": "hung",
                "activations": [r for r in records if sum(r["values"]) > 0],
                "nonActivating": [r for r in records if sum(r["values"]) <= 0],
            }
        ],
        "explainer": {"method": "default"},
        "scorers": [{"method": "detection"}],
        "llm": {"model": HUNG_MODEL, "apiKey": "sk-hostile-test-key-1234"},
    }


async def test_sigterm_with_a_rest_request_in_flight(fake_llm, tmp_path) -> None:
    """Regression (issue 11, item 11), SIGTERM while REST requests wait on a hung LLM:

    * during the drain a new REST call gets 503 JSON (it used to be refused at the socket)
      and a new gRPC call UNAVAILABLE, /health 503;
    * the unary request cut at the grace period gets a JSON 503 (it used to get a plain-text
      500), and the process exits within grace + 2.5 s (plain asserts: these hold);
    * a bulk NDJSON stream cut at the grace ends with an UNAVAILABLE ErrorResponse line, not
      a truncated body, and nothing logs a traceback."""
    log_path = tmp_path / "server.log"
    running = launch_server(
        fake_llm.base_url, log_path, AUTOINTERP_SHUTDOWN_GRACE_S=str(DRAIN_GRACE_S)
    )
    process = running.process
    headers = {"X-SECRET-KEY": TEST_SECRET}
    body = {"activations": cat_records(), "openrouterKey": "sk-hostile-test-key-1234"}
    try:
        async with httpx.AsyncClient(base_url=running.http_base, timeout=15) as http:
            opened = fake_llm.stats()["requests"]
            hung = asyncio.ensure_future(
                http.post(
                    "/v1/explain/default", json={**body, "model": HUNG_MODEL}, headers=headers
                )
            )
            stream = asyncio.ensure_future(
                _ndjson_lines(http, "/v1/explain-and-score", _bulk_body(), headers)
            )
            for _ in range(100):  # until both upstream calls are open
                if fake_llm.stats()["requests"] >= opened + 2 or hung.done() or stream.done():
                    break
                await asyncio.sleep(0.05)
            assert fake_llm.stats()["requests"] >= opened + 2
            assert not hung.done() and not stream.done()

            signalled = time.monotonic()
            process.send_signal(signal.SIGTERM)
            for _ in range(40):
                health = await http.get("/health")
                if health.status_code == 503:
                    break
                await asyncio.sleep(0.025)
            assert health.status_code == 503

            # A new REST call during the drain: answered 503 JSON, not refused at the socket.
            fresh = await http.post(
                "/v1/explain/default", json={**body, "model": "openai/gpt-4o-mini"}, headers=headers
            )
            assert fresh.status_code == 503, fresh.text
            assert fresh.headers["content-type"].startswith("application/json")
            assert fresh.json()["code"] == "UNAVAILABLE" and fresh.json()["detail"]
            # A new gRPC call: UNAVAILABLE.
            async with grpc.aio.insecure_channel(running.grpc_target) as channel:
                with pytest.raises(grpc.aio.AioRpcError) as refused:
                    await pb_grpc.AutoInterpStub(channel).ExplainDefault(
                        _explain_request(), metadata=(("x-secret-key", TEST_SECRET),), timeout=2
                    )
                assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
            assert time.monotonic() - signalled < DRAIN_GRACE_S, "the checks outran the drain"
            assert not hung.done(), "the in-flight request ended before the grace period"
            assert not stream.done(), "the bulk stream ended before the grace period"

            cut = await asyncio.wait_for(hung, DRAIN_GRACE_S + 5)
            answered = time.monotonic() - signalled
            status, lines, broken = await asyncio.wait_for(stream, DRAIN_GRACE_S + 5)
            code = await asyncio.to_thread(process.wait, DRAIN_GRACE_S + 5)
            elapsed = time.monotonic() - signalled
        log = log_path.read_text(errors="replace")
        assert code == 0, log
        # The unary request cut at the grace period: a JSON 503, at the grace.
        assert cut.status_code == 503, (cut.status_code, cut.text)
        assert cut.headers.get("content-type", "").startswith("application/json"), cut.text
        assert cut.json()["code"] == "UNAVAILABLE"
        assert answered < DRAIN_GRACE_S + 0.5, f"cut request answered after {answered:.1f} s"
        assert elapsed < DRAIN_GRACE_S + 2.5, f"exit took {elapsed:.1f} s"
        # The bulk stream cut at the grace period: its last line says UNAVAILABLE.
        assert lines, "the bulk stream sent nothing (not even its first progress event)"
        _expect(broken is None, f"the bulk stream was cut off: {broken}; last {lines[-1]!r}")
        assert status == 200
        assert json.loads(lines[-1]).get("code") == "UNAVAILABLE", lines[-1]
        _expect("Traceback" not in log, "a request cut at the grace logged a traceback")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


# --- item 12: a SECRET that cannot travel is refused at start-up ----------------------------


def test_non_ascii_secret_stops_the_server_at_start_up() -> None:
    """Regression (issue 11, item 12): a non-ASCII SECRET used to lock out every gRPC client
    and most HTTP clients; now `python server.py` refuses it at once, naming SECRET without
    printing it (the settings are checked before anything is bound or loaded)."""
    secret = "sécret-ünïcode-42"
    env = {k: v for k, v in os.environ.items() if k != "SECRET" and not k.startswith("AUTOINTERP_")}
    env.update(
        SECRET=secret,
        AUTOINTERP_HOST="127.0.0.1",
        AUTOINTERP_GRPC_PORT=str(free_port()),
        AUTOINTERP_HTTP_PORT=str(free_port()),
        HF_HUB_OFFLINE="1",
    )
    began = time.monotonic()
    result = subprocess.run(
        [sys.executable, "server.py"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    elapsed = time.monotonic() - began
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    # The imports (torch) dominate; on a busy 2-core machine they take 10-15 s.
    assert elapsed < 40, f"took {elapsed:.1f} s to refuse"
    assert "listening" not in output and "SERVING" not in output, output
    assert "SECRET" in output, output
    assert secret not in output and "ünïcode" not in output, output
    assert "Traceback" not in output, output
