"""Every explainer and scorer, on both doors, against a real local model (issue 20).

What a user may rely on with any model, however small: a 200 with a well-formed result, or a
clear typed error (UNAVAILABLE naming the answer the method expected, or FAILED_PRECONDITION
saying what the provider lacks) — never a 500, a request past its limit, a NaN, or a
data-shaped answer stored as an explanation. The model here is SmolLM2-135M-Instruct (Q4_1)
behind llama.cpp's server: it rarely follows a format, which is the point.

Inputs are small (at most 7 + 7 five-token records; simulation 3 + 3, detection and fuzz 5 +
5; a few hundred answer tokens) so that the tier runs in minutes on two CPU cores. The
24-record measurements run only with ``AUTOINTERP_REAL_LLM_24=1`` (they take longer than the
rest of the tier together). Each request adds a row to the tier's report (printed at the
end; written to ``$AUTOINTERP_REAL_LLM_REPORT`` when set): its outcome, seconds, LLM calls,
prompt tokens and, for the methods that have more than one, which path ran (structured
output, simulation mode).
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import re
import time
from typing import Any

import grpc
import httpx
import pytest
from google.protobuf import json_format
from real_llm_support import REPORT, REQUEST_TIMEOUT_S, LlamaServer
from samples import RIGHT_EXPLANATION, cat_records, many_cat_records
from support import RunningServer

from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2 as pb
from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2_grpc as pb_grpc
from autointerp_grpc.methods.explainers import ANY_ANSWER_SHAPE
from autointerp_grpc.rest.jsonmap import to_json_dict

pytestmark = pytest.mark.real_llm

# The methods, as ListMethods lists them (checked against the server below).
EXPLAINERS = [
    "default",
    "contrastive",
    "oai_token_act_pair",
    "np_max_act",
    "np_max_act_logits",
    "np_acts_logits_general",
    "python_code",
    "oai_attention_head",
]
SCORERS = [
    "detection",
    "fuzz",
    "embedding",
    "simulation",
    "intruder",
    "example_embedding",
    "recall",
]
DOORS = ["rest", "grpc"]
# The answer budget of each call: enough for any format's answer from a small model.
EXPLAIN_MAX_TOKENS = 120
SCORE_MAX_TOKENS = 160
# What may come back besides a 200 (as the REST door names the code).
# DEADLINE_EXCEEDED: a scorer whose calls had answered nothing usable by the deadline (what
# was answered by then is scored, under the coverage floor).
TYPED_FAILURES = {"UNAVAILABLE", "FAILED_PRECONDITION", "DEADLINE_EXCEEDED"}
_GRPC_TO_HTTP = {"UNAVAILABLE": 503, "FAILED_PRECONDITION": 400, "DEADLINE_EXCEEDED": 504}


# Records per scorer: as few as the method's rules allow, so that a slow model finishes.
_RECORDS_PER_SCORER = {"simulation": 6, "detection": 10, "fuzz": 10}


def _score_records(method: str) -> list[dict[str, Any]]:
    """The first records of :func:`cat_records` (interleaved: half activating)."""
    return cat_records()[: _RECORDS_PER_SCORER.get(method, 14)]


def _llm(max_tokens: int) -> dict[str, Any]:
    # llama.cpp's server serves its one model whatever the name, and needs no key.
    return {"model": "smollm2-135m-instruct", "apiKey": "none", "maxTokens": max_tokens}


def _activating() -> list[dict[str, Any]]:
    return [r for r in cat_records() if sum(r["values"]) > 0]


def _explain_body(method: str) -> dict[str, Any]:
    body: dict[str, Any] = {"method": method, "llm": _llm(EXPLAIN_MAX_TOKENS)}
    if method == "oai_attention_head":
        body["attention"] = [
            {
                "tokens": r["tokens"],
                "fromIndex": len(r["tokens"]) - 1,
                "weights": [0.9 if v > 0 else 0.02 for v in r["values"]],
            }
            for r in _activating()
        ]
        return body
    body["activations"] = _activating()
    if method == "contrastive":
        body["nonActivating"] = [r for r in cat_records() if sum(r["values"]) <= 0]
    if method in ("np_max_act_logits", "np_acts_logits_general"):
        body["topPositiveLogits"] = [" cats", " kitten", " feline"]
    return body


def _score_body(method: str, records: list[dict[str, Any]]) -> dict[str, Any]:
    body: dict[str, Any] = {"method": method, "activations": records}
    if method not in ("intruder", "example_embedding"):
        body["explanation"] = RIGHT_EXPLANATION
    if method not in ("embedding", "example_embedding"):
        body["llm"] = _llm(SCORE_MAX_TOKENS)
    return body


def _no_nan(text: str) -> Any:
    def refuse(constant: str) -> Any:
        raise AssertionError(f"the response holds {constant}")

    return json.loads(text, parse_constant=refuse)


async def _call(
    service: RunningServer, door: str, rpc: str, path: str, body: dict[str, Any]
) -> tuple[int, str, dict[str, Any], float]:
    """(HTTP status or its equivalent, code name, JSON body, seconds) of one request."""
    began = time.monotonic()
    if door == "rest":
        async with httpx.AsyncClient(base_url=service.http_base) as http:
            response = await http.post(
                path,
                json=body,
                headers={"X-SECRET-KEY": service.secret},
                timeout=REQUEST_TIMEOUT_S + 30,
            )
        seconds = time.monotonic() - began
        data = _no_nan(response.text)
        return response.status_code, data.get("code", "OK"), data, seconds
    request_cls = pb.ExplainRequest if rpc == "Explain" else pb.ScoreRequest
    request = json_format.ParseDict(body, request_cls())
    async with grpc.aio.insecure_channel(service.grpc_target) as channel:
        stub = pb_grpc.AutoInterpStub(channel)
        try:
            reply = await getattr(stub, rpc)(
                request,
                metadata=(("x-secret-key", service.secret),),
                timeout=REQUEST_TIMEOUT_S + 30,
            )
        except grpc.aio.AioRpcError as error:
            name = error.code().name
            seconds = time.monotonic() - began
            return _GRPC_TO_HTTP.get(name, 500), name, {"detail": error.details()}, seconds
    seconds = time.monotonic() - began
    # Printed as the REST door would, then read back refusing NaN/Infinity.
    return 200, "OK", _no_nan(json.dumps(to_json_dict(reply))), seconds


def _path(method: str, data: dict[str, Any]) -> str:
    """Which path a method took, from what it says in its notes."""
    notes = " ".join(data.get("notes", []))
    if method == "simulation":
        mode = re.search(r"Simulated with mode (\w+)", notes)
        return f"mode {mode.group(1)}" if mode else "mode ?"
    if method == "recall" and "structured output" in notes:
        return notes[notes.index("tructured output") - 1 :].split(".")[0]
    return ""


def _record(method: str, door: str, status: int, code: str, data: dict[str, Any], s: float):
    usage = data.get("usage", {})
    REPORT.append(
        {
            "method": method,
            "door": door,
            "status": status,
            "code": code,
            "seconds": round(s, 1),
            "llm_calls": usage.get("llmCalls", 0),
            "prompt_tokens": usage.get("promptTokens", 0),
            "completion_tokens": usage.get("completionTokens", 0),
            "path": _path(method, data) if status == 200 else "",
            "detail": data.get("detail", "")[:200],
        }
    )


async def test_list_methods_names_every_method(service: RunningServer) -> None:
    async with httpx.AsyncClient(base_url=service.http_base) as http:
        response = await http.get("/v1/methods", headers={"X-SECRET-KEY": service.secret})
    assert response.status_code == 200
    listed = [m["name"] for m in response.json()["methods"]]
    assert listed == [*EXPLAINERS, *SCORERS]


@pytest.mark.parametrize("door", DOORS)
@pytest.mark.parametrize("method", EXPLAINERS)
async def test_every_explainer_answers_or_names_its_answer_shape(
    service: RunningServer, method: str, door: str
) -> None:
    status, code, data, seconds = await _call(
        service, door, "Explain", "/v1/explain", _explain_body(method)
    )
    _record(method, door, status, code, data, seconds)
    assert seconds < REQUEST_TIMEOUT_S + 5
    if status == 200:
        explanation = data["explanation"]
        assert re.search(r"\w", explanation), data
        assert explanation != "Explanation could not be parsed."
        # Never the prompt's data shape: a token<TAB>activation line, a delphi example line.
        assert not re.search(r"\t\d+\s*$", explanation), explanation
        assert not re.match(r"\s*Example \d+:", explanation), explanation
        assert data["usage"]["llmCalls"] >= 1
        assert data["method"] == method
        return
    assert code in TYPED_FAILURES, (status, data)
    assert status == _GRPC_TO_HTTP[code]
    detail = data["detail"]
    if code == "UNAVAILABLE":
        # The failure names the answer this explainer's format asks for.
        assert "(expected " in detail, detail
        assert ANY_ANSWER_SHAPE not in detail, detail


def _check_score(method: str, data: dict[str, Any], n_records: int) -> None:
    score = data["score"]
    assert math.isfinite(score)
    low = -1.0 if method == "simulation" else 0.0
    assert low <= score <= 1.0, data
    assert math.isfinite(data["chance"])
    if "embedding" not in method:  # the embedding scorers ask no model: no coverage
        coverage = data["coverage"]
        assert 0 < coverage["answered"] <= coverage["total"]
    if method not in ("intruder", "example_embedding"):
        assert len([i for i in data["breakdown"] if i["recordIndex"] >= 0]) == n_records
    interval = data.get("confidenceInterval")
    if interval:  # proto3 JSON leaves out a bound of 0.0
        assert interval.get("lower", 0.0) <= score <= interval.get("upper", 0.0)


@pytest.mark.parametrize("door", DOORS)
@pytest.mark.parametrize("method", SCORERS)
async def test_every_scorer_scores_or_says_what_it_lacked(
    service: RunningServer, method: str, door: str
) -> None:
    records = _score_records(method)
    status, code, data, seconds = await _call(
        service, door, "Score", "/v1/score", _score_body(method, records)
    )
    _record(method, door, status, code, data, seconds)
    assert seconds < REQUEST_TIMEOUT_S + 5
    if status == 200:
        _check_score(method, data, len(records))
        return
    assert code in TYPED_FAILURES, (status, data)
    assert status == _GRPC_TO_HTTP[code]
    detail = data["detail"]
    if code == "UNAVAILABLE":
        # The coverage floor's refusal names the counts, or the answer shape it expected.
        assert "answer" in detail, detail
        if "the expected format" in detail:
            assert "the expected format (" in detail, detail
    if code == "DEADLINE_EXCEEDED":
        assert "deadline" in detail, detail


@pytest.mark.skipif(
    os.environ.get("AUTOINTERP_REAL_LLM_24") != "1",
    reason="the 24-record measurements are opt-in: AUTOINTERP_REAL_LLM_24=1",
)
@pytest.mark.parametrize("method", [s for s in SCORERS if "embedding" not in s])
async def test_what_a_24_record_request_sends(service: RunningServer, method: str) -> None:
    """Calls, prompt tokens and seconds of one 24-record request per LLM scorer (gRPC); a
    request that its deadline cuts short returns what was answered by then (coverage)."""
    records = many_cat_records()[:24]
    status, code, data, seconds = await _call(
        service, "grpc", "Score", "/v1/score", _score_body(method, records)
    )
    _record(f"{method} (24 records)", "grpc", status, code, data, seconds)
    assert seconds < REQUEST_TIMEOUT_S + 5
    if status == 200:
        _check_score(method, data, len(records))
    else:
        assert code in TYPED_FAILURES, (status, data)


async def test_a_request_that_ends_leaves_no_queued_generation(
    service: RunningServer, llama_server: LlamaServer
) -> None:
    """Upstream cancellation, seen from llama.cpp's side: a request's deadline closes its
    upstream calls. llama-cpp-python's server generates one answer at a time; the calls still
    queued behind it are dropped unanswered ("before llm invoked" in its log) instead of
    being generated for nobody. (It finishes the answer it is generating, bounded by
    ``maxTokens``: it checks for a gone client only before it starts.)"""
    marker = "Disconnected from client (via refresh/close) before llm invoked"
    before = llama_server.log_text().count(marker)
    # 14 records at 5 per prompt: 3 calls at once, 2 of them queued at llama.cpp's server.
    request = json_format.ParseDict(_score_body("detection", cat_records()), pb.ScoreRequest())
    async with grpc.aio.insecure_channel(service.grpc_target) as channel:
        stub = pb_grpc.AutoInterpStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.Score(request, metadata=(("x-secret-key", service.secret),), timeout=1.5)
    assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        dropped = llama_server.log_text().count(marker) - before
        if dropped >= 1:
            break
        await asyncio.sleep(1)
    REPORT.append({"method": "cancellation", "dropped_queued_calls": dropped})
    assert dropped >= 1, llama_server.log_text()[-2000:]
