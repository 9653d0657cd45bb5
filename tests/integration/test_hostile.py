"""A hostile world, over real sockets: what an unauthenticated caller can do to the process."""

from __future__ import annotations

import asyncio
import signal
import sys
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from samples import cat_records
from support import TEST_SECRET, free_port, start_server

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
    grpc_port, http_port = free_port(), free_port()
    log_path = tmp_path / "server.log"
    process = start_server(
        [sys.executable, "server.py"],
        {
            "SECRET": TEST_SECRET,
            "AUTOINTERP_LLM_BASE_URL": fake_llm.base_url,
            "AUTOINTERP_SHUTDOWN_GRACE_S": str(GRACE_S),
            "AUTOINTERP_HEALTH_MAX_WATCHERS": str(MAX_WATCHERS),
        },
        log_path,
        http_port,
        grpc_port,
    )
    target = f"127.0.0.1:{grpc_port}"
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
