"""ListMethods, Explain and Score end to end, over both doors, against the fake LLM."""

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
from autointerp_grpc.jsonmap import to_json_dict
from autointerp_grpc.methods.registry import EXPLAINER_REGISTRY, SCORER_REGISTRY

pytestmark = pytest.mark.slow

LLM = {"model": "openai/gpt-4o-mini", "apiKey": "sk-methods-test-key"}
EXPLANATION_SCORERS = [n for n, s in SCORER_REGISTRY.items() if s.needs.explanation]
EXPLANATION_FREE_SCORERS = [n for n, s in SCORER_REGISTRY.items() if not s.needs.explanation]


def _activating() -> list[dict[str, Any]]:
    return [r for r in cat_records() if sum(r["values"]) > 0]


def _non_activating() -> list[dict[str, Any]]:
    return [r for r in cat_records() if sum(r["values"]) <= 0]


async def _grpc(server, method: str, body: dict[str, Any], request_cls: type) -> dict[str, Any]:
    request = json_format.ParseDict(body, request_cls())
    async with grpc.aio.insecure_channel(server.grpc_target) as channel:
        stub = pb_grpc.AutoInterpStub(channel)
        response = await getattr(stub, method)(
            request, metadata=(("x-secret-key", server.secret),), timeout=120
        )
    return to_json_dict(response)


def _rest(server, path: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(
        server.http_base + path,
        content=json.dumps(body),
        headers={"X-SECRET-KEY": server.secret, "Content-Type": "application/json"},
        timeout=120,
    )


async def _both_doors(server, method: str, path: str, body: dict[str, Any], request_cls: type):
    """The same request through gRPC and REST; both answers, after checking they agree."""
    over_grpc = await _grpc(server, method, body, request_cls)
    response = _rest(server, path, body)
    assert response.status_code == 200, response.text
    over_rest = response.json()
    assert over_rest == over_grpc
    return over_rest


# --- ListMethods --------------------------------------------------------------------------


async def test_list_methods_is_complete_on_both_doors(server) -> None:
    async with grpc.aio.insecure_channel(server.grpc_target) as channel:
        reply = await pb_grpc.AutoInterpStub(channel).ListMethods(
            pb.ListMethodsRequest(), metadata=(("x-secret-key", server.secret),)
        )
    over_grpc = to_json_dict(reply)
    over_rest = httpx.get(server.http_base + "/v1/methods", headers={"X-SECRET-KEY": server.secret})
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
async def test_every_explainer_on_both_doors(server, method: str) -> None:
    body = {
        "method": method,
        "activations": _activating(),
        "nonActivating": _non_activating(),
        "topPositiveLogits": [" cats", " kitten"],
        "llm": LLM,
    }
    result = await _both_doors(server, "Explain", "/v1/explain", body, pb.ExplainRequest)
    assert "cat" in result["explanation"].lower()
    assert result["rawAnswer"]
    assert result["method"] == method
    assert result["usage"]["llmCalls"] == 1
    assert result["usage"]["promptTokens"] > 0
    assert result["usage"]["cost"] > 0


async def test_explanation_comes_from_the_final_answer_not_the_reasoning(server) -> None:
    for model in ("openai/o3@fault=think", "openai/o3@reasoning=1"):
        body = {"method": "default", "activations": _activating(), "llm": {**LLM, "model": model}}
        result = await _grpc(server, "Explain", body, pb.ExplainRequest)
        assert result["explanation"] == 'Mentions of "cat"'
        assert "<think>" not in result["rawAnswer"]


# --- Score --------------------------------------------------------------------------------


@pytest.mark.parametrize("method", EXPLANATION_SCORERS)
async def test_right_explanation_beats_wrong_on_every_scorer(server, method: str) -> None:
    scores = {}
    for explanation in (RIGHT_EXPLANATION, WRONG_EXPLANATION):
        body = {
            "method": method,
            "explanation": explanation,
            "activations": cat_records(),
            "llm": LLM,
        }
        result = await _both_doors(server, "Score", "/v1/score", body, pb.ScoreRequest)
        spec = SCORER_REGISTRY[method]
        assert result["metric"] == spec.metric.name
        assert spec.metric.minimum <= result["score"] <= spec.metric.maximum
        assert result["breakdown"]
        scores[explanation] = result["score"]
    assert scores[RIGHT_EXPLANATION] > scores[WRONG_EXPLANATION] + 0.2, scores


@pytest.mark.parametrize("method", EXPLANATION_FREE_SCORERS)
async def test_explanation_free_scorers_on_both_doors(server, method: str) -> None:
    body = {"method": method, "activations": many_cat_records(), "llm": LLM}
    result = await _both_doors(server, "Score", "/v1/score", body, pb.ScoreRequest)
    spec = SCORER_REGISTRY[method]
    # The cat latent is easy: well above chance.
    assert result["score"] > spec.metric.chance + 0.2, result
    assert (
        result["confidenceInterval"]["lower"]
        <= result["score"]
        <= result["confidenceInterval"]["upper"]
    )


async def test_classifier_full_picture_with_logprobs(server) -> None:
    body = {
        "method": "detection",
        "explanation": RIGHT_EXPLANATION,
        "activations": cat_records(),
        "llm": LLM,
        "detectionParams": {"useLogprobs": True, "examplesPerPrompt": 4},
    }
    result = await _grpc(server, "Score", body, pb.ScoreRequest)
    classifier = result["classifier"]
    assert classifier["balancedAccuracy"] == result["score"] == 1.0
    assert classifier["truePositives"] == 7 and classifier["trueNegatives"] == 7
    assert classifier["answered"] == 14 and classifier["unanswered"] == 0
    assert classifier["auc"] == 1.0
    assert all(item["probability"] is not None for item in result["breakdown"])
    assert result["notes"] == []
    assert result["usage"]["llmCalls"] == 4  # 14 examples at 4 per prompt


async def test_missing_logprobs_are_reported_not_fatal(server) -> None:
    body = {
        "method": "fuzz",
        "explanation": RIGHT_EXPLANATION,
        "activations": cat_records(),
        "llm": {**LLM, "model": "some/model@logprobs=0"},
        "fuzzParams": {"useLogprobs": True},
    }
    result = await _grpc(server, "Score", body, pb.ScoreRequest)
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
        ({"llm": {**LLM, "provider": "elsewhere"}}, "llm.provider 'elsewhere' is not configured"),
        ({"llm": {**LLM, "reasoningEffort": "extreme"}}, "llm.reasoningEffort must be one of"),
        ({"llm": {"model": "m"}}, "llm.api_key is required"),
        ({"explanation": ""}, "explanation is required by the fuzz scorer"),
        ({"activations": _activating()}, "both activating records"),
    ],
)
def test_score_parameter_errors_name_the_parameter(
    server, body: dict[str, Any], needle: str
) -> None:
    request = {
        "method": "fuzz",
        "explanation": RIGHT_EXPLANATION,
        "activations": cat_records(),
        "llm": LLM,
        **body,
    }
    response = _rest(server, "/v1/score", request)
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
def test_explain_parameter_errors_name_the_parameter(
    server, body: dict[str, Any], needle: str
) -> None:
    request = {"method": "default", "activations": _activating(), "llm": LLM, **body}
    response = _rest(server, "/v1/explain", request)
    assert response.status_code == 400, response.text
    assert needle in response.json()["detail"]
