"""ExplainAndScore end to end, in process: streaming results and progress over both doors, and
the explicit labels of a feature's records kept through scoring."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from google.protobuf import json_format
from samples import cat_records
from sklearn.metrics import roc_auc_score
from support import app_settings, asgi_call, in_process_app, wait_upstream_idle

from autointerp_grpc.delphi_compat import NonActivatingExample
from autointerp_grpc.errors import Unavailable
from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2 as pb
from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2_grpc as pb_grpc
from autointerp_grpc.records import split_records
from autointerp_grpc.runtime import create_app

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


async def _grpc_events(app, body: dict[str, Any], metadata=None) -> list[dict[str, Any]]:
    request = json_format.ParseDict(body, pb.ExplainAndScoreRequest())
    events = []
    async with grpc.aio.insecure_channel(app.grpc_target) as channel:
        stream = pb_grpc.AutoInterpStub(channel).ExplainAndScore(
            request, metadata=app.auth if metadata is None else metadata, timeout=120
        )
        async for event in stream:
            events.append(json_format.MessageToDict(event))
    return events


def _calls(event: dict[str, Any]) -> int:
    """An event's LLM calls (MessageToDict prints a 64-bit count as a string)."""
    return int(event["usage"]["llmCalls"])


def _after_start(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The events after the stream's opening progress event, if it sends one (done 0, so the
    response starts before any feature has finished)."""
    # (MessageToDict leaves out a zero "done".)
    if events and "progress" in events[0] and not events[0]["progress"].get("done"):
        assert not events[0]["progress"].get("failed"), events[0]
        return events[1:]
    return events


async def test_stream_results_and_progress_over_grpc(app) -> None:
    features = [_feature("cat-1"), _feature("dog-1", " dog"), _feature("cat-2")]
    events = _after_start(await _grpc_events(app, _request(features, concurrency=2)))
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
        assert _calls(result) > 1
    assert by_id["cat-1"]["scores"][0]["score"] == 1.0
    assert _calls(progress[-1]) == sum(_calls(r) for r in results)


async def test_holdout_and_best_of_k(app) -> None:
    body = _request([_feature("cat-1")], holdout=0.4, candidates=3, candidateScorer="detection")
    [result] = [e["result"] for e in await _grpc_events(app, body) if "result" in e]
    # 7 activating records: 4 explain, 3 held out (1 ranks, 2 test); 7 non-activating ones,
    # unseen by the default explainer: 3 rank, 4 test. No candidate ranks on a record the
    # explainer saw.
    assert (result["trainRecords"], result["testRecords"]) == (4, 6)
    assert result["validationRecords"] == 4
    assert result.get("validationSeenRecords", 0) == 0
    assert not result.get("inSample", False)
    assert len(result["candidates"]) == 3
    assert all(c["score"] == 1.0 for c in result["candidates"])
    assert result["explanation"] == result["candidates"][0]["explanation"]
    # The fake LLM's three drafts are the same: the result says the ranking was a tie.
    assert [n.startswith("best-of-k could not tell") for n in result["notes"]] == [True]


def test_holdout_split_is_stratified_disjoint_and_deterministic() -> None:
    # Imported here: a change to the holdout helper fails this test, not the whole module.
    from autointerp_grpc.handlers.holdout import split_feature

    def record(i: int, value: float) -> pb.Activation:
        return pb.Activation(tokens=[f"r{i}"], values=[value])

    feature = pb.Feature(
        id="a",
        activations=[record(i, 1.0) for i in range(10)],
        non_activating=[record(i, 0.0) for i in range(10, 20)],
    )
    parts = split_feature(feature, 0.3, "0:a", explainer_reads_non_activating=True, candidates=1)
    seen = {r.tokens[0] for r in [*parts.explain_activating, *parts.explain_non_activating]}
    scored = {"".join(e.str_tokens) for e in parts.test.in_order}
    assert seen.isdisjoint(scored)
    # Stratified: 3 of each class held out.
    assert (len(parts.test.activating), len(parts.test.non_activating)) == (3, 3)
    assert parts.train_records == 14 and parts.test_records == 6 and not parts.in_sample
    again = split_feature(feature, 0.3, "0:a", explainer_reads_non_activating=True, candidates=1)
    assert [e.str_tokens for e in again.test.in_order] == [
        e.str_tokens for e in parts.test.in_order
    ]
    # Too few activating records to hold any out: scored in-sample, and marked so.
    small = pb.Feature(id="b", activations=[record(0, 1.0), record(1, 1.0)])
    tiny = split_feature(small, 0.5, "0:b", explainer_reads_non_activating=False, candidates=1)
    assert tiny.in_sample and tiny.test_records == 0


async def test_a_failing_feature_does_not_stop_the_run(app) -> None:
    broken = {"id": "broken", "activations": [{"tokens": ["a", "b"], "values": [1.0]}]}
    empty = {"id": "empty", "activations": [{"tokens": [], "values": []}]}
    body = _request([_feature("cat-1"), broken, empty, _feature("cat-2")])
    events = await _grpc_events(app, body)
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


async def test_a_failing_scorer_is_reported_per_scorer(app) -> None:
    feature = _feature("cat-1")
    feature["nonActivating"] = []  # detection needs non-activating records
    events = await _grpc_events(app, _request([feature]))
    [result] = [e["result"] for e in events if "result" in e]
    assert result["explanation"] == 'Mentions of "cat"'
    assert all(s["error"]["code"] == "INVALID_ARGUMENT" for s in result["scores"])


async def test_bad_request_fails_up_front(app) -> None:
    body = _request([_feature("a"), _feature("a")])
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await _grpc_events(app, body)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "distinct ids" in info.value.details()
    body = {**_request([_feature("a")]), "scorers": [{"method": "nope"}]}
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await _grpc_events(app, body)
    assert "not a known scorer" in info.value.details()
    body = {**_request([_feature("a")]), "llm": {**LLM, "provider": "elsewhere"}}
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await _grpc_events(app, body)
    assert "llm.provider is not configured" in info.value.details()
    assert "elsewhere" not in info.value.details()  # a rejected value is never quoted back


async def test_ndjson_stream_over_rest(app) -> None:
    body = _request([_feature("cat-1"), _feature("cat-2")])
    async with app.rest.stream(
        "POST",
        "/v1/explain-and-score",
        content=json.dumps(body),
        headers={**app.headers, "Content-Type": "application/json"},
        timeout=120,
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/x-ndjson")
        lines = [json.loads(line) async for line in response.aiter_lines() if line]
    events = _after_start(lines)
    assert [("result" in e, "progress" in e) for e in events] == [(True, False), (False, True)] * 2
    # Errors found up front keep their HTTP status.
    bad = await app.rest.post(
        "/v1/explain-and-score",
        content=json.dumps({**body, "features": []}),
        headers=app.headers,
    )
    assert bad.status_code == 400
    assert "features is required" in bad.json()["detail"]


async def test_ndjson_stream_auth_and_bad_request_keep_their_status(app) -> None:
    body = json.dumps(_request([_feature("cat-1")]))
    for headers in ({}, {"X-SECRET-KEY": "wrong"}):
        response = await app.rest.post("/v1/explain-and-score", content=body, headers=headers)
        assert response.status_code == 401, response.text
        assert response.json()["code"] == "UNAUTHENTICATED"
    bad = await app.rest.post(
        "/v1/explain-and-score", content=b'{"features": [', headers=app.headers
    )
    assert bad.status_code == 400
    assert "not valid JSON" in bad.json()["detail"]


@pytest.mark.parametrize("secret", [None, "wrong"])
async def test_grpc_stream_auth(app, secret: str | None) -> None:
    metadata = () if secret is None else (("x-secret-key", secret),)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await _grpc_events(app, _request([_feature("cat-1")]), metadata=metadata)
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "x-secret-key" in info.value.details()


# --- explicit labels ----------------------------------------------------------------------

# A record that fires on " cat" (its values sum above 0), labelled non-activating by the caller.
LABELLED_NEGATIVE = {"tokens": ["The", " cat", " purred", " softly"], "values": [0, 0.8, 0, 0]}


def test_split_records_keeps_explicit_labels() -> None:
    records = [json_format.ParseDict(r, pb.Activation()) for r in cat_records()]
    positive = json_format.ParseDict(LABELLED_NEGATIVE, pb.Activation())
    split = split_records(records, non_activating=[positive])
    assert sum(positive.values) > 0
    assert (len(split.activating), len(split.non_activating)) == (7, 8)
    # Request order: the records, then the labelled ones; the last one is non-activating.
    assert [e.str_tokens for e in split.in_order] == [
        *(r["tokens"] for r in cat_records()),
        LABELLED_NEGATIVE["tokens"],
    ]
    assert isinstance(split.in_order[-1], NonActivatingExample)
    assert split.activating_indices == set(range(0, 14, 2))
    # Without the label, the sum rule makes the same record activating.
    assert len(split_records([*records, positive]).activating) == 8


def _labelled_feature(where: str) -> dict[str, Any]:
    """The cat feature with LABELLED_NEGATIVE in ``where`` (activations or nonActivating)."""
    feature = _feature("cat-labels")
    feature[where] = [*feature[where], LABELLED_NEGATIVE]
    return feature


async def _bulk_scores(app, feature: dict[str, Any]) -> tuple[str, dict[str, float]]:
    body = {
        **_request([feature], holdout=0),  # in-sample: every record is scored
        "scorers": [{"method": "detection"}, {"method": "embedding"}],
    }
    [result] = [e["result"] for e in await _grpc_events(app, body) if "result" in e]
    assert "error" not in result, result
    return result["explanation"], {s["method"]: s["score"] for s in result["scores"]}


async def test_bulk_keeps_explicit_labels(app) -> None:
    """A nonActivating record whose values sum above 0 is scored as non-activating."""
    explanation, labelled = await _bulk_scores(app, _labelled_feature("nonActivating"))
    assert explanation == 'Mentions of "cat"'
    # Detection: the fake judge says "activating" for every record holding "cat". As a
    # non-activating record, LABELLED_NEGATIVE is its one mistake: all 7 activating right,
    # 7 of 8 non-activating right. Re-split by the sum rule, it would be right too (1.0).
    assert labelled["detection"] == pytest.approx((1 + 7 / 8) / 2)
    _, as_activating = await _bulk_scores(app, _labelled_feature("activations"))
    assert as_activating["detection"] == 1.0

    # Embedding: the AUC of the same similarities with LABELLED_NEGATIVE on the
    # non-activating side. Score ranks every record (sum rule) with its similarity.
    records = [*_feature("cat-labels")["activations"], *_feature("x")["nonActivating"]]
    records.append(LABELLED_NEGATIVE)
    body = {"method": "embedding", "explanation": explanation, "activations": records}
    response = await app.rest.post("/v1/score", json=body, headers=app.headers)
    assert response.status_code == 200, response.text
    similarities = [item["similarity"] for item in response.json()["breakdown"]]
    labels = [1] * 7 + [0] * 8  # the explicit label of the last record
    assert labelled["embedding"] == pytest.approx(roc_auc_score(labels, similarities))
    assert labelled["embedding"] < 1.0 == as_activating["embedding"]


# --- the stream's door paths ----------------------------------------------------------------


def _one_event(done: int) -> pb.ExplainAndScoreEvent:
    return pb.ExplainAndScoreEvent(progress=pb.Progress(done=done, total=2))


@contextlib.asynccontextmanager
async def _app_streaming(fake_llm, handler) -> AsyncIterator[Any]:
    """An app of its own whose ExplainAndScore runs ``handler`` (the doors stay as they are)."""
    async with in_process_app(app_settings(fake_llm.base_url)) as running:
        methods = running.runtime.service.methods
        methods["ExplainAndScore"] = dataclasses.replace(
            methods["ExplainAndScore"], handler=handler
        )
        yield running


async def _ndjson_lines(app, body: dict[str, Any]) -> tuple[int, list[dict[str, Any]]]:
    response = await app.rest.post("/v1/explain-and-score", json=body, headers=app.headers)
    return response.status_code, [json.loads(line) for line in response.text.splitlines()]


@pytest.mark.parametrize(
    ("error", "code", "needle"),
    [
        (Unavailable("the provider went away"), "UNAVAILABLE", "the provider went away"),
        (RuntimeError("internal detail xyzzy-42"), "INTERNAL", "request id"),
    ],
    ids=["typed", "unexpected"],
)
async def test_an_error_after_the_first_event_ends_the_stream(
    fake_llm, error: Exception, code: str, needle: str
) -> None:
    async def handler(request, deps) -> AsyncIterator[pb.ExplainAndScoreEvent]:
        yield _one_event(1)
        raise error

    body = _request([_feature("cat-1")])
    async with _app_streaming(fake_llm, handler) as running:
        # REST: the status is sent with the first line; the error is the last line.
        status, lines = await _ndjson_lines(running, body)
        assert status == 200
        assert len(lines) == 2
        assert lines[0]["progress"]["done"] == 1
        assert lines[1]["code"] == code and needle in lines[1]["detail"], lines
        # gRPC: the first message, then the status.
        received = []
        request = json_format.ParseDict(body, pb.ExplainAndScoreRequest())
        async with grpc.aio.insecure_channel(running.grpc_target) as channel:
            stream = pb_grpc.AutoInterpStub(channel).ExplainAndScore(
                request, metadata=running.auth, timeout=30
            )
            with pytest.raises(grpc.aio.AioRpcError) as info:
                async for event in stream:
                    received.append(event)
        assert [e.progress.done for e in received] == [1]
        assert info.value.code().name == code
        assert needle in info.value.details()
        # An unexpected error's text stays in the server log.
        assert "xyzzy-42" not in info.value.details() + json.dumps(lines)
        if code == "INTERNAL":
            assert "xyzzy-42" in running.log_text()


async def test_a_stream_with_no_events(fake_llm) -> None:
    async def handler(request, deps) -> AsyncIterator[pb.ExplainAndScoreEvent]:
        return
        yield  # an async generator that yields nothing

    body = _request([_feature("cat-1")])
    async with _app_streaming(fake_llm, handler) as running:
        response = await running.rest.post(
            "/v1/explain-and-score", json=body, headers=running.headers
        )
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/x-ndjson")
        assert response.content == b""
        assert await _grpc_events(running, body) == []


def _slow_bulk(model: str, n_features: int) -> dict[str, Any]:
    body = _request([_feature(f"cat-{i}") for i in range(n_features)], concurrency=1)
    return {**body, "scorers": [{"method": "detection"}], "llm": {**LLM, "model": model}}


async def test_ndjson_disconnect_mid_stream_stops_the_run(app, clean_fake) -> None:
    # Each feature: one explanation and three detection prompts of 0.2 s each, one feature at
    # a time. The client reads the first result, then goes away.
    body = _slow_bulk("openai/gpt-4o-mini@latency=200", n_features=5)
    exchange = await asgi_call(
        create_app(runtime=app.runtime),
        "POST",
        "/v1/explain-and-score",
        json.dumps(body).encode(),
        {**app.headers, "Content-Type": "application/json"},
        disconnect_after_s=1.2,
    )
    assert exchange.finished and exchange.status == 200
    events = [json.loads(line) for line in exchange.body.splitlines()]
    assert 1 <= sum("result" in e for e in events) < 5
    assert await wait_upstream_idle(clean_fake) == 0
    # Nothing more is asked of the LLM once the stream is closed.
    requests = clean_fake.stats()["requests"]
    await asyncio.sleep(0.5)
    assert clean_fake.stats()["requests"] == requests < 5 * 4


async def test_ndjson_disconnect_before_the_first_event_stops_the_run(app, fake_llm) -> None:
    # The REST door starts the response with the first event and only then listens for a
    # disconnect: a stream must produce that event at once (or the door listen before it),
    # else a client that leaves while the first feature runs goes unnoticed.
    body = _slow_bulk("openai/gpt-4o-mini@fault=hang", n_features=1)
    call = asyncio.ensure_future(
        asgi_call(
            create_app(runtime=app.runtime),
            "POST",
            "/v1/explain-and-score",
            json.dumps(body).encode(),
            {**app.headers, "Content-Type": "application/json"},
            disconnect_after_s=0.5,
            timeout_s=2.5,  # then the call is cancelled from outside, which ends the hang
        )
    )
    for _ in range(40):  # the explainer's call is open upstream before the client leaves
        if fake_llm.stats()["in_flight"]:
            break
        await asyncio.sleep(0.01)
    assert fake_llm.stats()["in_flight"] >= 1
    exchange = await call
    # The endpoint noticed the client leave and returned, without an error of its own.
    assert exchange.finished, "the endpoint was still waiting for the first event"
    assert exchange.status in (None, 200, 499), exchange
    assert b'"code"' not in exchange.body, exchange.body  # no error event either
    assert await wait_upstream_idle(fake_llm) == 0
