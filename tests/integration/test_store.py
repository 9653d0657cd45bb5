"""The LLM response store, cost accounting and dry runs, end to end in process against the fake
LLM: a repeated bulk run is answered from the store with no upstream call, best-of-k drafts
stay distinct, ``llm.fresh`` goes upstream again, no API key is ever stored, and a dry run
counts what a live run sends without sending it."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import json_format
from samples import cat_records
from support import app_settings, in_process_app

from autointerp_grpc.backends.store import SQLITE_FILE
from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2 as pb
from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2_grpc as pb_grpc

API_KEY = "sk-store-test-key-7f3a9"
MODEL = "openai/gpt-4o-mini"


def _feature(feature_id: str, word: str) -> dict[str, Any]:
    records = cat_records()
    activating = [r for r in records if sum(r["values"]) > 0]
    for record in activating:
        record["tokens"] = [word if t == " cat" else t for t in record["tokens"]]
    return {
        "id": feature_id,
        "activations": activating,
        "nonActivating": [r for r in records if sum(r["values"]) <= 0],
    }


def _request(llm: dict[str, Any] | None = None, **options: Any) -> dict[str, Any]:
    return {
        "features": [_feature("f-cat", " cat"), _feature("f-dog", " dog")],
        "explainer": {"method": "default"},
        "scorers": [{"method": "detection"}, {"method": "fuzz"}],
        "llm": {"model": MODEL, "apiKey": API_KEY, **(llm or {})},
        "options": options,
    }


async def _run(app, body: dict[str, Any]) -> tuple[list[pb.FeatureResult], pb.Usage]:
    request = json_format.ParseDict(body, pb.ExplainAndScoreRequest())
    results: list[pb.FeatureResult] = []
    usage = pb.Usage()
    async with grpc.aio.insecure_channel(app.grpc_target) as channel:
        stream = pb_grpc.AutoInterpStub(channel).ExplainAndScore(
            request, metadata=app.auth, timeout=120
        )
        async for event in stream:
            if event.HasField("result"):
                results.append(event.result)
            else:
                usage = event.progress.usage
    return sorted(results, key=lambda r: r.id), usage


def _measured(result: pb.FeatureResult) -> dict[str, Any]:
    """A result without what differs between two runs of it (usage, time)."""
    copy = pb.FeatureResult()
    copy.CopyFrom(result)
    copy.ClearField("usage")
    copy.ClearField("seconds")
    return json_format.MessageToDict(copy)


@pytest.fixture
async def stored_app(fake_llm, tmp_path: Path):
    settings = app_settings(fake_llm.base_url, store={"dir": str(tmp_path / "store")})
    async with in_process_app(settings) as running:
        yield running


async def test_a_second_identical_run_makes_no_upstream_call(
    stored_app, clean_fake, tmp_path: Path
) -> None:
    first, first_usage = await _run(stored_app, _request())
    sent = clean_fake.stats()["requests"]
    assert sent > 0 and first_usage.llm_calls == sent
    assert first_usage.cached_responses == 0
    assert all(not r.HasField("error") for r in first), first

    clean_fake.reset_stats()
    second, second_usage = await _run(stored_app, _request())
    assert clean_fake.stats()["requests"] == 0
    assert second_usage.llm_calls == 0
    assert second_usage.cached_responses == sent
    # What the stored answers had cost is reported as saved; nothing is spent.
    assert second_usage.saved_cost == pytest.approx(first_usage.cost)
    assert not second_usage.HasField("cost")
    assert [_measured(r) for r in second] == [_measured(r) for r in first]

    # Stored entries hold the model, the time and the token counts, and never the key.
    path = tmp_path / "store" / SQLITE_FILE
    data = path.read_bytes() + b"".join(
        p.read_bytes() for p in path.parent.glob(SQLITE_FILE + "-*")
    )
    assert API_KEY.encode() not in data
    with sqlite3.connect(path) as conn:
        rows = conn.execute(
            "SELECT model, created, prompt_tokens, completion_tokens, entry FROM llm_responses"
        ).fetchall()
    assert len(rows) == sent
    for model, created, prompt_tokens, completion_tokens, entry in rows:
        assert model == MODEL and created > 0 and prompt_tokens > 0 and completion_tokens > 0
        assert API_KEY not in entry
        assert json.loads(entry)["content"]


async def test_fresh_goes_upstream_and_another_scorer_reuses_the_explanation_calls(
    stored_app, clean_fake
) -> None:
    _, first = await _run(stored_app, _request())
    clean_fake.reset_stats()
    _, fresh = await _run(stored_app, _request({"fresh": True}))
    assert clean_fake.stats()["requests"] == first.llm_calls == fresh.llm_calls
    assert fresh.cached_responses == 0

    # Re-scoring with another scorer sends only the new scorer's prompts.
    clean_fake.reset_stats()
    body = _request()
    body["scorers"] = [{"method": "detection"}, {"method": "recall"}]
    _, rescored = await _run(stored_app, body)
    kinds = clean_fake.stats()["by_kind"]
    assert set(kinds) == {"recall"}, kinds
    assert rescored.cached_responses > 0


async def test_best_of_k_drafts_are_distinct_stored_samples(stored_app, clean_fake) -> None:
    body = _request(candidates=3, candidateTemperature=0.9)
    _, first = await _run(stored_app, body)
    explains = clean_fake.stats()["by_kind"]["explain"]
    assert explains == 3 * 2  # k drafts per feature, none collapsed into one stored answer
    clean_fake.reset_stats()
    _, second = await _run(stored_app, body)
    assert clean_fake.stats()["requests"] == 0
    assert second.cached_responses == first.llm_calls


async def test_a_dry_run_sends_nothing_and_counts_what_a_live_run_sends(app, clean_fake) -> None:
    _, dry = await _run(app, _request({"dryRun": True}))
    assert clean_fake.stats()["requests"] == 0
    assert dry.estimated
    clean_fake.reset_stats()
    _, live = await _run(app, _request())
    assert not live.HasField("estimated")
    assert dry.llm_calls == live.llm_calls == clean_fake.stats()["requests"]
    total_dry = dry.prompt_tokens + dry.completion_tokens
    total_live = live.prompt_tokens + live.completion_tokens
    assert abs(total_dry - total_live) <= 0.1 * total_live, (total_dry, total_live)
