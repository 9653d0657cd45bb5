"""The typed client (sync and async) against the real server (the session `server` fixture)."""

from __future__ import annotations

import grpc
import pytest
from samples import cat_records

from autointerp_grpc.client import AsyncAutoInterpClient, AutoInterpClient
from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2 as pb

pytestmark = pytest.mark.slow

API_KEY = "sk-typed-client-key-2718"


def _explain_default_body() -> dict:
    return {
        "activations": cat_records(),
        "openrouter_key": API_KEY,  # snake_case and camelCase both work
        "model": "openai/gpt-4o-mini",
    }


def _bulk_body(*ids: str) -> dict:
    records = cat_records()
    return {
        "features": [
            {
                "id": feature_id,
                "activations": [r for r in records if sum(r["values"]) > 0],
                "nonActivating": [r for r in records if sum(r["values"]) <= 0],
            }
            for feature_id in ids
        ],
        "explainer": {"method": "default"},
        "scorers": [{"method": "detection"}],
        "llm": {"model": "openai/gpt-4o-mini", "apiKey": API_KEY},
    }


def test_sync_client(server) -> None:
    with AutoInterpClient(server.grpc_target, secret=server.secret, timeout=120) as client:
        methods = client.list_methods()
        assert {"default", "detection", "fuzz", "embedding"} <= {m.name for m in methods.methods}
        answer = client.explain_default(_explain_default_body(), request_id="typed-client-1")
        assert isinstance(answer, pb.ExplainDefaultResponse)
        assert answer.explanation == 'Mentions of "cat"'
        request = pb.ScoreRequest(method="embedding", explanation="the word cat")
        for record in cat_records():
            request.activations.add(tokens=record["tokens"], values=record["values"])
        scored = client.score(request)
        assert scored.metric == "roc_auc"
        assert scored.score >= 0.9
        events = list(client.explain_and_score(_bulk_body("one", "two")))
    results = [e.result for e in events if e.HasField("result")]
    assert sorted(r.id for r in results) == ["one", "two"]
    assert [e.progress.done for e in events if e.HasField("progress")] == [0, 1, 2]


def test_sync_client_errors_are_rpc_errors(server) -> None:
    client = AutoInterpClient(server.grpc_target, secret="wrong-secret", timeout=30)
    with client, pytest.raises(grpc.RpcError) as caught:
        client.list_methods()
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "wrong-secret" not in caught.value.details()


async def test_async_client(server) -> None:
    async with AsyncAutoInterpClient(server.grpc_target, secret=server.secret, timeout=120) as c:
        methods = await c.list_methods()
        assert "fuzz" in {m.name for m in methods.methods}
        answer = await c.explain_default(_explain_default_body())
        assert answer.explanation == 'Mentions of "cat"'
        stream = c.explain_and_score(_bulk_body("async-1"))
        events = [event async for event in stream]
        # A progress event at once, then the result and its progress.
        assert [e.WhichOneof("event") for e in events] == ["progress", "result", "progress"]
        assert events[1].result.scores[0].score == 1.0
        with pytest.raises(grpc.RpcError) as caught:
            await c.explain_default({**_explain_default_body(), "activations": []})
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
