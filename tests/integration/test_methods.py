"""ListMethods, Explain and Score end to end, over both doors, against the fake LLM (in
process, with the bag-of-words embedding model)."""

from __future__ import annotations

import json
from typing import Any

import grpc
import httpx
import pytest
from google.protobuf import json_format
from samples import RIGHT_EXPLANATION, WRONG_EXPLANATION, cat_records, many_cat_records

from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2 as pb
from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2_grpc as pb_grpc
from autointerp_grpc.methods.registry import EXPLAINER_REGISTRY, SCORER_REGISTRY
from autointerp_grpc.rest.jsonmap import to_json_dict

LLM = {"model": "openai/gpt-4o-mini", "apiKey": "sk-methods-test-key"}
EXPLANATION_SCORERS = [n for n, s in SCORER_REGISTRY.items() if s.needs.explanation]
EXPLANATION_FREE_SCORERS = [n for n, s in SCORER_REGISTRY.items() if not s.needs.explanation]


def _activating() -> list[dict[str, Any]]:
    return [r for r in cat_records() if sum(r["values"]) > 0]


def _non_activating() -> list[dict[str, Any]]:
    return [r for r in cat_records() if sum(r["values"]) <= 0]


def _attention() -> list[dict[str, Any]]:
    """Attention records of a head that attends to " cat" from each record's last token."""
    records = []
    for record in _activating():
        weights = [0.05 * v for v in record["values"]]
        weights[record["values"].index(max(record["values"]))] = 0.8
        last = len(record["tokens"]) - 1
        records.append({"tokens": record["tokens"], "fromIndex": last, "weights": weights})
    return records


async def _grpc(app, method: str, body: dict[str, Any], request_cls: type) -> dict[str, Any]:
    request = json_format.ParseDict(body, request_cls())
    async with grpc.aio.insecure_channel(app.grpc_target) as channel:
        stub = pb_grpc.AutoInterpStub(channel)
        response = await getattr(stub, method)(request, metadata=app.auth, timeout=120)
    return to_json_dict(response)


async def _rest(app, path: str, body: dict[str, Any]) -> httpx.Response:
    return await app.rest.post(
        path,
        content=json.dumps(body),
        headers={**app.headers, "Content-Type": "application/json"},
        timeout=120,
    )


async def _both_doors(app, method: str, path: str, body: dict[str, Any], request_cls: type):
    """The same request through gRPC and REST; both answers, after checking they agree."""
    over_grpc = await _grpc(app, method, body, request_cls)
    response = await _rest(app, path, body)
    assert response.status_code == 200, response.text
    over_rest = response.json()
    assert over_rest == over_grpc
    return over_rest


# --- ListMethods --------------------------------------------------------------------------


async def test_list_methods_is_complete_on_both_doors(app) -> None:
    async with grpc.aio.insecure_channel(app.grpc_target) as channel:
        reply = await pb_grpc.AutoInterpStub(channel).ListMethods(
            pb.ListMethodsRequest(), metadata=app.auth
        )
    over_grpc = to_json_dict(reply)
    over_rest = await app.rest.get("/v1/methods", headers=app.headers)
    assert over_rest.status_code == 200
    assert over_rest.json() == over_grpc
    methods = {m["name"]: m for m in over_grpc["methods"]}
    assert list(methods) == [*EXPLAINER_REGISTRY, *SCORER_REGISTRY]
    assert set(EXPLAINER_REGISTRY) == {
        "default",
        "contrastive",
        "oai_token_act_pair",
        "np_max_act",
        "np_max_act_logits",
        "np_acts_logits_general",
        "python_code",
        "oai_attention_head",
    }
    assert set(SCORER_REGISTRY) == {
        "detection",
        "fuzz",
        "embedding",
        "simulation",
        "intruder",
        "example_embedding",
        "recall",
    }
    for name, info in methods.items():
        assert info["description"]
        spec = EXPLAINER_REGISTRY.get(name) or SCORER_REGISTRY[name]
        assert [p["name"] for p in info["parameters"]] == [
            f.json_name for f in spec.params_descriptor.fields
        ]
        for parameter in info["parameters"]:
            assert parameter["type"] in {"number", "integer", "boolean", "string"}
            assert parameter["defaultValue"]
            assert parameter["description"]
        if name in SCORER_REGISTRY:
            metric = info["metric"]
            assert metric["minimum"] <= metric["chance"] <= metric["maximum"]
            assert info["kind"] == "METHOD_KIND_SCORER"
        else:
            assert info["kind"] == "METHOD_KIND_EXPLAINER"
    assert over_grpc["providers"][0] == "openrouter"


# --- Explain ------------------------------------------------------------------------------


@pytest.mark.parametrize("method", list(EXPLAINER_REGISTRY))
async def test_every_explainer_on_both_doors(app, method: str) -> None:
    body = {
        "method": method,
        "activations": _activating(),
        "nonActivating": _non_activating(),
        "topPositiveLogits": [" cats", " kitten"],
        "llm": LLM,
    }
    if EXPLAINER_REGISTRY[method].needs.attention:
        body = {"method": method, "attention": _attention(), "llm": LLM}
    result = await _both_doors(app, "Explain", "/v1/explain", body, pb.ExplainRequest)
    assert "cat" in result["explanation"].lower()
    assert result["rawAnswer"]
    assert result["method"] == method
    assert result["usage"]["llmCalls"] == 1
    assert result["usage"]["promptTokens"] > 0
    assert result["usage"]["cost"] > 0


async def test_explanation_comes_from_the_final_answer_not_the_reasoning(app) -> None:
    for model in ("openai/o3@fault=think", "openai/o3@reasoning=1"):
        body = {"method": "default", "activations": _activating(), "llm": {**LLM, "model": model}}
        result = await _grpc(app, "Explain", body, pb.ExplainRequest)
        assert result["explanation"] == 'Mentions of "cat"'
        assert "<think>" not in result["rawAnswer"]


# --- Score --------------------------------------------------------------------------------


@pytest.mark.parametrize("method", EXPLANATION_SCORERS)
async def test_right_explanation_beats_wrong_on_every_scorer(app, method: str) -> None:
    scores = {}
    for explanation in (RIGHT_EXPLANATION, WRONG_EXPLANATION):
        body = {
            "method": method,
            "explanation": explanation,
            "activations": cat_records(),
            "llm": LLM,
        }
        result = await _both_doors(app, "Score", "/v1/score", body, pb.ScoreRequest)
        spec = SCORER_REGISTRY[method]
        assert result["metric"] == spec.metric.name
        assert spec.metric.minimum <= result["score"] <= spec.metric.maximum
        assert result["breakdown"]
        scores[explanation] = result["score"]
    assert scores[RIGHT_EXPLANATION] > scores[WRONG_EXPLANATION] + 0.2, scores


# example_embedding compares records with records: with a bag-of-words model, unrelated
# sentences are all orthogonal, so the non-activating query is no closer to the non-activating
# examples than to the activating ones. In process it gets non-activating records that share a
# topic (as real text does for a sentence model); with the real model, the usual records.
IN_PROCESS_FREE_SCORERS = [m for m in EXPLANATION_FREE_SCORERS if m != "example_embedding"]
_MARKET = [
    "The stock market fell sharply today", "Market prices rose at the open",
    "Traders left the market early", "The bond market held steady",
    "Oil prices moved the market again", "The market closed lower on Friday",
    "Investors fled the stock market", "Market rates climbed in May",
    "The market rallied after the report", "Stock prices and the market slipped",
    "A quiet market traded sideways", "The housing market cooled off",
    "Market volume fell before the holiday",
]  # fmt: skip


def _topical_records() -> list[dict[str, Any]]:
    """many_cat_records' 12 activating records and 13 non-activating ones about markets."""
    activating = [r for r in many_cat_records() if sum(r["values"]) > 0]
    words = [[w if i == 0 else f" {w}" for i, w in enumerate(s.split())] for s in _MARKET]
    return activating + [{"tokens": t, "values": [0.0] * len(t)} for t in words]


def _check_explanation_free(method: str, result: dict[str, Any]) -> None:
    spec = SCORER_REGISTRY[method]
    # The cat latent is easy: well above chance.
    assert result["score"] > spec.metric.chance + 0.2, result
    assert (
        result["confidenceInterval"]["lower"]
        <= result["score"]
        <= result["confidenceInterval"]["upper"]
    )


@pytest.mark.parametrize("method", IN_PROCESS_FREE_SCORERS)
async def test_explanation_free_scorers_on_both_doors(app, method: str) -> None:
    body = {"method": method, "activations": many_cat_records(), "llm": LLM}
    result = await _both_doors(app, "Score", "/v1/score", body, pb.ScoreRequest)
    _check_explanation_free(method, result)


async def test_example_embedding_on_both_doors(app) -> None:
    body = {"method": "example_embedding", "activations": _topical_records(), "llm": LLM}
    result = await _both_doors(app, "Score", "/v1/score", body, pb.ScoreRequest)
    _check_explanation_free("example_embedding", result)


@pytest.mark.slow
async def test_example_embedding_with_the_real_model(server) -> None:
    # The real sentence model tells the cat records from unrelated ones (a process of its
    # own: the in-process app has the bag-of-words model).
    body = {"method": "example_embedding", "activations": many_cat_records(), "llm": LLM}
    request = json_format.ParseDict(body, pb.ScoreRequest())
    async with grpc.aio.insecure_channel(server.grpc_target) as channel:
        reply = await pb_grpc.AutoInterpStub(channel).Score(
            request, metadata=(("x-secret-key", server.secret),), timeout=120
        )
    over_grpc = to_json_dict(reply)
    async with httpx.AsyncClient(base_url=server.http_base, timeout=120) as http:
        response = await http.post("/v1/score", json=body, headers={"X-SECRET-KEY": server.secret})
    assert response.status_code == 200, response.text
    assert response.json() == over_grpc
    _check_explanation_free("example_embedding", over_grpc)


async def test_classifier_full_picture_with_logprobs(app) -> None:
    body = {
        "method": "detection",
        "explanation": RIGHT_EXPLANATION,
        "activations": cat_records(),
        "llm": LLM,
        "detectionParams": {"useLogprobs": True, "examplesPerPrompt": 4},
    }
    result = await _grpc(app, "Score", body, pb.ScoreRequest)
    classifier = result["classifier"]
    assert classifier["balancedAccuracy"] == result["score"] == 1.0
    assert classifier["truePositives"] == 7 and classifier["trueNegatives"] == 7
    assert classifier["answered"] == 14 and classifier["unanswered"] == 0
    assert classifier["auc"] == 1.0
    assert all(item["probability"] is not None for item in result["breakdown"])
    # Logprobs arrived (no note about them); 7 + 7 examples are a small sample, and said so.
    assert [note.split(":")[0] for note in result["notes"]] == ["Small sample"]
    assert result["usage"]["llmCalls"] == 4  # 14 examples at 4 per prompt


async def test_missing_logprobs_are_reported_not_fatal(app) -> None:
    body = {
        "method": "fuzz",
        "explanation": RIGHT_EXPLANATION,
        "activations": cat_records(),
        "llm": {**LLM, "model": "some/model@logprobs=0"},
        "fuzzParams": {"useLogprobs": True},
    }
    result = await _grpc(app, "Score", body, pb.ScoreRequest)
    assert result["score"] == 1.0
    assert result["classifier"]["auc"] is None
    assert any("log probabilities" in note for note in result["notes"])


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"method": "nope"}, "not a known scorer"),
        (
            {"fuzzParams": {"examplesPerPrompt": 50}},
            "fuzzParams.examplesPerPrompt must be at most 20",
        ),
        (
            {"fuzzParams": {"examplesPerPrompt": 0}},
            "fuzzParams.examplesPerPrompt must be at least 1",
        ),
        ({"detectionParams": {}}, "detectionParams does not apply to method 'fuzz'"),
        ({"llm": {**LLM, "provider": "elsewhere"}}, "llm.provider is not configured"),
        ({"llm": {**LLM, "reasoningEffort": "extreme"}}, "llm.reasoningEffort must be one of"),
        ({"llm": {"model": "m"}}, "llm.api_key is required"),
        ({"explanation": ""}, "explanation is required by the fuzz scorer"),
        ({"activations": _activating()}, "both activating records"),
    ],
)
async def test_score_parameter_errors_name_the_parameter(
    app, body: dict[str, Any], needle: str
) -> None:
    request = {
        "method": "fuzz",
        "explanation": RIGHT_EXPLANATION,
        "activations": cat_records(),
        "llm": LLM,
        **body,
    }
    response = await _rest(app, "/v1/score", request)
    assert response.status_code == 400, response.text
    assert needle in response.json()["detail"]


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"method": "contrastive", "nonActivating": []}, "non_activating is required"),
        ({"method": "np_max_act_logits"}, "top_positive_logits is required"),
        ({"defaultParams": {"threshold": 1.5}}, "defaultParams.threshold must be at most 1"),
        ({"oaiTokenActPairParams": {}}, "oaiTokenActPairParams does not apply to method 'default'"),
        ({"llm": {**LLM, "maxTokens": 0}}, "llm.maxTokens must be at least 1"),
        (
            {"method": "np_max_act", "activations": [{"tokens": ["a"], "values": [0.0]}]},
            "at least one record with a positive activation",
        ),
    ],
)
async def test_explain_parameter_errors_name_the_parameter(
    app, body: dict[str, Any], needle: str
) -> None:
    request = {"method": "default", "activations": _activating(), "llm": LLM, **body}
    response = await _rest(app, "/v1/explain", request)
    assert response.status_code == 400, response.text
    assert needle in response.json()["detail"]
