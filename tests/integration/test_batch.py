"""Provider Batch API mode, end to end in process against the fake LLM's files and batches
endpoints: rounds replay over the store until nothing is pending, on both doors; a pending
feature is never a score or a failure; the results and the cost match a live run's (half,
by the price table); the open batches survive a restart; partial failures and expiry are
sent again; a call that keeps failing fails its feature."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import json_format
from samples import cat_records
from support import app_settings, in_process_app

from autointerp_grpc.backends.batch import MAX_BATCH_ATTEMPTS, split_lines
from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2 as pb
from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2_grpc as pb_grpc
from autointerp_grpc.pricing import PriceTable

API_KEY = "sk-batch-test-key-41c2"
MODEL = "openai/gpt-4o-mini"
PRICES = json.dumps({MODEL: {"input": 0.15, "cached_input": 0.075, "output": 0.6}})


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


def _request(batch: bool, **options: Any) -> dict[str, Any]:
    return {
        "features": [_feature("f-cat", " cat"), _feature("f-dog", " dog")],
        "explainer": {"method": "default"},
        "scorers": [{"method": "detection"}, {"method": "fuzz"}],
        "llm": {"model": MODEL, "apiKey": API_KEY, "batch": batch},
        "options": options,
    }


Events = tuple[list[pb.FeatureResult], pb.Progress, pb.BatchRound | None]


def _round_of(events: list[pb.ExplainAndScoreEvent]) -> Events:
    """A round's results (by id), its last progress and its batch report."""
    results: list[pb.FeatureResult] = []
    progress = pb.Progress()
    round_: pb.BatchRound | None = None
    for event in events:
        if event.HasField("result"):
            results.append(event.result)
        elif event.HasField("batch"):
            round_ = event.batch
        else:
            progress = event.progress
    return sorted(results, key=lambda r: r.id), progress, round_


async def _grpc_round(app, body: dict[str, Any]) -> Events:
    request = json_format.ParseDict(body, pb.ExplainAndScoreRequest())
    async with grpc.aio.insecure_channel(app.grpc_target) as channel:
        stream = pb_grpc.AutoInterpStub(channel).ExplainAndScore(
            request, metadata=app.auth, timeout=120
        )
        return _round_of([event async for event in stream])


async def _rest_round(app, body: dict[str, Any]) -> Events:
    response = await app.rest.post("/v1/explain-and-score", json=body, headers=app.headers)
    assert response.status_code == 200, response.text
    return _round_of(
        [json_format.Parse(line, pb.ExplainAndScoreEvent()) for line in response.text.splitlines()]
    )


def _measured(result: pb.FeatureResult) -> dict[str, Any]:
    copy = pb.FeatureResult()
    copy.CopyFrom(result)
    copy.ClearField("usage")
    copy.ClearField("seconds")
    return json_format.MessageToDict(copy)


def _check_pending(results: list[pb.FeatureResult]) -> None:
    """A pending feature has no explanation, no score and no error."""
    for result in results:
        if result.pending:
            assert not result.explanation and not result.scores and not result.candidates
            assert not result.HasField("error")


async def _until_done(app, body: dict[str, Any], door=_grpc_round, rounds: int = 12):
    """Batch rounds until nothing is pending: the final results, the summed cost and every
    round's report."""
    reports: list[pb.BatchRound] = []
    cost = 0.0
    for _ in range(rounds):
        results, progress, report = await door(app, body)
        _check_pending(results)
        assert report is not None
        reports.append(report)
        cost += progress.usage.cost
        if progress.pending == 0:
            return results, cost, reports
    raise AssertionError(f"still pending after {rounds} rounds: {reports[-1]}")


@pytest.fixture
async def stores(fake_llm, tmp_path: Path):
    """Two apps on two stores: one runs live, the other in batch mode."""
    apps = []
    for name in ("live", "batch"):
        settings = app_settings(
            fake_llm.base_url, store={"dir": str(tmp_path / name)}, llm={"prices": PRICES}
        )
        apps.append(in_process_app(settings))
    live = await apps[0].__aenter__()
    batch = await apps[1].__aenter__()
    try:
        yield live, batch
    finally:
        await apps[1].__aexit__(None, None, None)
        await apps[0].__aexit__(None, None, None)


@pytest.mark.parametrize("door", [_grpc_round, _rest_round], ids=["grpc", "rest"])
async def test_batch_rounds_match_a_live_run_at_half_the_cost(stores, clean_fake, door) -> None:
    live_app, batch_app = stores
    clean_fake.batches.configure()
    live, live_progress, no_round = await _grpc_round(live_app, _request(batch=False))
    assert no_round is None and live_progress.usage.cost > 0
    sent_live = clean_fake.stats()["requests"]

    clean_fake.reset_stats()
    answered_before = clean_fake.batches.requests
    results, cost, reports = await _until_done(batch_app, _request(batch=True), door)
    # Nothing went through chat completions: every call was answered by a batch.
    assert clean_fake.stats()["requests"] == 0
    assert clean_fake.batches.requests - answered_before == sent_live
    # explain, then the scorers: at least two rounds that submitted something.
    assert sum(r.submitted_requests for r in reports) == sent_live
    assert len([r for r in reports if r.submitted_requests]) >= 2
    assert reports[0].submitted_batch_ids and reports[-1].submitted_requests == 0
    assert [_measured(r) for r in results] == [_measured(r) for r in live]
    # The answers cost half, by the price table, when they were collected: the last round
    # (which replays them all) reports them as saved.
    assert cost == 0.0
    last_usage = (await _grpc_round(batch_app, _request(batch=True)))[1].usage
    live_usage = live_progress.usage
    # (The fake reports its own cost for live calls; the price table prices the tokens.)
    live_by_table = PriceTable.parse(json.loads(PRICES)).cost(
        MODEL, live_usage.prompt_tokens, live_usage.completion_tokens
    )
    assert live_by_table is not None and live_by_table > 0
    assert last_usage.saved_cost == pytest.approx(live_by_table / 2, rel=1e-9)
    assert last_usage.llm_calls == 0 and last_usage.cached_responses == sent_live


async def test_open_batches_survive_a_restart(fake_llm, clean_fake, tmp_path: Path) -> None:
    settings = app_settings(fake_llm.base_url, store={"dir": str(tmp_path / "s")})
    clean_fake.batches.configure(delay_s=0.5)
    try:
        async with in_process_app(settings) as app:
            results, progress, report = await _grpc_round(app, _request(batch=True))
            assert progress.pending == 2 and progress.failed == 0
            assert report is not None and report.submitted_requests == 2
            assert report.open_batches == 1 and report.expected_wait_s > 0
            # Asked again at once: the batch is still open, nothing is submitted twice.
            _, progress, report = await _grpc_round(app, _request(batch=True))
            assert progress.pending == 2 and report is not None
            assert report.submitted_requests == 0 and report.open_batches == 1
        clean_fake.batches.configure()
        async with in_process_app(settings) as app:  # a restarted server
            results, _, _ = await _until_done(app, _request(batch=True))
        assert all(r.explanation and not r.pending for r in results)
        assert clean_fake.stats()["requests"] == 0
    finally:
        clean_fake.batches.configure()


async def test_failed_and_expired_requests_are_sent_again(
    fake_llm, clean_fake, tmp_path: Path
) -> None:
    settings = app_settings(fake_llm.base_url, store={"dir": str(tmp_path / "s")})
    try:
        async with in_process_app(settings) as app:
            clean_fake.batches.configure(expire=True)
            await _grpc_round(app, _request(batch=True))  # submits the two explanations
            clean_fake.batches.configure(failure_rate=0.5)
            _, _, report = await _grpc_round(app, _request(batch=True))
            assert report is not None
            # The expired batch answered one explanation; the other is submitted again.
            assert report.collected_answers == 1 and report.failed_requests == 1
            results, _, reports = await _until_done(app, _request(batch=True))
        assert sum(r.failed_requests for r in reports) >= 1  # some scorer calls failed once
        assert all(r.explanation and not r.pending and not r.HasField("error") for r in results)
    finally:
        clean_fake.batches.configure()


async def test_a_call_that_keeps_failing_fails_its_feature(
    fake_llm, clean_fake, tmp_path: Path
) -> None:
    settings = app_settings(fake_llm.base_url, store={"dir": str(tmp_path / "s")})
    clean_fake.batches.configure(expire=True)
    try:
        async with in_process_app(settings) as app:
            body = _request(batch=True)
            body["features"] = body["features"][:1]  # one request a batch: never answered
            for _ in range(MAX_BATCH_ATTEMPTS):
                results, progress, _ = await _grpc_round(app, body)
                assert progress.pending == 1
            results, progress, _ = await _grpc_round(app, body)
        assert progress.pending == 0 and progress.failed == 1
        assert results[0].error.code == "UNAVAILABLE"
        assert "batches" in results[0].error.message
    finally:
        clean_fake.batches.configure()


async def test_batch_mode_refusals(app, fake_llm) -> None:
    # The session app has no store: batch mode says what it needs.
    body = _request(batch=True)
    response = await app.rest.post("/v1/explain-and-score", json=body, headers=app.headers)
    assert response.status_code == 400 or "FAILED_PRECONDITION" in response.text
    assert "AUTOINTERP_STORE__DIR" in response.text
    body["llm"]["fresh"] = True
    response = await app.rest.post("/v1/explain-and-score", json=body, headers=app.headers)
    assert response.status_code == 400
    assert "llm.batch and llm.fresh" in response.json()["detail"]
    # Explain answers at once: batch mode is refused there.
    explain = {
        "method": "default",
        "activations": _feature("f", " cat")["activations"],
        "llm": {"model": MODEL, "apiKey": API_KEY, "batch": True},
    }
    response = await app.rest.post("/v1/explain", json=explain, headers=app.headers)
    assert response.status_code == 400, response.text
    assert "ExplainAndScore only" in response.json()["detail"]


def test_batch_files_split_at_the_limits() -> None:
    lines = [b"x" * 10 + b"\n"] * 7
    assert [len(f) for f in split_lines(lines, max_requests=3, max_bytes=10**6)] == [3, 3, 1]
    assert [len(f) for f in split_lines(lines, max_requests=100, max_bytes=25)] == [2] * 3 + [1]
    assert split_lines([b"y" * 50], max_requests=5, max_bytes=10) == [[b"y" * 50]]
    assert split_lines([]) == []
