"""Metrics, request ids and structured logs, in process; the JSON log lines of the process
(its logging configuration) in a process of its own (slow)."""

from __future__ import annotations

import json
import re
import sys

import grpc
import httpx
import pytest
from samples import SEED_EXPLAIN_BODY, cat_records
from support import free_port, start_server, stop_server

from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2 as pb
from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2_grpc as pb_grpc


def _metric(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels``."""
    total = 0.0
    for line in text.splitlines():
        match = re.match(rf"^{name}(\{{(.*)\}})? (\S+)$", line)
        if not match:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(2) or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(match.group(3))
    return total


async def test_metrics_move_after_requests(app) -> None:
    before = (await app.rest.get("/metrics")).text
    headers = {**app.headers, "Content-Type": "application/json"}
    assert (await app.rest.post("/v1/explain/default", content=SEED_EXPLAIN_BODY,
                                headers=headers)).status_code == 200  # fmt: skip
    body = json.dumps({"activations": cat_records(), "explanation": "cats"})
    assert (await app.rest.post("/v1/score/embedding", content=body,
                                headers=headers)).status_code == 200  # fmt: skip
    bad = await app.rest.post("/v1/score/embedding", content=b"{", headers=headers)
    assert bad.status_code == 400
    after = await app.rest.get("/metrics")
    assert after.status_code == 200
    text = after.text

    def moved(name: str, **labels: str) -> float:
        return _metric(text, name, **labels) - _metric(before, name, **labels)

    assert moved("autointerp_requests_total", rpc="ExplainDefault", code="OK") == 1
    assert moved("autointerp_requests_total", rpc="ScoreEmbedding", code="INVALID_ARGUMENT") == 1
    assert moved("autointerp_request_duration_seconds_count", rpc="ScoreEmbedding") == 2
    model = "openai/gpt-4o-mini"
    assert (
        moved("autointerp_llm_calls_total", provider="openrouter", model=model, outcome="ok") >= 1
    )
    assert moved("autointerp_llm_tokens_total", model=model, kind="prompt") > 0
    assert moved("autointerp_embedding_batch_size_count") >= 1
    assert "autointerp_in_flight_requests" in text
    # Keys never become labels.
    assert "YOUR_OPENROUTER_KEY" not in text and app.secret not in text


async def test_request_ids_round_trip_on_both_doors(app) -> None:
    headers = {**app.headers, "x-request-id": "my-request-123"}
    response = await app.rest.get("/v1/methods", headers=headers)
    assert response.headers["x-request-id"] == "my-request-123"
    generated = await app.rest.get("/v1/methods", headers=app.headers)
    assert re.fullmatch(r"[0-9a-f]{32}", generated.headers["x-request-id"])
    async with grpc.aio.insecure_channel(app.grpc_target) as channel:
        call = pb_grpc.AutoInterpStub(channel).ListMethods(
            pb.ListMethodsRequest(),
            metadata=(*app.auth, ("x-request-id", "grpc-request-7")),
        )
        await call
        assert dict(await call.initial_metadata())["x-request-id"] == "grpc-request-7"
    log = app.log_text()
    assert "request_id=my-request-123" in log and "request_id=grpc-request-7" in log


@pytest.mark.slow
def test_json_log_lines(fake_llm, tmp_path) -> None:
    # Needs a process: the JSON format is the logging configuration of `python server.py`.
    grpc_port, http_port = free_port(), free_port()
    log_path = tmp_path / "server.log"
    process = start_server(
        [sys.executable, "server.py"],
        {"AUTOINTERP_LLM_BASE_URL": fake_llm.base_url, "AUTOINTERP_LOG_FORMAT": "json"},
        log_path,
        http_port,
        grpc_port,
    )
    try:
        response = httpx.post(
            f"http://127.0.0.1:{http_port}/v1/explain/default",
            content=SEED_EXPLAIN_BODY,
            headers={"Content-Type": "application/json", "x-request-id": "json-1"},
        )
        assert response.status_code == 200
    finally:
        assert stop_server(process) == 0
    records = []
    for line in log_path.read_text().splitlines():
        if line.startswith("{"):
            records.append(json.loads(line))
    request_lines = [r for r in records if r.get("request_id") == "json-1"]
    assert len(request_lines) == 1
    entry = request_lines[0]
    assert entry["rpc"] == "ExplainDefault" and entry["status"] == "OK"
    assert entry["llm_calls"] == 1 and entry["prompt_tokens"] > 0
    assert entry["duration_ms"] > 0 and entry["level"] == "INFO"
    # Every line the service logs is JSON (third-party progress bars aside).
    assert sum(1 for r in records if r["logger"].startswith("autointerp_grpc")) >= 3
