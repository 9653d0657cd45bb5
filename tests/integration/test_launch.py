"""The legacy launch line `uvicorn server:app ... --workers 1` serves both doors too, with the
same protections as `python server.py`."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from samples import SEED_EXPLAIN_BODY
from support import REPO, free_port, start_server, stop_server

pytestmark = pytest.mark.slow


def _uvicorn_command(http_port: int) -> list[str]:
    return [
        sys.executable, "-m", "uvicorn", "server:app",
        "--host", "127.0.0.1", "--port", str(http_port), "--workers", "1",
    ]  # fmt: skip


def _seconds_until_closed(port: int, limit_s: float) -> float | None:
    """Drip a request head, a byte every 0.2 s; seconds until the server closed the
    connection, or None if it was still open after ``limit_s``."""
    began = time.monotonic()
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.settimeout(0.2)
        sock.sendall(b"GET /health HTTP/1.1\r\nhost: x\r\n")
        while time.monotonic() - began < limit_s:
            try:
                if sock.recv(1024) == b"":
                    return time.monotonic() - began
            except TimeoutError:
                pass
            try:
                sock.sendall(b"x")
            except OSError:
                return time.monotonic() - began
    return None


def test_uvicorn_launch_line_without_secret(fake_llm, tmp_path) -> None:
    grpc_port, http_port = free_port(), free_port()
    process = start_server(
        _uvicorn_command(http_port),
        {"AUTOINTERP_LLM_BASE_URL": fake_llm.base_url, "AUTOINTERP_REQUEST_HEAD_TIMEOUT_S": "2"},
        tmp_path / "uvicorn.log",
        http_port,
        grpc_port,
    )
    try:
        # No SECRET configured: the REST door is open.
        response = httpx.post(
            f"http://127.0.0.1:{http_port}/v1/explain/default",
            content=SEED_EXPLAIN_BODY,
            headers={"Content-Type": "application/json"},
            timeout=60,
        )
        assert response.status_code == 200, response.text
        assert response.json() == {"explanation": 'Mentions of "cat", "felines"'}
        # And the lifespan started the gRPC door on AUTOINTERP_GRPC_PORT.
        with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=5
            )
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        # Regression (issue 17, item 17): under the uvicorn CLI a dripped head had no
        # deadline (still open at 38 s); it is cut at AUTOINTERP_REQUEST_HEAD_TIMEOUT_S.
        closed_after = _seconds_until_closed(http_port, limit_s=8)
        assert closed_after is not None and 1.5 < closed_after < 4, closed_after
        # And the head size limit: 70,000 bytes of head is a 400 in the service's shape.
        big = httpx.get(f"http://127.0.0.1:{http_port}/health",
                        headers={"x-pad": "a" * 70_000}, timeout=10)  # fmt: skip
        assert big.status_code == 400
        assert big.json()["detail"] == "The request head is larger than the limit of 65536 bytes"
    finally:
        code = stop_server(process)
    # uvicorn's own CLI re-raises SIGTERM after its graceful shutdown; `python server.py` exits 0.
    assert code in (0, -15), (tmp_path / "uvicorn.log").read_text()
    assert "stopped" in (tmp_path / "uvicorn.log").read_text()


def test_uvicorn_launch_line_with_a_bad_setting_is_one_line_and_exit_2() -> None:
    """Regression (issue 17, item 16) for the legacy launch line: uvicorn printed the
    lifespan's traceback."""
    env = {k: v for k, v in os.environ.items() if k != "SECRET" and not k.startswith("AUTOINTERP_")}
    env["AUTOINTERP_LOG_LEVEL"] = "verbose"
    result = subprocess.run(
        _uvicorn_command(free_port()),
        check=False,
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 2, result
    assert result.stderr.strip() == (
        "invalid configuration: AUTOINTERP_LOG_LEVEL: must be one of DEBUG, INFO, WARNING, "
        "ERROR, CRITICAL"
    ), result.stderr
