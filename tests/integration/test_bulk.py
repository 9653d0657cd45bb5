"""ExplainAndScore end to end: streaming results and progress over both doors."""

from __future__ import annotations

import json
from typing import Any

import grpc
import httpx
import pytest
from google.protobuf import json_format
from samples import cat_records

from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2 as pb
from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2_grpc as pb_grpc
from autointerp_grpc.handlers.bulk import split_holdout

pytestmark = pytest.mark.slow

LLM = {"model": "openai/gpt-4o-mini", "apiKey": "sk-bulk-test-key"}


def _feature(feature_id: str, word: str = " cat") -> dict[str, Any]:
    activating = [r for r in cat_records() if sum(r["values"]) > 0]
    for record in activating:
        record["tokens"] = [word if t == " cat" else t for t in record["tokens"]]
    return {
        "id": feature_id,
        "activations": activating,
        "nonActivating": [r for r in cat_records() if sum(r["values"]) <= 0],
    }


def _request(features: list[dict[str, Any]], **options: Any) -> dict[str, Any]:
    return {
        "features": features,
        "explainer": {"method": "default"},
        "scorers": [{"method": "detection"}, {"method": "fuzz"}, {"method": "embedding"}],
        "llm": LLM,
        "options": options,
    }


async def _grpc_events(server, body: dict[str, Any]) -> list[dict[str, Any]]:
    request = json_format.ParseDict(body, pb.ExplainAndScoreRequest())
    events = []
    async with grpc.aio.insecure_channel(server.grpc_target) as channel:
        stream = pb_grpc.AutoInterpStub(channel).ExplainAndScore(
            request, metadata=(("x-secret-key", server.secret),), timeout=120
        )
        async for event in stream:
            events.append(json_format.MessageToDict(event))
    return events


async def test_stream_results_and_progress_over_grpc(server) -> None:
    features = [_feature("cat-1"), _feature("dog-1", " dog"), _feature("cat-2")]
    events = await _grpc_events(server, _request(features, concurrency=2))
    results = [e["result"] for e in events if "result" in e]
    progress = [e["progress"] for e in events if "progress" in e]
    assert sorted(r["id"] for r in results) == ["cat-1", "cat-2", "dog-1"]
    assert [p["done"] for p in progress] == [1, 2, 3]
    assert all(p["total"] == 3 for p in progress)
    # Every result is followed by the progress after it.
    assert ["result" in e for e in events] == [True, False] * 3
    by_id = {r["id"]: r for r in results}
    assert by_id["dog-1"]["explanation"] == 'Mentions of "dog"'
    for result in results:
        assert [s["method"] for s in result["scores"]] == ["detection", "fuzz", "embedding"]
        assert all("score" in s for s in result["scores"]), result
        assert result["usage"]["llmCalls"] > 1
    assert by_id["cat-1"]["scores"][0]["score"] == 1.0
    assert progress[-1]["usage"]["llmCalls"] == sum(r["usage"]["llmCalls"] for r in results)


async def test_holdout_and_best_of_k(server) -> None:
    body = _request([_feature("cat-1")], holdout=0.4, candidates=3, candidateScorer="detection")
    [result] = [e["result"] for e in await _grpc_events(server, body) if "result" in e]
    assert (result["trainRecords"], result["testRecords"]) == (4, 3)
    assert len(result["candidates"]) == 3
    assert all(c["score"] == 1.0 for c in result["candidates"])
    assert result["explanation"] == result["candidates"][0]["explanation"]


def test_holdout_split_is_disjoint_and_deterministic() -> None:
    records = [pb.Activation(tokens=[str(i)], values=[1.0]) for i in range(10)]
    train, test = split_holdout(records, 0.3, "0:a")
    assert len(test) == 3 and len(train) == 7
    assert {r.tokens[0] for r in train}.isdisjoint({r.tokens[0] for r in test})
    assert (train, test) == split_holdout(records, 0.3, "0:a")
    assert split_holdout(records[:1], 0.5, "0:a") == (records[:1], [])


async def test_a_failing_feature_does_not_stop_the_run(server) -> None:
    broken = {"id": "broken", "activations": [{"tokens": ["a", "b"], "values": [1.0]}]}
    empty = {"id": "empty", "activations": [{"tokens": [], "values": []}]}
    body = _request([_feature("cat-1"), broken, empty, _feature("cat-2")])
    events = await _grpc_events(server, body)
    results = {e["result"]["id"]: e["result"] for e in events if "result" in e}
    assert results["broken"]["error"]["code"] == "INVALID_ARGUMENT"
    assert "one value per token" in results["broken"]["error"]["message"]
    assert "activations[0].tokens is required" in results["empty"]["error"]["message"]
    assert results["cat-1"]["scores"] and "error" not in results["cat-1"]
    assert events[-1]["progress"] == {
        "done": 4,
        "total": 4,
        "failed": 2,
        "usage": events[-1]["progress"]["usage"],
    }


async def test_a_failing_scorer_is_reported_per_scorer(server) -> None:
    feature = _feature("cat-1")
    feature["nonActivating"] = []  # detection needs non-activating records
    events = await _grpc_events(server, _request([feature]))
    [result] = [e["result"] for e in events if "result" in e]
    assert result["explanation"] == 'Mentions of "cat"'
    assert all(s["error"]["code"] == "INVALID_ARGUMENT" for s in result["scores"])


async def test_bad_request_fails_up_front(server) -> None:
    body = _request([_feature("a"), _feature("a")])
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await _grpc_events(server, body)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "distinct ids" in info.value.details()
    body = {**_request([_feature("a")]), "scorers": [{"method": "nope"}]}
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await _grpc_events(server, body)
    assert "not a known scorer" in info.value.details()
    body = {**_request([_feature("a")]), "llm": {**LLM, "provider": "elsewhere"}}
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await _grpc_events(server, body)
    assert "llm.provider 'elsewhere' is not configured" in info.value.details()


def test_ndjson_stream_over_rest(server) -> None:
    body = _request([_feature("cat-1"), _feature("cat-2")])
    with httpx.stream(
        "POST",
        server.http_base + "/v1/explain-and-score",
        content=json.dumps(body),
        headers={"X-SECRET-KEY": server.secret, "Content-Type": "application/json"},
        timeout=120,
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/x-ndjson")
        events = [json.loads(line) for line in response.iter_lines() if line]
    assert [("result" in e, "progress" in e) for e in events] == [(True, False), (False, True)] * 2
    # Errors found up front keep their HTTP status.
    bad = httpx.post(
        server.http_base + "/v1/explain-and-score",
        content=json.dumps({**body, "features": []}),
        headers={"X-SECRET-KEY": server.secret},
    )
    assert bad.status_code == 400
    assert "features is required" in bad.json()["detail"]
