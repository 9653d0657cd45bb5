"""One preparation path and one converter (issue 19 items 1 and 4).

Every explain job (Explain, the legacy ExplainDefault, a bulk feature) is checked by one
function and every score job (Score, the legacy ScoreEmbedding / ScoreFuzzDetection, each
scorer of a bulk feature) by another, so an input one door refuses is refused by every door
with the same code and message. Before, ExplainDefault checked its records with a weaker rule
(an all-zero request got 200 after an LLM call, where Explain(default) said 400) and bulk
skipped the explanation checks.

Breakdown items that stand for a caller's record carry its index; where it is lost, the
request fails as a bug (INTERNAL) instead of the legacy breakdown reading ``activations[-1]``,
the last record, as the item's values.
"""

from __future__ import annotations

import json
from typing import Any

import grpc
import pytest
from google.api import annotations_pb2
from google.protobuf import json_format
from support import BULK_DOORS

from autointerp_grpc.delphi_compat import Response
from autointerp_grpc.errors import UpstreamBadResponse
from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2 as pb
from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2_grpc as pb_grpc
from autointerp_grpc.handlers import Deps
from autointerp_grpc.handlers.bulk import explain_and_score
from autointerp_grpc.handlers.explain import explain
from autointerp_grpc.handlers.legacy import explain_default
from autointerp_grpc.handlers.lookup import default_method
from autointerp_grpc.handlers.score import result_proto
from autointerp_grpc.methods.classifiers import Detection
from autointerp_grpc.methods.registry import SCORER_REGISTRY
from autointerp_grpc.methods.spec import ScoreResult
from autointerp_grpc.usage import Usage

MODEL = "openai/gpt-4o-mini"
KEY = "sk-one-path-test-key-2718"
LLM = {"model": MODEL, "apiKey": KEY}
LONG = "cat " * 600  # 2,400 characters, past the default limit of 2,000

SERVICE = pb.DESCRIPTOR.services_by_name["AutoInterp"]


def _route(rpc: str) -> tuple[str, type]:
    """The RPC's REST path (its ``google.api.http`` rule) and request class, from the proto."""
    method = SERVICE.methods_by_name[rpc]
    rule = method.GetOptions().Extensions[annotations_pb2.http]  # pyright: ignore[reportArgumentType]
    return getattr(rule, rule.WhichOneof("pattern")), getattr(pb, method.input_type.name)


def _records(activating: int, non_activating: int) -> list[dict[str, Any]]:
    records = [
        {"tokens": ["The", " cat", f" n{i}"], "values": [0.0, 1.0, 0.0]} for i in range(activating)
    ]
    records += [
        {"tokens": ["The", " bank", f" n{i}"], "values": [0.0, 0.0, 0.0]}
        for i in range(non_activating)
    ]
    return records


async def _refusal(app, rpc: str, body: dict[str, Any]) -> tuple[str, str]:
    """The (code, message) with which both doors refuse ``body``, once they agree on it."""
    path, request_cls = _route(rpc)
    request = json_format.ParseDict(body, request_cls())
    async with grpc.aio.insecure_channel(app.grpc_target) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await getattr(pb_grpc.AutoInterpStub(channel), rpc)(
                request, metadata=app.auth, timeout=60
            )
    over_grpc = (raised.value.code().name, raised.value.details())
    response = await app.rest.post(
        path, content=json.dumps(body), headers={**app.headers, "Content-Type": "application/json"}
    )
    assert response.status_code != 200, (rpc, response.text)
    over_rest = (response.json()["code"], response.json()["detail"])
    assert over_rest == over_grpc, rpc
    return over_rest


async def _bulk_refusals(app, body: dict[str, Any]) -> list[tuple[str, str]]:
    """A one-feature bulk run through both doors: the feature's error, else each scorer's."""
    found = []
    for door in BULK_DOORS.values():
        result = await door(app, body)
        errors = [result["error"]] if "error" in result else [s["error"] for s in result["scores"]]
        found.append([(e["code"], e["message"]) for e in errors])
    assert found[0] == found[1]
    return found[0]


def _bulk_body(records: list[dict[str, Any]], scorer: str = "detection") -> dict[str, Any]:
    # Holdout 0: the scorers see every record, as a single request's scorer does.
    return {
        "llm": LLM,
        "explainer": {"method": "default"},
        "scorers": [{"method": scorer}],
        "features": [{"id": "f", "activations": records}],
        "options": {"holdout": 0},
    }


# --- item 1: one preparation, the same refusal on every door ---------------------------------


EXPLAIN_REFUSALS = {
    # The legacy ExplainDefault answered 200 after an LLM call; Explain(default) said 400.
    "no positive value": (
        _records(0, 4),
        "activations must include at least one record with a positive activation value",
    ),
    "a value per token": (
        [{"tokens": ["The", " cat"], "values": [1.0]}],
        "activations[0] must have one value per token (2 tokens, 1 values)",
    ),
    "a finite value": (
        [{"tokens": ["The", " cat"], "values": [0.0, "NaN"]}, *_records(1, 0)],
        "activations[0].values[1] must be a finite number",
    ),
}


@pytest.mark.parametrize("case", list(EXPLAIN_REFUSALS))
async def test_an_explain_input_is_refused_alike_on_every_door(app, clean_fake, case) -> None:
    records, message = EXPLAIN_REFUSALS[case]
    expected = ("INVALID_ARGUMENT", message)
    legacy = {"activations": records, "model": MODEL, "openrouterKey": KEY}
    standard = {
        "method": "default",
        "defaultParams": {"threshold": 0.6, "showActivations": False},
        "activations": records,
        "llm": LLM,
    }
    assert await _refusal(app, "ExplainDefault", legacy) == expected
    assert await _refusal(app, "Explain", standard) == expected
    assert await _bulk_refusals(app, _bulk_body(records)) == [expected]
    # Refused before any work: no LLM call on any door.
    assert clean_fake.stats()["requests"] == 0


async def test_a_score_without_both_kinds_is_refused_alike_on_every_door(app, clean_fake) -> None:
    records = _records(6, 0)
    expected = (
        "INVALID_ARGUMENT",
        "activations must include both activating records (values summing above 0) and "
        "non-activating records (summing to 0 or less) to score against each other; got 6 "
        "activating and 0 non-activating",
    )
    for kind in ("FUZZ", "DETECTION"):
        legacy = {
            "activations": records,
            "explanation": "the word cat",
            "model": MODEL,
            "openrouterKey": KEY,
            "type": kind,
        }
        assert await _refusal(app, "ScoreFuzzDetection", legacy) == expected
        standard = {
            "method": kind.lower(),
            "explanation": "the word cat",
            "activations": records,
            "llm": LLM,
        }
        assert await _refusal(app, "Score", standard) == expected
        body = _bulk_body(records, kind.lower())
        assert await _bulk_refusals(app, body) == [expected]
    # Only the bulk explainer asked the model anything (once per door and kind): no scorer.
    assert clean_fake.stats()["by_kind"] == {"explain": 4}


async def test_a_long_explanation_is_refused_alike_on_every_door(app) -> None:
    expected = ("INVALID_ARGUMENT", "explanation holds 2400 characters; the limit is 2000")
    records = _records(4, 4)
    for kind in ("FUZZ", "DETECTION"):
        legacy = {
            "activations": records,
            "explanation": LONG,
            "model": MODEL,
            "openrouterKey": KEY,
            "type": kind,
        }
        assert await _refusal(app, "ScoreFuzzDetection", legacy) == expected
    embedding = {"activations": records, "explanation": LONG}
    assert await _refusal(app, "ScoreEmbedding", embedding) == expected
    for method in ("fuzz", "detection", "embedding", "recall"):
        standard = {"method": method, "explanation": LONG, "activations": records, "llm": LLM}
        assert await _refusal(app, "Score", standard) == expected


class _Scripted:
    """An LLM client whose every answer is ``answer``; counts its calls."""

    def __init__(self, answer: str) -> None:
        self.answer = answer
        self.usage = Usage()
        self.answers: list[str] = []
        self.errors: list[Exception] = []
        self.logprobs_missing = False
        self.calls = 0

    async def generate(self, prompt: Any, **_: Any) -> Response:
        self.calls += 1
        return Response(text=self.answer)


class _ScriptedBackend:
    def __init__(self, answer: str) -> None:
        self.clients: list[_Scripted] = []
        self.answer = answer

    def client(self, **_: Any) -> _Scripted:
        self.clients.append(_Scripted(self.answer))
        return self.clients[-1]


async def test_a_generated_explanation_past_the_limit_is_never_scored() -> None:
    """Bulk skipped the Score RPC's explanation checks: a 2,400-character explanation from
    the model was scored there and refused on Score. An explanation this service writes must
    be one it would accept back: one over the limit is an unusable answer, retried once, then
    the feature's UNAVAILABLE naming the limit (the model wrote it, not the caller: never
    INVALID_ARGUMENT), and no scorer asks the model anything."""
    backend = _ScriptedBackend(f"[EXPLANATION]: {LONG.strip()}")
    deps = Deps(llm=backend)  # type: ignore[arg-type]
    records = [json_format.ParseDict(r, pb.Activation()) for r in _records(4, 4)]
    request = pb.ExplainAndScoreRequest(
        llm=pb.LlmOptions(model=MODEL, api_key=KEY),
        explainer=pb.ExplainerChoice(method="default"),
        scorers=[pb.ScorerChoice(method="detection"), pb.ScorerChoice(method="fuzz")],
        features=[pb.Feature(id="f", activations=records)],
    )
    events = [event async for event in explain_and_score(request, deps)]
    [result] = [event.result for event in events if event.HasField("result")]
    assert result.explanation == "" and not result.scores
    assert result.error.code == "UNAVAILABLE"
    assert "longer than the server's limit of 2000 characters" in result.error.message
    # The explainer's two attempts; no scorer call.
    assert sum(client.calls for client in backend.clients) == 2


def test_one_converter_builds_the_response_and_the_bulk_outcome() -> None:
    """The Score RPC's response, a bulk scorer's outcome and a control are built by one
    function: every field the three share carries the same value."""
    method = default_method(SCORER_REGISTRY, "detection")
    interval = pb.ConfidenceInterval(lower=0.4, upper=0.9)
    coverage = pb.Coverage(total=4, answered=3)
    control = ScoreResult(0.5, [], 0.5, confidence_interval=interval, notes=["control note"])
    result = ScoreResult(
        0.75,
        [pb.ScoreBreakdownItem(record_index=0, text="x")],
        0.5,
        confidence_interval=interval,
        coverage=coverage,
        notes=["a note"],
        extra_metrics={"decoy_rate": 0.1},
        control=control,
    )
    response = result_proto(result, pb.ScoreResponse(), method)
    outcome = result_proto(result, pb.ScorerOutcome(), method)
    shared = [
        f.name
        for f in pb.ScorerOutcome.DESCRIPTOR.fields
        if f.name in pb.ScoreResponse.DESCRIPTOR.fields_by_name
    ]
    assert set(shared) >= {"score", "metric", "method", "chance", "notes", "control"}
    for name in shared:
        assert getattr(response, name) == getattr(outcome, name), name
    assert response.metric == "balanced_accuracy"
    assert response.control == pb.ControlScore(
        score=0.5, confidence_interval=interval, notes=["control note"]
    )
    assert list(response.breakdown) == result.breakdown


# --- item 4: a breakdown item carries its record's index -------------------------------------


async def test_a_lost_record_index_is_an_internal_error_not_the_last_record(
    app, clean_fake, monkeypatch
) -> None:
    """The classifier scorers link delphi's outputs to their records by the identity of
    each example's token list. If delphi ever hands back a copy, the link is lost: the
    legacy breakdown used to take ``activations[-1]`` (the last record's values) for every
    such item and answer 200; now the request fails as a bug, with its request id."""
    prepare = Detection._prepare

    def copying(self: Detection, record: Any) -> Any:
        samples = prepare(self, record)
        for sample in samples:
            sample.data.str_tokens = list(sample.data.str_tokens)
        return samples

    monkeypatch.setattr(Detection, "_prepare", copying)
    body = {
        "activations": _records(4, 4),
        "explanation": "the word cat",
        "model": MODEL,
        "openrouterKey": KEY,
        "type": "DETECTION",
    }
    response = await app.rest.post("/v1/score/fuzz-detection", json=body, headers=app.headers)
    assert response.status_code == 500, response.text
    assert response.json()["code"] == "INTERNAL"
    standard = {
        "method": "detection",
        "explanation": "the word cat",
        "activations": body["activations"],
        "llm": LLM,
    }
    response = await app.rest.post("/v1/score", json=standard, headers=app.headers)
    assert response.status_code == 500, response.text
    assert "record index is lost" in app.log_text()


@pytest.mark.parametrize("rpc", ["explain", "explain_default"])
async def test_an_explanation_past_the_limit_is_unavailable_on_explain_too(rpc: str) -> None:
    """The same rule on the single-request RPCs: the model's over-long explanation is never
    returned."""
    backend = _ScriptedBackend(f"[EXPLANATION]: {LONG.strip()}")
    deps = Deps(llm=backend)  # type: ignore[arg-type]
    records = [json_format.ParseDict(r, pb.Activation()) for r in _records(4, 0)]
    with pytest.raises(UpstreamBadResponse, match="longer than the server's limit of 2000"):
        if rpc == "explain":
            await explain(
                pb.ExplainRequest(
                    method="default",
                    activations=records,
                    llm=pb.LlmOptions(model=MODEL, api_key=KEY),
                ),
                deps,
            )
        else:
            await explain_default(
                pb.ExplainDefaultRequest(activations=records, model=MODEL, openrouter_key=KEY),
                deps,
            )
