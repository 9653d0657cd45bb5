"""A hostile LLM provider, through both doors, in process (issue 17 items 1, 2, 3, 7, 10, 13).

Item 1: answers built to stall a parser (an np_max_act label with 2,500 spaces inside, a
detection answer of 60,000 ``[``, ``<think>`` x 8000) keep the event loop answering
(``/health`` p99 under 100 ms while the request runs) and end within the request's limit with
a result or a clear error, never INTERNAL / 500. Item 2: a ``usage.cost`` of 1e308 on every
call reads as unknown (no 500 from an overflowing sum). Item 3: a gzip bomb is UNAVAILABLE
naming the limit. Item 7: a body nested 100,000 deep is UNAVAILABLE. Item 10: a request that
cannot get one of the process-wide LLM slots (all held by another caller's calls against a
hanging model) fails RESOURCE_EXHAUSTED within the slot wait, not after minutes. Item 13: a
provider echoing the key (exact, JSON-escaped, upper-cased, split) leaks it into neither the
response nor the log.

The fake LLM serves each through the model name (``model@answer=...``, ``model@fault=...``).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from google.protobuf import json_format
from google.protobuf.message import Message
from samples import RIGHT_EXPLANATION, cat_records
from support import InProcessApp, app_settings, in_process_app

from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2 as pb
from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2_grpc as pb_grpc

MODEL = "openai/gpt-4o-mini"
KEY = "sk-or-v1-HostileProvider0123456789abcdef"
REQUEST_LIMIT_S = 20.0


def _activating() -> list[dict[str, Any]]:
    return [r for r in cat_records() if sum(r["values"]) > 0]


def _non_activating() -> list[dict[str, Any]]:
    return [r for r in cat_records() if sum(r["values"]) <= 0]


def _explain(model: str, method: str = "default") -> dict[str, Any]:
    return {
        "method": method,
        "activations": _activating(),
        "nonActivating": _non_activating(),
        "llm": {"model": model, "apiKey": KEY},
    }


def _score(model: str) -> dict[str, Any]:
    return {
        "method": "detection",
        "explanation": RIGHT_EXPLANATION,
        "activations": cat_records(),
        "llm": {"model": model, "apiKey": KEY},
    }


def _explain_default(model: str) -> dict[str, Any]:
    return {"activations": cat_records(), "openrouterKey": KEY, "model": model}


# (RPC, REST path, request class, body)
EXPLAIN = ("Explain", "/v1/explain", pb.ExplainRequest)
SCORE = ("Score", "/v1/score", pb.ScoreRequest)
EXPLAIN_DEFAULT = ("ExplainDefault", "/v1/explain/default", pb.ExplainDefaultRequest)


@pytest.fixture(scope="module")
async def hostile_app(fake_llm) -> AsyncIterator[InProcessApp]:
    settings = app_settings(fake_llm.base_url, request_timeout_s=REQUEST_LIMIT_S)
    async with in_process_app(settings) as running:
        yield running


async def _grpc(app: InProcessApp, method: str, request: Message, timeout: float = 60) -> Any:
    async with grpc.aio.insecure_channel(app.grpc_target) as channel:
        return await getattr(pb_grpc.AutoInterpStub(channel), method)(
            request, metadata=app.auth, timeout=timeout
        )


async def _rest(app: InProcessApp, path: str, body: dict[str, Any]) -> Any:
    return await app.rest.post(
        path,
        content=json.dumps(body),
        headers={**app.headers, "Content-Type": "application/json"},
        timeout=60,
    )


async def _door(
    app: InProcessApp, door: str, call: tuple[str, str, type], body: dict[str, Any]
) -> tuple[str, str]:
    """(status name, detail or "") of one call through ``door``."""
    method, path, request_cls = call
    if door == "grpc":
        try:
            await _grpc(app, method, json_format.ParseDict(body, request_cls()))
        except grpc.aio.AioRpcError as exc:
            return exc.code().name, exc.details() or ""
        return "OK", ""
    response = await _rest(app, path, body)
    if response.status_code == 200:
        return "OK", ""
    reply = response.json()
    return reply["code"], reply["detail"]


def _p99(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


async def _health_while(app: InProcessApp, work: asyncio.Task[Any]) -> list[float]:
    """``/health`` latencies (seconds), polled every 10 ms until ``work`` ends. Each counts
    the pause before it too (beyond its 10 ms), so a stall of the loop shows whenever it
    falls."""
    latencies: list[float] = []
    while not work.done():
        began = time.perf_counter()
        response = await app.rest.get("/health")
        answered = time.perf_counter()
        assert response.status_code == 200
        await asyncio.sleep(0.01)
        overslept = time.perf_counter() - answered - 0.01
        latencies.append(answered - began + max(0.0, overslept))
    return latencies


# --- item 1: answers built to stall a parser ------------------------------------------------

HOSTILE = [
    ("spaces", EXPLAIN, lambda model: _explain(model, "np_max_act")),
    ("brackets", SCORE, _score),
    ("think", EXPLAIN, _explain),
]


@pytest.mark.parametrize("door", ["grpc", "rest"])
@pytest.mark.parametrize(("answer", "call", "body_for"), HOSTILE, ids=[h[0] for h in HOSTILE])
async def test_a_hostile_answer_never_stalls_the_loop(
    hostile_app, door, answer, call, body_for
) -> None:
    body = body_for(f"{MODEL}@answer={answer}")
    began = time.monotonic()
    work = asyncio.create_task(_door(hostile_app, door, call, body))
    latencies = await _health_while(hostile_app, work)
    code, detail = await work
    elapsed = time.monotonic() - began
    # A result, or a clear error; never INTERNAL, and within the request's limit.
    assert code in ("OK", "UNAVAILABLE", "INVALID_ARGUMENT"), (code, detail)
    assert code == "OK" or "LLM provider" in detail or "model" in detail.lower(), detail
    assert elapsed < REQUEST_LIMIT_S, elapsed
    assert latencies, "the request ended before /health was polled"
    assert _p99(latencies) < 0.1, f"/health p99 {_p99(latencies) * 1000:.0f} ms"


async def test_an_answer_over_the_limit_is_unavailable_on_both_doors(hostile_app) -> None:
    body = _explain(f"{MODEL}@answer=huge")
    for door in ("grpc", "rest"):
        code, detail = await _door(hostile_app, door, EXPLAIN, body)
        assert code == "UNAVAILABLE", (door, code, detail)
        assert "AUTOINTERP_LLM_MAX_ANSWER_BYTES" in detail, detail


# --- item 2: a cost of 1e308 on every call --------------------------------------------------


async def test_a_cost_of_1e308_reads_as_unknown_on_both_doors(hostile_app) -> None:
    model = f"{MODEL}@fault=huge_cost"
    body = _score(model)
    reply = await _grpc(hostile_app, "Score", json_format.ParseDict(body, pb.ScoreRequest()))
    over_grpc = json_format.MessageToDict(reply)
    response = await _rest(hostile_app, "/v1/score", body)
    assert response.status_code == 200, response.text
    over_rest = response.json()
    for result in (over_grpc, over_rest):
        assert result["score"] == 1.0
        assert int(result["usage"]["llmCalls"]) >= 2  # several calls, each "costing" 1e308
        assert result["usage"].get("cost") is None  # unknown (left out, or JSON null)

    body = _explain_default(model)
    reply = await _grpc(
        hostile_app, "ExplainDefault", json_format.ParseDict(body, pb.ExplainDefaultRequest())
    )
    assert reply.explanation == 'Mentions of "cat"'
    response = await _rest(hostile_app, "/v1/explain/default", body)
    assert response.status_code == 200, response.text
    assert response.json()["explanation"] == 'Mentions of "cat"'


# --- items 3 and 7: a gzip bomb, a body nested too deeply ------------------------------------


@pytest.mark.parametrize(
    ("fault", "words"),
    [("gzip_bomb", "AUTOINTERP_LLM_MAX_RESPONSE_BYTES"), ("nested_body", "not a chat completion")],
)
async def test_a_hostile_body_is_unavailable_on_both_doors(hostile_app, fault, words) -> None:
    body = _explain(f"{MODEL}@fault={fault}")
    for door in ("grpc", "rest"):
        code, detail = await _door(hostile_app, door, EXPLAIN, body)
        assert code == "UNAVAILABLE", (door, code, detail)
        assert words in detail, detail


# --- item 13: the key echoed in any form ------------------------------------------------------


def _leaks(text: str) -> list[str]:
    half = len(KEY) // 2
    pieces = [KEY[:half], KEY[half:], "".join(f"\\u{ord(c):04x}" for c in KEY[:8])]
    return [p for p in pieces if p.lower() in text.lower()]


async def test_an_echoed_key_leaks_into_neither_detail_nor_log(hostile_app) -> None:
    body = _explain(f"{MODEL}@fault=echo_key")
    for door in ("grpc", "rest"):
        code, detail = await _door(hostile_app, door, EXPLAIN, body)
        assert code == "INVALID_ARGUMENT", (door, code, detail)
        assert "[redacted]" in detail
        assert not _leaks(detail), detail
    log = hostile_app.log_text()
    assert "[redacted]" in log
    assert not _leaks(log)


# --- item 10: a fair, bounded wait for the process-wide slots --------------------------------


async def test_a_caller_starved_of_llm_slots_fails_fast_on_both_doors(clean_fake) -> None:
    settings = app_settings(
        clean_fake.base_url,
        llm_max_concurrency=2,
        llm_slot_wait_s=1.0,
        llm_timeout_s=60,
        request_timeout_s=30,
    )
    async with in_process_app(settings) as running:
        # Caller A: two requests against a hanging model hold both slots.
        hog = _explain(f"{MODEL}@fault=hang")
        hogs = [asyncio.create_task(_door(running, "grpc", EXPLAIN, hog)) for _ in range(2)]
        try:
            deadline = time.monotonic() + 15
            while clean_fake.stats()["in_flight"] < 2:  # both hog calls reached the model
                assert time.monotonic() < deadline, clean_fake.stats()
                await asyncio.sleep(0.05)
            for door in ("grpc", "rest"):
                began = time.monotonic()
                code, detail = await _door(running, door, EXPLAIN_DEFAULT, _explain_default(MODEL))
                waited = time.monotonic() - began
                assert code == "RESOURCE_EXHAUSTED", (door, code, detail)
                assert "AUTOINTERP_LLM_MAX_CONCURRENCY" in detail, detail
                assert waited < 3, waited  # the slot wait (1 s), not the model's 60 s
        finally:
            for task in hogs:
                task.cancel()
            await asyncio.gather(*hogs, return_exceptions=True)


# --- attack pass: an answer of brackets is no explanation -------------------------------------


@pytest.mark.parametrize(
    "method", ["np_max_act", "oai_token_act_pair", "np_acts_logits_general", "python_code"]
)
async def test_an_answer_without_words_is_no_explanation(hostile_app, method: str) -> None:
    """Formats whose whole answer is the explanation stored 60,000 '[' (or a nested-bracket
    answer) as a successful explanation; an answer with no letter or digit is unparsable."""
    for answer in ("brackets", "nested"):
        body = _explain(f"{MODEL}@answer={answer}", method)
        body["topPositiveLogits"] = ["cat"]
        for door in ("grpc", "rest"):
            code, detail = await _door(hostile_app, door, EXPLAIN, body)
            assert code == "UNAVAILABLE", (method, answer, door, code, detail)
            assert "no parsable explanation" in detail, detail
