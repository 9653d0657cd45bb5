"""Hostile provider answers and extreme caller values, through both doors (issue 17).

Item 4: top log probabilities that are not probabilities (a log probability of 1000, NaN,
+infinity, alternatives summing above 1, no "0"/"1" alternative) leave that example without a
probability: no ``NaN`` on the wire, no AUC computed from invented values, and a note.

Item 15: the simulation scorer's correlation is scale-invariant, so activations of 1.7e308 or
5e-324 (valid doubles) score exactly as the same records with activation 1 do, in JSON and
logprob_ev modes; the model is never blamed for the caller's data.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import grpc
import httpx
import pytest
from google.protobuf import json_format
from samples import RIGHT_EXPLANATION, cat_records

from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2 as pb
from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2_grpc as pb_grpc
from autointerp_grpc.methods.classifiers import label_probability, probabilities_from_logprobs
from autointerp_grpc.rest.jsonmap import to_json_dict
from autointerp_testing.fake_llm.answers import Answer

MODEL = "openai/gpt-4o-mini"
KEY = "sk-hostile-answers-key-4815"
LLM = {"model": MODEL, "apiKey": KEY}


async def _grpc(app: Any, method: str, body: dict[str, Any], request_cls: type) -> Any:
    request = json_format.ParseDict(body, request_cls())
    async with grpc.aio.insecure_channel(app.grpc_target) as channel:
        stub = pb_grpc.AutoInterpStub(channel)
        return await getattr(stub, method)(request, metadata=app.auth, timeout=120)


async def _rest(app: Any, path: str, body: dict[str, Any]) -> httpx.Response:
    return await app.rest.post(
        path,
        content=json.dumps(body),
        headers={**app.headers, "Content-Type": "application/json"},
        timeout=120,
    )


async def _both_doors(
    app: Any, method: str, path: str, body: dict[str, Any], request_cls: type
) -> tuple[Any, dict[str, Any], str]:
    """The gRPC reply, the REST answer as JSON and as text, after checking they agree."""
    reply = await _grpc(app, method, body, request_cls)
    response = await _rest(app, path, body)
    assert response.status_code == 200, response.text
    assert response.json() == to_json_dict(reply)
    return reply, response.json(), response.text


# --- item 4: top log probabilities that are not probabilities -----------------------------

# (alternatives of one 0/1 answer token, as (token, logprob)); none is a probability.
BAD_ALTERNATIVES: list[list[tuple[str, float]]] = [
    [("1", 1000.0), ("0", 1000.0)],  # exp overflows: delphi answers NaN
    [("1", math.nan), ("0", -0.1)],  # delphi substitutes 0.0
    [("1", math.inf), ("0", -1.0)],
    [("1", -math.inf), ("0", -math.inf)],
    [("1", 0.0), ("0", 0.0)],  # probabilities summing to 2
    [("1", 0.5), ("0", -3.0)],  # a log probability above 0
    [("x", -0.1), ("y", -3.0)],  # no 0/1 alternative: delphi substitutes 0.0
]


def _top(token: str, logprob: float) -> SimpleNamespace:
    return SimpleNamespace(token=token, logprob=logprob)


@pytest.mark.parametrize("alternatives", BAD_ALTERNATIVES, ids=repr)
def test_alternatives_that_are_not_probabilities_give_none(alternatives) -> None:
    assert label_probability([_top(t, lp) for t, lp in alternatives]) is None


def test_real_alternatives_give_delphis_probability() -> None:
    tops = [_top("1", math.log(0.6)), _top("0", math.log(0.3)), _top(" 1", math.log(0.05))]
    assert label_probability(tops) == pytest.approx(0.65 / 0.95)
    # One bad label leaves only its own example without a probability.
    entries = [
        SimpleNamespace(token="[", top_logprobs=[_top("[", 0.0)]),
        SimpleNamespace(token="1", top_logprobs=[_top("1", 1000.0), _top("0", 1000.0)]),
        SimpleNamespace(token=",", top_logprobs=[_top(",", 0.0)]),
        SimpleNamespace(token=" 0", top_logprobs=[_top(" 0", math.log(0.8))]),
    ]
    assert probabilities_from_logprobs(entries, 2) == [None, 0.0]


def _spoiled_logprobs(original: Callable[..., list[dict[str, Any]]]) -> Callable[..., Any]:
    """Answer.logprobs whose 0/1 answer tokens carry BAD_ALTERNATIVES, in turn."""
    turn = iter(range(10**9))

    def logprobs(self: Answer, content: str, top_n: int | None) -> list[dict[str, Any]]:
        entries = original(self, content, top_n)
        for entry in entries:
            if entry["token"].strip() in ("0", "1"):
                bad = BAD_ALTERNATIVES[next(turn) % len(BAD_ALTERNATIVES)]
                entry["top_logprobs"] = [
                    {"token": t, "logprob": lp, "bytes": None} for t, lp in bad
                ]
        return entries

    return logprobs


@pytest.fixture
def spoiled_logprobs(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fake LLM (in this process) answers with top log probabilities that are not."""
    monkeypatch.setattr(Answer, "logprobs", _spoiled_logprobs(Answer.logprobs))


@pytest.mark.parametrize("method", ["detection", "fuzz"])
async def test_logprobs_that_are_not_probabilities_give_no_probability_and_no_auc(
    app, spoiled_logprobs, method: str
) -> None:
    body = {
        "method": method,
        "explanation": RIGHT_EXPLANATION,
        "activations": cat_records(),
        "llm": LLM,
        f"{method}Params": {"useLogprobs": True},
    }
    reply, result, text = await _both_doors(app, "Score", "/v1/score", body, pb.ScoreRequest)
    assert "NaN" not in text and "Infinity" not in text
    assert not reply.classifier.HasField("auc")
    assert "auc" not in result["classifier"] or result["classifier"]["auc"] is None
    # The answers still count; only the probabilities are gone.
    assert result["score"] == 1.0
    assert reply.classifier.answered == 14
    assert not any(item.HasField("probability") for item in reply.breakdown)
    assert any("No AUC is reported" in note for note in result["notes"]), result["notes"]


async def test_legacy_fuzz_detection_has_no_nan_probability(app, spoiled_logprobs) -> None:
    body = {
        "activations": cat_records(),
        "explanation": RIGHT_EXPLANATION,
        "openrouterKey": KEY,
        "model": MODEL,
        "type": "DETECTION",
    }
    reply, _, text = await _both_doors(
        app, "ScoreFuzzDetection", "/v1/score/fuzz-detection", body, pb.ScoreFuzzDetectionRequest
    )
    assert "NaN" not in text
    for item in reply.breakdown:
        assert not item.HasField("probability") or 0.0 <= item.probability <= 1.0


# --- item 15: activations at the ends of the double range ---------------------------------


def _records_at(peak: float) -> list[dict[str, Any]]:
    """cat_records with every positive activation set to ``peak``."""
    return [
        {"tokens": r["tokens"], "values": [peak if v > 0 else 0.0 for v in r["values"]]}
        for r in cat_records()
    ]


@pytest.mark.parametrize("mode", ["json", "logprob_ev"])
@pytest.mark.parametrize("peak", [1.7e308, 5e-324, 1e-310])
async def test_simulation_scores_extreme_activations_as_their_shape(
    app, mode: str, peak: float
) -> None:
    def body(records: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "method": "simulation",
            "explanation": RIGHT_EXPLANATION,
            "activations": records,
            "llm": LLM,
            "simulationParams": {"mode": mode},
        }

    _, reference, _ = await _both_doors(
        app, "Score", "/v1/score", body(_records_at(1.0)), pb.ScoreRequest
    )
    _, extreme, text = await _both_doors(
        app, "Score", "/v1/score", body(_records_at(peak)), pb.ScoreRequest
    )
    assert "NaN" not in text
    assert extreme["score"] == pytest.approx(reference["score"], abs=1e-9)
    assert extreme["confidenceInterval"] == pytest.approx(reference["confidenceInterval"])
    for ours, theirs in zip(extreme["breakdown"], reference["breakdown"], strict=True):
        assert ours.get("correlation") == pytest.approx(theirs.get("correlation"), abs=1e-9)
