"""A request whose deadline comes returns what it has (issue 20 item 3), on both doors.

Upstream calls still running just before the request's deadline (the server's request limit,
or the gRPC client's deadline) are closed and count as unanswered; the scorer then scores what
was answered under the coverage floor: a result with its coverage and a note naming the
deadline when enough was answered, else the floor's UNAVAILABLE naming the counts. Here the
fake LLM holds the first calls of a request ("hang") and answers the others at once.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from google.protobuf import json_format
from samples import RIGHT_EXPLANATION, cat_records
from support import InProcessApp, app_settings, in_process_app

from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2 as pb
from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2_grpc as pb_grpc
from autointerp_grpc.observability import ANSWER_MARGIN_MAX_S, RequestStats
from autointerp_grpc.rest.jsonmap import to_json_dict
from autointerp_grpc.service import deadline_of

SERVER_LIMIT_S = 3.0
"""The REST door's deadline here: the server's request limit."""
CLIENT_DEADLINE_S = 3.0
"""The gRPC door's deadline here: the client's (the server's limit is the default 600 s)."""
DEADLINE_NOTE = "The request's deadline came before the LLM answered"


def _body() -> dict[str, Any]:
    # 5 activating and 5 non-activating records, one JSON-mode simulation call each.
    return {
        "method": "simulation",
        "simulationParams": {"mode": "json"},
        "explanation": RIGHT_EXPLANATION,
        "activations": cat_records()[:10],
        "llm": {"model": "openai/gpt-4o-mini", "apiKey": "sk-deadline-test-key"},
    }


@pytest.fixture
async def limited_app(clean_fake) -> AsyncIterator[InProcessApp]:
    settings = app_settings(clean_fake.base_url, request_timeout_s=SERVER_LIMIT_S)
    async with in_process_app(settings) as running:
        yield running


async def _rest(app: InProcessApp) -> tuple[int, dict[str, Any], float]:
    began = time.monotonic()
    response = await app.rest.post(
        "/v1/score",
        content=json.dumps(_body()),
        headers={**app.headers, "Content-Type": "application/json"},
        timeout=30,
    )
    return response.status_code, response.json(), time.monotonic() - began


async def _grpc(app: InProcessApp) -> tuple[pb.ScoreResponse, float]:
    request = json_format.ParseDict(_body(), pb.ScoreRequest())
    began = time.monotonic()
    async with grpc.aio.insecure_channel(app.grpc_target) as channel:
        reply = await pb_grpc.AutoInterpStub(channel).Score(
            request, metadata=app.auth, timeout=CLIENT_DEADLINE_S
        )
    return reply, time.monotonic() - began


def _check_partial(data: dict[str, Any]) -> None:
    coverage = data["coverage"]
    assert coverage["total"] == 10
    assert coverage["answered"] == 9, coverage
    notes = " ".join(data["notes"])
    assert "Scored on the" in notes and DEADLINE_NOTE in notes, notes
    unanswered = [i for i in data["breakdown"] if not i.get("predictedActivations")]
    assert len(unanswered) == 1


async def test_rest_returns_what_was_answered_by_the_server_limit(
    limited_app: InProcessApp, clean_fake
) -> None:
    clean_fake.set_fault("hang", 1)
    status, data, seconds = await _rest(limited_app)
    assert status == 200, data
    assert seconds < SERVER_LIMIT_S
    _check_partial(data)


async def test_grpc_returns_what_was_answered_by_the_client_deadline(app, clean_fake) -> None:
    clean_fake.set_fault("hang", 1)
    reply, seconds = await _grpc(app)
    assert seconds < CLIENT_DEADLINE_S
    _check_partial(to_json_dict(reply))


async def test_rest_below_the_floor_at_the_limit_names_the_counts(
    limited_app: InProcessApp, clean_fake
) -> None:
    # 3 of 10 calls held: one class keeps at most 3 of its 5 records, under the 80% floor.
    clean_fake.set_fault("hang", 3)
    status, data, seconds = await _rest(limited_app)
    assert seconds < SERVER_LIMIT_S
    assert status == 503, data
    assert data["code"] == "UNAVAILABLE"
    assert "got a usable answer, below the floor" in data["detail"]
    assert DEADLINE_NOTE in data["detail"]


async def test_grpc_nothing_answered_by_the_deadline_is_deadline_exceeded(app, clean_fake) -> None:
    clean_fake.set_fault("hang")
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await _grpc(app)
    assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    # The server's own answer (the scorer's typed error), sent before the client gave up.
    assert DEADLINE_NOTE in (info.value.details() or ""), info.value.details()


def test_the_cut_leaves_a_margin_to_score() -> None:
    now = time.monotonic()
    # The deadline: the server's limit, or the client's deadline when that comes first.
    assert deadline_of(3.0) - now == pytest.approx(3.0, abs=0.05)
    assert deadline_of(600.0, 2.0) - now == pytest.approx(2.0, abs=0.05)
    assert deadline_of(600.0, -1.0) == pytest.approx(now, abs=0.05)
    # Calls are cut a tenth of the time left before it, at most ANSWER_MARGIN_MAX_S.
    for left, margin in ((3.0, 0.3), (600.0, ANSWER_MARGIN_MAX_S)):
        stats = RequestStats(deadline=time.monotonic() + left)
        stats.cut_calls_before_deadline()
        assert stats.deadline is not None and stats.answer_by is not None
        assert stats.deadline - stats.answer_by == pytest.approx(margin, abs=0.05)
    # A stream (no deadline of its own) is not cut.
    stream = RequestStats()
    stream.cut_calls_before_deadline()
    assert stream.answer_by is None
