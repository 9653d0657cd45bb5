"""Reliability and security through both doors, in process: bad input, upstream faults,
deadlines, disconnects, load limits, draining, and secrets that never leak. The one test that
needs a process of its own (SIGTERM, then the exit code) is marked slow."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import grpc
import httpx
import pytest
from google.protobuf import json_format
from grpc_health.v1 import health_pb2, health_pb2_grpc
from samples import RIGHT_EXPLANATION, cat_records
from support import (
    TEST_SECRET,
    app_settings,
    asgi_call,
    free_port,
    in_process_app,
    start_server,
    wait_upstream_idle,
)

from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2 as pb
from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2_grpc as pb_grpc
from autointerp_grpc.runtime import create_app

KEY = "sk-reliability-provider-key-4242"
MODEL = "openai/gpt-4o-mini"
AUTH = (("x-secret-key", TEST_SECRET),)


def _valid(path: str) -> dict[str, Any]:
    if path == "/v1/score/embedding":
        return {"activations": cat_records(), "explanation": RIGHT_EXPLANATION}
    if path == "/v1/score/fuzz-detection":
        return {
            "activations": cat_records(),
            "explanation": RIGHT_EXPLANATION,
            "openrouterKey": KEY,
            "model": MODEL,
            "type": "DETECTION",
        }
    return {"activations": cat_records(), "openrouterKey": KEY, "model": MODEL}


_RPC = {
    "/v1/explain/default": ("ExplainDefault", pb.ExplainDefaultRequest),
    "/v1/score/embedding": ("ScoreEmbedding", pb.ScoreEmbeddingRequest),
    "/v1/score/fuzz-detection": ("ScoreFuzzDetection", pb.ScoreFuzzDetectionRequest),
}
ONE_KIND = [r for r in cat_records() if sum(r["values"]) > 0]

# (name, REST path, change to a valid body, text the error must contain). Each also goes
# over gRPC when the body is expressible as a proto message.
BAD_INPUTS = [
    ("empty activations", "/v1/score/embedding", {"activations": []}, "activations is required"),
    ("length mismatch", "/v1/score/embedding",
     {"activations": [{"tokens": ["a", "b"], "values": [1.0]}, *cat_records()]},
     "activations[0] must have one value per token (2 tokens, 1 values)"),
    ("empty tokens", "/v1/explain/default", {"activations": [{"tokens": [], "values": []}]},
     "activations[0].tokens is required"),
    ("infinite value", "/v1/score/embedding",
     {"activations": [{"tokens": ["a"], "values": [float("inf")]}, *cat_records()]},
     "activations[0].values[0]"),
    ("too many records", "/v1/score/embedding", {"activations": cat_records() * 80},
     "1120 records; the limit is 1000"),
    ("too many tokens", "/v1/explain/default",
     {"activations": [{"tokens": ["x"] * 5000, "values": [1.0] * 5000}]},
     "5000 tokens; the limit is 4096"),
    ("empty explanation", "/v1/score/embedding", {"explanation": "  "}, "explanation is required"),
    ("empty model", "/v1/explain/default", {"model": ""}, "model is required"),
    ("empty key", "/v1/score/fuzz-detection", {"openrouterKey": ""}, "openrouter_key is required"),
    ("only activating", "/v1/score/fuzz-detection", {"activations": ONE_KIND},
     "got 7 activating and 0 non-activating"),
    ("only non-activating", "/v1/score/embedding",
     {"activations": [r for r in cat_records() if sum(r["values"]) <= 0]},
     "got 0 activating and 7 non-activating"),
    ("missing type", "/v1/score/fuzz-detection", {"type": None}, "type is required"),
]  # fmt: skip

# REST only: JSON-level mistakes.
BAD_JSON = [
    ("malformed JSON", "/v1/score/embedding", b'{"activations": [', "not valid JSON"),
    ("not an object", "/v1/score/embedding", b"[]", "must be a JSON object"),
    ("NaN literal", "/v1/score/embedding",
     b'{"activations": [{"tokens": ["a"], "values": [NaN]}], "explanation": "x"}', "NaN"),
    ("lone surrogate", "/v1/score/embedding",
     b'{"activations": [{"tokens": ["\\ud800"], "values": [1]}], "explanation": "x"}',
     "activations[0].tokens[0] holds text that is not valid Unicode"),
    ("invalid UTF-8", "/v1/score/embedding", b'{"explanation": "\xff\xfe"}', "not valid JSON"),
    ("wrong type", "/v1/score/embedding", b'{"activations": "nope", "explanation": "x"}',
     "activations"),
    ("string values", "/v1/score/embedding",
     b'{"activations": [{"tokens": ["a"], "values": ["high"]}], "explanation": "x"}', "values"),
    ("unknown type", "/v1/score/fuzz-detection", b'{"type": "FUZZY"}',
     "type must be one of FUZZ, DETECTION"),
    ("key not a string", "/v1/explain/default",
     b'{"activations": [], "openrouterKey": ["sk-leak-me-please"], "model": "m"}',
     "openrouterKey must be a string"),
    ("deep nesting", "/v1/score/embedding", b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
]  # fmt: skip


def _body(path: str, change: dict[str, Any]) -> dict[str, Any]:
    body = {**_valid(path), **change}
    return {k: v for k, v in body.items() if v is not None}


async def _post(app, path: str, content: bytes, **headers: str) -> httpx.Response:
    return await app.rest.post(
        path,
        content=content,
        headers={**app.headers, "Content-Type": "application/json", **headers},
    )


async def _grpc(target: str, method: str, request: Any, metadata=AUTH, timeout=30.0) -> Any:
    async with grpc.aio.insecure_channel(target) as channel:
        return await getattr(pb_grpc.AutoInterpStub(channel), method)(
            request, metadata=metadata, timeout=timeout
        )


@pytest.mark.parametrize(
    ("name", "path", "change", "needle"), BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS]
)
async def test_bad_input_on_both_doors(app, name, path, change, needle) -> None:
    body = _body(path, change)
    # JSON has no infinity; send it the way a client's float would overflow into one.
    content = json.dumps(body).replace("Infinity", "1e999").encode()
    response = await _post(app, path, content)
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "INVALID_ARGUMENT"
    assert needle in response.json()["detail"]

    method, request_cls = _RPC[path]
    # proto3 JSON spells infinity as the string "Infinity".
    request = json_format.Parse(json.dumps(body).replace("Infinity", '"Infinity"'), request_cls())
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await _grpc(app.grpc_target, method, request)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert needle in info.value.details()


@pytest.mark.parametrize(
    ("name", "path", "content", "needle"), BAD_JSON, ids=[b[0] for b in BAD_JSON]
)
async def test_bad_json_is_400_with_reason(app, name, path, content, needle) -> None:
    response = await _post(app, path, content)
    assert response.status_code == 400, response.text
    assert needle in response.json()["detail"]
    assert "sk-leak-me-please" not in response.text


async def test_unknown_type_number_over_grpc(app) -> None:
    request = json_format.ParseDict(
        _valid("/v1/score/fuzz-detection"), pb.ScoreFuzzDetectionRequest()
    )
    request.type = 7  # proto3 keeps unknown enum numbers
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await _grpc(app.grpc_target, "ScoreFuzzDetection", request)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "FUZZ or DETECTION" in info.value.details()


async def test_invalid_utf8_on_the_grpc_wire_is_invalid_argument(app) -> None:
    # Field 2 (explanation) as a string holding bytes that are not UTF-8.
    raw = b"\x12\x03\xff\xfe\xfd"
    async with grpc.aio.insecure_channel(app.grpc_target) as channel:
        call = channel.unary_unary(
            "/autointerp.v1.AutoInterp/ScoreEmbedding",
            request_serializer=None,
            response_deserializer=None,
        )
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await call(raw, metadata=AUTH, timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "invalid UTF-8" in info.value.details()


async def test_body_size_cap_on_both_doors(app) -> None:
    huge = b'{"explanation": "' + b"x" * (17 * 1024 * 1024) + b'"}'
    response = await _post(app, "/v1/score/embedding", huge)
    assert response.status_code == 413
    assert response.json()["code"] == "RESOURCE_EXHAUSTED"
    request = pb.ScoreEmbeddingRequest(explanation="x" * (17 * 1024 * 1024))
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await _grpc(app.grpc_target, "ScoreEmbedding", request)
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


async def test_body_size_cap_without_a_declared_length(fake_llm) -> None:
    # A chunked body declares no length: it is counted as it arrives and refused past the cap,
    # on a unary route and on the streaming one alike.
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"explanation": "'
        for _ in range(8):
            yield b"x" * 512
        yield b'"}'

    settings = app_settings(fake_llm.base_url, max_request_bytes=2048)
    async with in_process_app(settings) as small:
        for path in ("/v1/score/embedding", "/v1/explain-and-score"):
            response = await small.rest.post(path, content=chunks(), headers=small.headers)
            assert "content-length" not in response.request.headers
            assert response.status_code == 413, response.text
            assert response.json()["code"] == "RESOURCE_EXHAUSTED"
            assert "limit of 2048 bytes" in response.json()["detail"]


async def test_unknown_paths_and_rpcs(app) -> None:
    assert (await app.rest.post("/v1/nope", json={}, headers=app.headers)).status_code == 404
    # A route exists for its own verb only.
    assert (await app.rest.get("/v1/score", headers=app.headers)).status_code == 405
    assert (await app.rest.post("/v1/methods", headers=app.headers)).status_code == 405
    async with grpc.aio.insecure_channel(app.grpc_target) as channel:
        for path in ("/autointerp.v1.AutoInterp/Nope", "/autointerp.v2.AutoInterp/Score"):
            call = channel.unary_unary(path, request_serializer=None, response_deserializer=None)
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await call(b"", metadata=AUTH, timeout=10)
            assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED, path


# --- upstream faults ----------------------------------------------------------------------

FAULTS = [
    ("429", grpc.StatusCode.RESOURCE_EXHAUSTED, 429, "rate limiting"),
    ("500", grpc.StatusCode.UNAVAILABLE, 503, "HTTP 500"),
    ("bad_key", grpc.StatusCode.FAILED_PRECONDITION, 400, "rejected the API key"),
    ("no_credits", grpc.StatusCode.FAILED_PRECONDITION, 400, "no credits"),
    ("garbage", grpc.StatusCode.UNAVAILABLE, 503, "no parsable explanation"),
]


@pytest.mark.parametrize(("fault", "code", "status", "needle"), FAULTS, ids=[f[0] for f in FAULTS])
async def test_upstream_faults_become_clear_statuses(app, fault, code, status, needle) -> None:
    body = {**_valid("/v1/explain/default"), "model": f"{MODEL}@fault={fault}"}
    response = await _post(app, "/v1/explain/default", json.dumps(body).encode())
    assert response.status_code == status, response.text
    assert needle in response.json()["detail"]
    assert KEY not in response.text
    request = json_format.ParseDict(body, pb.ExplainDefaultRequest())
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await _grpc(app.grpc_target, "ExplainDefault", request)
    assert info.value.code() == code
    assert KEY not in info.value.details()


@pytest.mark.parametrize(
    "fault", ["429", "500", "bad_key", "no_credits", "garbage", "wrong_length"]
)
async def test_scoring_never_turns_a_fault_into_a_low_score(app, fault: str) -> None:
    body = {**_valid("/v1/score/fuzz-detection"), "model": f"{MODEL}@fault={fault}"}
    response = await _post(app, "/v1/score/fuzz-detection", json.dumps(body).encode())
    assert response.status_code in (400, 429, 503), response.text
    assert "score" not in response.json()


async def test_deadline_cancels_the_upstream_call(app, fake_llm) -> None:
    request = json_format.ParseDict(
        {**_valid("/v1/explain/default"), "model": f"{MODEL}@fault=hang"},
        pb.ExplainDefaultRequest(),
    )
    began = time.monotonic()
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await _grpc(app.grpc_target, "ExplainDefault", request, timeout=1)
    assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert time.monotonic() - began < 2
    # The server cancelled its upstream request: the fake LLM sees the connection go.
    assert await wait_upstream_idle(fake_llm, 2.0) == 0


async def test_rest_disconnect_cancels_the_upstream_call(app, fake_llm) -> None:
    body = json.dumps({**_valid("/v1/explain/default"), "model": f"{MODEL}@fault=hang"})
    headers = {**app.headers, "Content-Type": "application/json"}
    began = time.monotonic()
    # The client goes away after 1 s, as a client with a 1 s read timeout would.
    exchange = await asgi_call(
        create_app(runtime=app.runtime),
        "POST",
        "/v1/explain/default",
        body.encode(),
        headers,
        disconnect_after_s=1.0,
    )
    assert exchange.finished  # the endpoint noticed and returned
    assert exchange.status == 499
    assert time.monotonic() - began < 3
    assert await wait_upstream_idle(fake_llm, 3.0) == 0


async def test_grpc_client_cancel_cancels_the_upstream_call(app, fake_llm) -> None:
    request = json_format.ParseDict(
        {**_valid("/v1/explain/default"), "model": f"{MODEL}@fault=hang"},
        pb.ExplainDefaultRequest(),
    )
    async with grpc.aio.insecure_channel(app.grpc_target) as channel:
        call = pb_grpc.AutoInterpStub(channel).ExplainDefault(request, metadata=AUTH, timeout=30)
        for _ in range(40):  # until the upstream call is open
            if fake_llm.stats()["in_flight"]:
                break
            await asyncio.sleep(0.05)
        assert fake_llm.stats()["in_flight"] >= 1
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
    assert await wait_upstream_idle(fake_llm, 3.0) == 0


# --- limits and draining, on apps of their own --------------------------------------------


async def test_in_flight_cap_refuses_at_once(fake_llm) -> None:
    settings = app_settings(fake_llm.base_url, max_in_flight=2, request_timeout_s=1.5, secret=None)
    slow = json_format.ParseDict(
        {**_valid("/v1/explain/default"), "model": f"{MODEL}@latency=1300"},
        pb.ExplainDefaultRequest(),
    )
    async with (
        in_process_app(settings) as limited,
        grpc.aio.insecure_channel(limited.grpc_target) as channel,
    ):
        stub = pb_grpc.AutoInterpStub(channel)
        busy = [asyncio.ensure_future(stub.ExplainDefault(slow, timeout=10)) for _ in range(2)]
        await asyncio.sleep(0.3)
        began = time.monotonic()
        response = await limited.rest.post(
            "/v1/explain/default", json=_valid("/v1/explain/default")
        )
        assert response.status_code == 429
        assert "limit of 2 requests in flight" in response.json()["detail"]
        # Refused at once, not queued behind the two busy requests (about 1 s left each).
        assert time.monotonic() - began < 0.8
        # The gRPC door counts against the same cap.
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.ExplainDefault(slow, timeout=10)
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert all(r.explanation for r in await asyncio.gather(*busy))


async def test_server_side_timeout(fake_llm) -> None:
    settings = app_settings(fake_llm.base_url, max_in_flight=2, request_timeout_s=1.5, secret=None)
    body = {**_valid("/v1/explain/default"), "model": f"{MODEL}@fault=hang"}
    async with in_process_app(settings) as limited:
        response = await limited.rest.post("/v1/explain/default", json=body)
        assert response.status_code == 504
        assert "limit of 1.5 s" in response.json()["detail"]
        request = json_format.ParseDict(body, pb.ExplainDefaultRequest())
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await _grpc(limited.grpc_target, "ExplainDefault", request, metadata=(), timeout=10)
        assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert "limit of 1.5 s" in info.value.details()
    assert await wait_upstream_idle(fake_llm, 3.0) == 0


async def test_draining_refuses_new_requests_and_finishes_old_ones(fake_llm) -> None:
    # What SIGTERM starts (runtime.begin_shutdown), without the process: health turns
    # NOT_SERVING, new calls on both doors are UNAVAILABLE / 503, the in-flight one finishes.
    slow = json_format.ParseDict(
        {**_valid("/v1/explain/default"), "model": f"{MODEL}@latency=800"},
        pb.ExplainDefaultRequest(),
    )
    async with (
        in_process_app(app_settings(fake_llm.base_url)) as running,
        grpc.aio.insecure_channel(running.grpc_target) as channel,
    ):
        stub = pb_grpc.AutoInterpStub(channel)
        in_flight = asyncio.ensure_future(
            stub.ExplainDefault(slow, metadata=running.auth, timeout=20)
        )
        await asyncio.sleep(0.3)
        running.runtime.begin_shutdown()
        health = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=5
        )
        assert health.status == health_pb2.HealthCheckResponse.NOT_SERVING
        assert (await running.rest.get("/health")).status_code == 503
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.ExplainDefault(slow, metadata=running.auth, timeout=5)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        response = await running.rest.post(
            "/v1/explain/default", json=_valid("/v1/explain/default"), headers=running.headers
        )
        assert response.status_code == 503
        assert "shutting down" in response.json()["detail"]
        assert (await in_flight).explanation  # the in-flight request finished


@pytest.mark.slow
def test_sigterm_drains_then_exits_zero(fake_llm, tmp_path) -> None:
    # Needs a process: the signal handler, the drain and the exit status are the process's.
    grpc_port, http_port = free_port(), free_port()
    log = tmp_path / "server.log"
    process = start_server(
        [sys.executable, "server.py"],
        {"AUTOINTERP_LLM_BASE_URL": fake_llm.base_url, "AUTOINTERP_SHUTDOWN_GRACE_S": "5"},
        log,
        http_port,
        grpc_port,
    )
    slow = json_format.ParseDict(
        {**_valid("/v1/explain/default"), "model": f"{MODEL}@latency=1500"},
        pb.ExplainDefaultRequest(),
    )
    with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
        stub = pb_grpc.AutoInterpStub(channel)
        in_flight = stub.ExplainDefault.future(slow, timeout=20)
        time.sleep(0.3)
        process.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        health = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=5
        )
        assert health.status == health_pb2.HealthCheckResponse.NOT_SERVING
        with pytest.raises(grpc.RpcError) as info:
            stub.ExplainDefault(slow, timeout=5)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        assert in_flight.result().explanation  # the in-flight request finished
    assert process.wait(30) == 0, log.read_text()


# --- secrets ------------------------------------------------------------------------------


async def test_no_secret_or_key_anywhere_in_the_logs(app) -> None:
    # Runs after the faults above (file order); the app logs at DEBUG.
    text = app.log_text()
    assert "DEBUG" in text
    for value in (TEST_SECRET, KEY, "sk-leak-me-please"):
        assert value not in text
