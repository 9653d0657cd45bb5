"""A hostile LLM provider, through both doors, in process (issue 11, items 8 and 10).

Item 8: a provider answering HTTP 200 with something that is not a chat completion (a body
that is not JSON, ``choices`` a string, a choice without a message) makes every LLM method
answer UNAVAILABLE / 503 with a clear message, never INTERNAL / 500; implausible usage counts
(negative, 10**15, strings) leave the answer usable and are read as 0.

Item 10: a provider that drips its answer (no single read is slow, the whole answer takes
minutes) is cut off at the LLM timeout times the attempts; a bulk feature whose provider hangs
or drips ends at the server's per-feature limit with DEADLINE_EXCEEDED, and the stream goes on.

Each test asks the fake LLM for its fault through the model name (``model@fault=...``) or sets
a counted fault on a fresh fake (``clean_fake``).
"""

from __future__ import annotations

import json
import time
from typing import Any

import grpc
import pytest
from google.protobuf import json_format
from google.protobuf.message import Message
from samples import RIGHT_EXPLANATION, cat_records
from support import InProcessApp, app_settings, in_process_app, wait_upstream_idle

from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2 as pb
from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2_grpc as pb_grpc

MODEL = "openai/gpt-4o-mini"
KEY = "sk-hostile-upstream-key-31337"
BODY_FAULTS = ["not_json", "choices_string", "no_message"]


def _activating() -> list[dict[str, Any]]:
    return [r for r in cat_records() if sum(r["values"]) > 0]


def _non_activating() -> list[dict[str, Any]]:
    return [r for r in cat_records() if sum(r["values"]) <= 0]


# (RPC, REST path, request class, body for a model name)
def _explain_default(model: str) -> dict[str, Any]:
    return {"activations": cat_records(), "openrouterKey": KEY, "model": model}


def _explain(model: str) -> dict[str, Any]:
    return {
        "method": "default",
        "activations": _activating(),
        "nonActivating": _non_activating(),
        "llm": {"model": model, "apiKey": KEY},
    }


def _score_detection(model: str) -> dict[str, Any]:
    return {
        "method": "detection",
        "explanation": RIGHT_EXPLANATION,
        "activations": cat_records(),
        "llm": {"model": model, "apiKey": KEY},
    }


def _legacy_detection(model: str) -> dict[str, Any]:
    return {
        "activations": cat_records(),
        "explanation": RIGHT_EXPLANATION,
        "openrouterKey": KEY,
        "model": model,
        "type": "DETECTION",
    }


CALLS = [
    ("ExplainDefault", "/v1/explain/default", pb.ExplainDefaultRequest, _explain_default),
    ("Explain", "/v1/explain", pb.ExplainRequest, _explain),
    ("Score", "/v1/score", pb.ScoreRequest, _score_detection),
    ("ScoreFuzzDetection", "/v1/score/fuzz-detection", pb.ScoreFuzzDetectionRequest,
     _legacy_detection),
]  # fmt: skip
CALL_IDS = [c[0] for c in CALLS]


async def _grpc(app: InProcessApp, method: str, request: Message, timeout: float = 30) -> Any:
    async with grpc.aio.insecure_channel(app.grpc_target) as channel:
        return await getattr(pb_grpc.AutoInterpStub(channel), method)(
            request, metadata=app.auth, timeout=timeout
        )


async def _rest(app: InProcessApp, path: str, body: dict[str, Any]) -> Any:
    return await app.rest.post(
        path,
        content=json.dumps(body),
        headers={**app.headers, "Content-Type": "application/json"},
    )


# --- item 8: an HTTP 200 that is not a chat completion ------------------------------------


@pytest.mark.parametrize("fault", BODY_FAULTS)
@pytest.mark.parametrize(("method", "path", "request_cls", "body_for"), CALLS, ids=CALL_IDS)
async def test_a_200_that_is_not_a_completion_is_unavailable_on_both_doors(
    app, fault, method, path, request_cls, body_for
) -> None:
    body = body_for(f"{MODEL}@fault={fault}")
    response = await _rest(app, path, body)
    assert response.status_code == 503, response.text
    reply = response.json()
    assert reply["code"] == "UNAVAILABLE"
    assert "LLM provider" in reply["detail"], reply
    assert "request id" not in reply["detail"].lower()  # not the generic INTERNAL text
    assert KEY not in response.text

    with pytest.raises(grpc.aio.AioRpcError) as info:
        await _grpc(app, method, json_format.ParseDict(body, request_cls()))
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE, info.value.details()
    assert info.value.details() == reply["detail"]
    assert KEY not in info.value.details()


def _tokens(usage: dict[str, Any], name: str) -> int:
    return int(usage.get(name) or 0)  # int64 may come as a string; zero may be left out


@pytest.mark.parametrize(("method", "path", "request_cls", "body_for"), CALLS, ids=CALL_IDS)
async def test_implausible_usage_counts_read_as_zero(
    app, method, path, request_cls, body_for
) -> None:
    body = body_for(f"{MODEL}@fault=bad_usage")
    response = await _rest(app, path, body)
    assert response.status_code == 200, response.text
    over_rest = response.json()
    reply = await _grpc(app, method, json_format.ParseDict(body, request_cls()))
    over_grpc = json_format.MessageToDict(reply)
    if "explanation" in over_rest:
        assert over_rest["explanation"] == over_grpc["explanation"] == 'Mentions of "cat"'
    else:
        assert over_rest["score"] == over_grpc["score"] == 1.0
    if method in ("ExplainDefault", "ScoreFuzzDetection"):  # the legacy shapes carry no usage
        return
    for usage in (over_rest["usage"], over_grpc["usage"]):
        assert _tokens(usage, "llmCalls") >= 1
        assert _tokens(usage, "promptTokens") == 0
        assert _tokens(usage, "completionTokens") == 0
        assert usage["cost"] > 0  # the cost the provider reported is still read


# --- item 10: a provider that drips, hangs, or runs past the limits -----------------------


async def test_a_dripping_provider_is_cut_off_at_the_llm_timeout(fake_llm) -> None:
    settings = app_settings(fake_llm.base_url, llm_timeout_s=1, llm_max_retries=0)
    body = _explain(f"{MODEL}@fault=drip")
    async with in_process_app(settings) as running:
        began = time.monotonic()
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await _grpc(running, "Explain", json_format.ParseDict(body, pb.ExplainRequest()))
        elapsed = time.monotonic() - began
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE, info.value.details()
        assert "did not answer in time" in info.value.details()
        assert elapsed < 3, elapsed  # about 1 s, not the whole drip (minutes)
        # The server dropped the upstream request rather than reading on.
        assert await wait_upstream_idle(fake_llm, 3.0) == 0

        began = time.monotonic()
        response = await _rest(running, "/v1/explain", body)
        elapsed = time.monotonic() - began
        assert response.status_code == 503, response.text
        assert "did not answer in time" in response.json()["detail"]
        assert elapsed < 3, elapsed
        assert await wait_upstream_idle(fake_llm, 3.0) == 0


def _feature(feature_id: str) -> dict[str, Any]:
    return {"id": feature_id, "activations": _activating(), "nonActivating": _non_activating()}


def _bulk(features: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "features": features,
        "explainer": {"method": "default"},
        "scorers": [{"method": "detection"}],
        "llm": {"model": MODEL, "apiKey": KEY},
        "options": {"concurrency": 1},  # one at a time: the first feature gets the fault
    }


async def _bulk_events(running: InProcessApp, door: str, body: dict[str, Any]) -> list[dict]:
    if door == "grpc":
        request = json_format.ParseDict(body, pb.ExplainAndScoreRequest())
        async with grpc.aio.insecure_channel(running.grpc_target) as channel:
            stream = pb_grpc.AutoInterpStub(channel).ExplainAndScore(
                request, metadata=running.auth, timeout=30
            )
            return [json_format.MessageToDict(event) async for event in stream]
    async with running.rest.stream(
        "POST",
        "/v1/explain-and-score",
        content=json.dumps(body),
        headers={**running.headers, "Content-Type": "application/json"},
        timeout=30,
    ) as response:
        assert response.status_code == 200
        return [json.loads(line) async for line in response.aiter_lines() if line]


@pytest.mark.parametrize(("fault", "door"), [("hang", "grpc"), ("drip", "rest")])
async def test_a_bulk_feature_past_its_limit_fails_alone(clean_fake, fault, door) -> None:
    settings = app_settings(clean_fake.base_url, request_timeout_s=1.5)
    clean_fake.set_fault(fault, count=1)  # the first LLM call: the first feature's explainer
    async with in_process_app(settings) as running:
        began = time.monotonic()
        events = await _bulk_events(running, door, _bulk([_feature("slow"), _feature("fine")]))
        elapsed = time.monotonic() - began
    results = {e["result"]["id"]: e["result"] for e in events if "result" in e}
    assert results["slow"]["error"]["code"] == "DEADLINE_EXCEEDED", results["slow"]
    assert "limit of 1.5 s" in results["slow"]["error"]["message"]
    assert not results["slow"].get("scores")
    # The run went on: the next feature was explained and scored, and the stream completed.
    assert not results["fine"].get("error"), results["fine"]
    assert results["fine"]["explanation"] == 'Mentions of "cat"'
    assert results["fine"]["scores"][0]["score"] == 1.0
    last = events[-1]["progress"]
    assert (last["done"], last["total"], last["failed"]) == (2, 2, 1)
    assert 1.5 <= elapsed < 5, elapsed
    assert await wait_upstream_idle(clean_fake, 3.0) == 0
