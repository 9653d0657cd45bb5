"""Parity, in process: every legacy RPC and its standard twin give identical explanations,
scores and per-item predictions on the same input, over gRPC and over REST, and the two doors
agree with each other.

* ExplainDefault         = Explain(method "default", defaultParams threshold 0.6)
* ScoreFuzzDetection(T)  = Score(method "fuzz" | "detection")
* ScoreEmbedding         = Score(method "embedding")

Each pair also sends the fake LLM the same calls (kinds and batch sizes).
"""

from __future__ import annotations

import json
from typing import Any

import grpc
import pytest
from google.protobuf import json_format
from samples import RIGHT_EXPLANATION, SEED_EXPLAIN_BODY, WRONG_EXPLANATION, cat_records

from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2 as pb
from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2_grpc as pb_grpc
from autointerp_grpc.rest.jsonmap import to_json_dict

MODEL = "openai/gpt-4o-mini"
KEY = "sk-parity-provider-key-7777"
# Half right: "cat" finds the activating records, "stock" one non-activating record too, so
# the predictions mix right and wrong answers and their order matters.
MIXED_EXPLANATION = "cat or stock prices"

# RPC name → (REST path, request class).
ROUTES: dict[str, tuple[str, type]] = {
    "ExplainDefault": ("/v1/explain/default", pb.ExplainDefaultRequest),
    "Explain": ("/v1/explain", pb.ExplainRequest),
    "ScoreFuzzDetection": ("/v1/score/fuzz-detection", pb.ScoreFuzzDetectionRequest),
    "ScoreEmbedding": ("/v1/score/embedding", pb.ScoreEmbeddingRequest),
    "Score": ("/v1/score", pb.ScoreRequest),
}


async def _call(app, rpc: str, body: dict[str, Any]) -> dict[str, Any]:
    """The RPC through both doors; its JSON answer, once both doors agree on it."""
    path, request_cls = ROUTES[rpc]
    request = json_format.ParseDict(body, request_cls())
    async with grpc.aio.insecure_channel(app.grpc_target) as channel:
        reply = await getattr(pb_grpc.AutoInterpStub(channel), rpc)(
            request, metadata=app.auth, timeout=60
        )
    over_grpc = to_json_dict(reply)
    response = await app.rest.post(
        path, content=json.dumps(body), headers={**app.headers, "Content-Type": "application/json"}
    )
    assert response.status_code == 200, response.text
    over_rest = response.json()
    assert over_rest == over_grpc, rpc
    return over_rest


def _llm_calls(fake_llm) -> list[tuple[str, int]]:
    """The fake LLM's calls since the last reset as (kind, examples), sorted (a scorer's
    batches may finish in any order); then a reset."""
    calls = [(r["kind"], r["n_examples"] or 0) for r in fake_llm.stats()["records"]]
    fake_llm.reset_stats()
    return sorted(calls)


# --- ExplainDefault = Explain("default") ------------------------------------------------


def _threshold_records() -> list[dict[str, Any]]:
    """cat_records with second tokens at 70% and 50% of their record's peak: the highlighted
    spans, and with them the explanation, depend on the 0.6 threshold."""
    records = cat_records()
    records[0]["values"][5] = 0.63  # " mat": 0.7 of the peak 0.9 (highlighted at 0.6)
    records[4]["values"][5] = 0.45  # " road": 0.5 of the peak (highlighted at 0.4 only)
    return records


EXPLAIN_INPUTS = {
    "cat records": cat_records(),
    "seed request": json.loads(SEED_EXPLAIN_BODY)["activations"],
    "threshold-sensitive": _threshold_records(),
}


@pytest.mark.parametrize("records", EXPLAIN_INPUTS.values(), ids=EXPLAIN_INPUTS.keys())
async def test_explain_default_equals_explain_default_method(
    app, clean_fake, records: list[dict[str, Any]]
) -> None:
    legacy = await _call(
        app, "ExplainDefault", {"activations": records, "openrouterKey": KEY, "model": MODEL}
    )
    legacy_calls = _llm_calls(clean_fake)
    standard = await _call(
        app,
        "Explain",
        {
            "method": "default",
            "activations": records,
            "llm": {"model": MODEL, "apiKey": KEY},
            "defaultParams": {"threshold": 0.6},
        },
    )
    assert standard["explanation"] == legacy["explanation"]
    assert _llm_calls(clean_fake) == legacy_calls == [("explain", 0)] * 2  # one per door
    assert standard["method"] == "default"
    assert legacy["explanation"].startswith("Mentions of")


async def test_the_threshold_is_what_makes_the_explanation(app) -> None:
    # The comparison above can tell explainers apart: another threshold, another explanation.
    records = _threshold_records()

    async def explain(threshold: float) -> str:
        body = {
            "method": "default",
            "activations": records,
            "llm": {"model": MODEL, "apiKey": KEY},
            "defaultParams": {"threshold": threshold},
        }
        return (await _call(app, "Explain", body))["explanation"]

    at_default = await explain(0.6)
    assert at_default == 'Mentions of "cat", "mat"'
    assert await explain(0.4) != at_default


# --- ScoreFuzzDetection = Score("fuzz" | "detection") -----------------------------------


@pytest.mark.parametrize("explanation", [RIGHT_EXPLANATION, MIXED_EXPLANATION, WRONG_EXPLANATION])
@pytest.mark.parametrize("kind", ["FUZZ", "DETECTION"])
async def test_fuzz_detection_equals_score_method(
    app, clean_fake, kind: str, explanation: str
) -> None:
    records = cat_records()
    legacy = await _call(
        app,
        "ScoreFuzzDetection",
        {
            "activations": records,
            "explanation": explanation,
            "openrouterKey": KEY,
            "model": MODEL,
            "type": kind,
        },
    )
    legacy_calls = _llm_calls(clean_fake)
    standard = await _call(
        app,
        "Score",
        {
            "method": kind.lower(),
            "activations": records,
            "explanation": explanation,
            "llm": {"model": MODEL, "apiKey": KEY},
        },
    )
    assert _llm_calls(clean_fake) == legacy_calls
    # 14 examples at 5 per prompt, on each door.
    assert legacy_calls == sorted([(kind.lower(), n) for n in (5, 5, 4)] * 2)
    assert standard["score"] == legacy["score"]
    assert len(standard["breakdown"]) == len(legacy["breakdown"]) == len(records)
    for old, new in zip(legacy["breakdown"], standard["breakdown"], strict=True):
        # The same example in the same place, with the same verdict.
        assert old["strTokens"] == new["strTokens"]
        assert old["activations"] == records[new["recordIndex"]]["values"]
        assert old["groundTruth"] == new["activating"]
        assert old["distance"] == (1 if new["activating"] else -1)
        assert old["highlighted"] == (kind == "FUZZ")
        for field in ("prediction", "correct", "probability"):
            assert old[field] == new.get(field), field
    predictions = [item["prediction"] for item in legacy["breakdown"]]
    assert None not in predictions
    if explanation == MIXED_EXPLANATION and kind == "DETECTION":
        # Not all right, not all wrong: the order of the verdicts is tested, not just a count.
        assert 0.5 < legacy["score"] < 1.0
        assert {item["correct"] for item in legacy["breakdown"]} == {True, False}


# --- ScoreEmbedding = Score("embedding") ------------------------------------------------


@pytest.mark.parametrize("explanation", [RIGHT_EXPLANATION, MIXED_EXPLANATION, WRONG_EXPLANATION])
async def test_score_embedding_equals_score_method(app, clean_fake, explanation: str) -> None:
    records = cat_records()
    legacy = await _call(
        app, "ScoreEmbedding", {"activations": records, "explanation": explanation}
    )
    standard = await _call(
        app,
        "Score",
        {"method": "embedding", "activations": records, "explanation": explanation},
    )
    assert _llm_calls(clean_fake) == []  # no LLM on either path
    assert standard["score"] == legacy["score"]
    assert [i["similarity"] for i in standard["breakdown"]] == [
        i["similarity"] for i in legacy["breakdown"]
    ]
    assert [i["text"] for i in standard["breakdown"]] == [i["text"] for i in legacy["breakdown"]]
    assert [1 if i["activating"] else -1 for i in standard["breakdown"]] == [
        i["distance"] for i in legacy["breakdown"]
    ]
    assert [i["recordIndex"] for i in standard["breakdown"]] == list(range(len(records)))


# --- and their failures -------------------------------------------------------------------


@pytest.mark.parametrize("fault", ["bad_key", "garbage", "429"])
async def test_legacy_and_standard_fail_alike(app, fault: str) -> None:
    records = cat_records()
    model = f"{MODEL}@fault={fault}"
    pairs = [
        (
            pb.ExplainDefaultRequest(
                activations=[json_format.ParseDict(r, pb.Activation()) for r in records],
                openrouter_key=KEY,
                model=model,
            ),
            json_format.ParseDict(
                {"method": "default", "activations": records,
                 "llm": {"model": model, "apiKey": KEY}},
                pb.ExplainRequest(),
            ),
        ),
        (
            json_format.ParseDict(
                {"activations": records, "explanation": RIGHT_EXPLANATION, "openrouterKey": KEY,
                 "model": model, "type": "DETECTION"},
                pb.ScoreFuzzDetectionRequest(),
            ),
            json_format.ParseDict(
                {"method": "detection", "activations": records, "explanation": RIGHT_EXPLANATION,
                 "llm": {"model": model, "apiKey": KEY}},
                pb.ScoreRequest(),
            ),
        ),
    ]  # fmt: skip
    async with grpc.aio.insecure_channel(app.grpc_target) as channel:
        stub = pb_grpc.AutoInterpStub(channel)
        for legacy, standard in pairs:
            codes = []
            for request in (legacy, standard):
                rpc = type(request).DESCRIPTOR.name.removesuffix("Request")
                with pytest.raises(grpc.aio.AioRpcError) as info:
                    await getattr(stub, rpc)(request, metadata=app.auth, timeout=30)
                codes.append(info.value.code())
            assert codes[0] == codes[1] != grpc.StatusCode.INTERNAL, codes
