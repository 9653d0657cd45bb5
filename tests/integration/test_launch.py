"""The legacy launch line `uvicorn server:app ... --workers 1` serves both doors too."""

from __future__ import annotations

import sys

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from samples import SEED_EXPLAIN_BODY
from support import free_port, start_server, stop_server

pytestmark = pytest.mark.slow


def test_uvicorn_launch_line_without_secret(fake_llm, tmp_path) -> None:
    grpc_port, http_port = free_port(), free_port()
    command = [
        sys.executable, "-m", "uvicorn", "server:app",
        "--host", "127.0.0.1", "--port", str(http_port), "--workers", "1",
    ]  # fmt: skip
    process = start_server(
        command,
        {"AUTOINTERP_LLM_BASE_URL": fake_llm.base_url},
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
    finally:
        code = stop_server(process)
    # uvicorn's own CLI re-raises SIGTERM after its graceful shutdown; `python server.py` exits 0.
    assert code in (0, -15), (tmp_path / "uvicorn.log").read_text()
    assert "stopped" in (tmp_path / "uvicorn.log").read_text()
