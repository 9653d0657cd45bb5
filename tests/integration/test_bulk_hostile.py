"""ExplainAndScore when a feature's work raises what nobody expected (issue 17, item 2): the
feature ends with an error, the other features complete, and the stream ends with its
summary (the last progress event, done == total), on both doors. Never a silent hang."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import grpc
import pytest
from google.protobuf import json_format
from samples import cat_records

from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2 as pb
from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2_grpc as pb_grpc
from autointerp_grpc.handlers import bulk
from autointerp_grpc.usage import Usage

LLM = {"model": "openai/gpt-4o-mini", "apiKey": "sk-bulk-hostile-key"}
# Long enough for a run of three features on the fake LLM; a hang fails the test instead.
STREAM_DEADLINE_S = 20.0
LEAKED = "internal detail sk-leaked-xyzzy-17"


def _feature(feature_id: str) -> dict[str, Any]:
    return {
        "id": feature_id,
        "activations": [r for r in cat_records() if sum(r["values"]) > 0],
        "nonActivating": [r for r in cat_records() if sum(r["values"]) <= 0],
    }


def _body(*ids: str) -> dict[str, Any]:
    return {
        "features": [_feature(i) for i in ids],
        "explainer": {"method": "default"},
        "scorers": [{"method": "detection"}],
        "llm": LLM,
        "options": {"concurrency": 2},
    }


async def _grpc_events(app, body: dict[str, Any]) -> list[dict[str, Any]]:
    request = json_format.ParseDict(body, pb.ExplainAndScoreRequest())
    events: list[dict[str, Any]] = []

    async def read() -> None:
        async with grpc.aio.insecure_channel(app.grpc_target) as channel:
            stream = pb_grpc.AutoInterpStub(channel).ExplainAndScore(
                request, metadata=app.auth, timeout=STREAM_DEADLINE_S + 10
            )
            async for event in stream:
                events.append(json_format.MessageToDict(event))

    try:
        await asyncio.wait_for(read(), STREAM_DEADLINE_S)
    except TimeoutError:
        pytest.fail(f"the stream never ended; events so far: {events}")
    return events


async def _rest_events(app, body: dict[str, Any]) -> list[dict[str, Any]]:
    lines: list[dict[str, Any]] = []

    async def read() -> None:
        async with app.rest.stream(
            "POST",
            "/v1/explain-and-score",
            content=json.dumps(body),
            headers={**app.headers, "Content-Type": "application/json"},
            timeout=STREAM_DEADLINE_S + 10,
        ) as response:
            assert response.status_code == 200
            async for line in response.aiter_lines():
                if line:
                    lines.append(json.loads(line))

    try:
        await asyncio.wait_for(read(), STREAM_DEADLINE_S)
    except TimeoutError:
        pytest.fail(f"the stream never ended; lines so far: {lines}")
    return lines


def _check_summary(events: list[dict[str, Any]], total: int, failed: int) -> dict[str, Any]:
    """The results by id, after checking the stream ended with its summary."""
    results = {e["result"]["id"]: e["result"] for e in events if "result" in e}
    assert len(results) == total, events
    last = events[-1]
    assert "progress" in last, events
    assert last["progress"]["done"] == total and last["progress"]["total"] == total
    assert last["progress"].get("failed", 0) == failed
    return results


@pytest.mark.parametrize("door", ["grpc", "rest"])
@pytest.mark.parametrize("error", [RuntimeError(LEAKED), OverflowError(LEAKED)], ids=repr)
async def test_an_exception_in_a_features_work_ends_that_feature(
    app, clean_fake, monkeypatch: pytest.MonkeyPatch, door: str, error: Exception
) -> None:
    original = bulk._Run.feature

    async def feature(self: bulk._Run, feature: pb.Feature) -> pb.FeatureResult:
        if feature.id == "boom":
            raise error
        return await original(self, feature)

    monkeypatch.setattr(bulk._Run, "feature", feature)
    read = _grpc_events if door == "grpc" else _rest_events
    events = await read(app, _body("cat-1", "boom", "cat-2"))
    results = _check_summary(events, total=3, failed=1)
    assert results["boom"]["error"]["code"] == "INTERNAL"
    assert "request id" in results["boom"]["error"]["message"]
    for name in ("cat-1", "cat-2"):
        assert not results[name].get("error"), results[name]
        assert results[name]["scores"][0]["score"] >= 0
    # The exception's text stays in the server log, never on the wire.
    assert LEAKED not in json.dumps(events)
    assert LEAKED in app.log_text()


@pytest.mark.parametrize("door", ["grpc", "rest"])
async def test_costs_whose_sum_overflows_end_the_stream(
    app, clean_fake, monkeypatch: pytest.MonkeyPatch, door: str
) -> None:
    """A provider cost of 1e308 per call, as if nothing checked it: summing a feature's costs
    overflows (math.fsum raises OverflowError). Before: the worker died after ``progress
    0/3`` and the stream never ended."""
    original = Usage.add_call

    def add_call(self: Usage, prompt_tokens: int = 0, completion_tokens: int = 0, cost=None):
        original(self, prompt_tokens, completion_tokens, None)
        self.costs.append(1e308)

    monkeypatch.setattr(Usage, "add_call", add_call)
    read = _grpc_events if door == "grpc" else _rest_events
    events = await read(app, _body("cat-1", "cat-2", "cat-3"))
    results = _check_summary(events, total=3, failed=0)
    for result in results.values():
        # The calls and tokens are counted; a cost that cannot be summed is not reported.
        assert int(result["usage"]["llmCalls"]) >= 2
        assert result["usage"].get("cost") is None
        assert result["scores"][0]["score"] >= 0
    assert events[-1]["progress"]["usage"].get("cost") is None


@pytest.mark.parametrize("door", ["grpc", "rest"])
async def test_a_provider_cost_of_1e308_end_to_end(app, clean_fake, door: str) -> None:
    """The fake LLM's ``huge_cost``: every answer reports ``usage.cost`` 1e308 (issue 17 item
    2's reproduction; before: ``progress 0/3`` and a stream that never ended)."""
    body = _body("cat-1", "cat-2", "cat-3")
    body["llm"] = {**LLM, "model": "openai/gpt-4o-mini@fault=huge_cost"}
    read = _grpc_events if door == "grpc" else _rest_events
    events = await read(app, body)
    results = _check_summary(events, total=3, failed=0)
    for result in results.values():
        assert result["usage"].get("cost") is None  # implausible: unknown
        assert result["scores"][0]["score"] >= 0
    assert events[-1]["progress"]["usage"].get("cost") is None
