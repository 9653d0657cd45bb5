"""End to end through both doors, in process: the whole app (gRPC on a loopback port, REST
through ASGITransport) against the fake LLM, with real gRPC clients."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import grpc
import httpx
import pytest
from google.protobuf import json_format
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)
from samples import RIGHT_EXPLANATION, SEED_EXPLAIN_BODY, WRONG_EXPLANATION, cat_records

from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2 as pb
from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2_grpc as pb_grpc

MODEL = "openai/gpt-4o-mini"
API_KEY = "sk-e2e-provider-key-abcdef"


def _auth(app) -> tuple[tuple[str, str], ...]:
    return (("x-secret-key", app.secret),)


def _headers(app) -> dict[str, str]:
    return {"X-SECRET-KEY": app.secret, "Content-Type": "application/json"}


def _records_pb() -> list[pb.Activation]:
    return [pb.Activation(tokens=r["tokens"], values=r["values"]) for r in cat_records()]


async def _grpc_call(app, method: str, request: Any, metadata=None) -> Any:
    async with grpc.aio.insecure_channel(app.grpc_target) as channel:
        stub = pb_grpc.AutoInterpStub(channel)
        return await getattr(stub, method)(
            request, metadata=_auth(app) if metadata is None else metadata, timeout=60
        )


async def _post(app, path: str, body: dict[str, Any] | str, headers=None) -> httpx.Response:
    content = body if isinstance(body, str) else json.dumps(body)
    return await app.rest.post(
        path, content=content, headers=_headers(app) if headers is None else headers
    )


# --- gRPC door ---------------------------------------------------------------------------


async def test_grpc_explain_default(app) -> None:
    request = pb.ExplainDefaultRequest(
        activations=_records_pb(), openrouter_key=API_KEY, model=MODEL
    )
    response = await _grpc_call(app, "ExplainDefault", request)
    assert response.explanation == 'Mentions of "cat"'


@pytest.mark.parametrize("kind", [pb.FUZZ, pb.DETECTION])
async def test_grpc_fuzz_detection_right_beats_wrong(app, kind: int) -> None:
    scores = {}
    for explanation in (RIGHT_EXPLANATION, WRONG_EXPLANATION):
        request = pb.ScoreFuzzDetectionRequest(
            activations=_records_pb(),
            explanation=explanation,
            openrouter_key=API_KEY,
            model=MODEL,
            type=kind,
        )
        response = await _grpc_call(app, "ScoreFuzzDetection", request)
        assert len(response.breakdown) == 14
        assert all(item.HasField("prediction") for item in response.breakdown)
        assert {item.highlighted for item in response.breakdown} == {kind == pb.FUZZ}
        scores[explanation] = response.score
    assert scores[RIGHT_EXPLANATION] == 1.0
    assert scores[WRONG_EXPLANATION] <= 0.5


async def test_grpc_embedding_right_beats_wrong(app) -> None:
    scores = {}
    for explanation in (RIGHT_EXPLANATION, WRONG_EXPLANATION):
        request = pb.ScoreEmbeddingRequest(activations=_records_pb(), explanation=explanation)
        response = await _grpc_call(app, "ScoreEmbedding", request)
        assert [item.text for item in response.breakdown] == [
            "".join(r["tokens"]) for r in cat_records()
        ]
        assert [item.distance for item in response.breakdown] == [1, -1] * 7
        scores[explanation] = response.score
    assert scores[RIGHT_EXPLANATION] >= 0.9
    assert scores[RIGHT_EXPLANATION] - scores[WRONG_EXPLANATION] >= 0.3


async def test_grpc_invalid_argument_names_the_field(app) -> None:
    request = pb.ScoreEmbeddingRequest(
        activations=[pb.Activation(tokens=["a", "b"], values=[1.0])], explanation="x"
    )
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await _grpc_call(app, "ScoreEmbedding", request)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "activations[0]" in info.value.details()


async def test_grpc_provider_rejects_key(app) -> None:
    request = pb.ExplainDefaultRequest(
        activations=_records_pb(), openrouter_key="bad-key", model=MODEL
    )
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await _grpc_call(app, "ExplainDefault", request)
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "rejected the API key" in info.value.details()


async def test_grpc_scoring_with_no_answers_points_at_the_key(app) -> None:
    request = pb.ScoreFuzzDetectionRequest(
        activations=_records_pb(),
        explanation=RIGHT_EXPLANATION,
        openrouter_key="no-credits-key",
        model=MODEL,
        type=pb.DETECTION,
    )
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await _grpc_call(app, "ScoreFuzzDetection", request)
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "credits" in info.value.details()


# --- reflection, health, auth -----------------------------------------------------------


def _reflect(target: str) -> None:
    with grpc.insecure_channel(target) as channel:
        database = ProtoReflectionDescriptorDatabase(channel)
        services = set(database.get_services())
        assert {"autointerp.v1.AutoInterp", "grpc.health.v1.Health"} <= services
        # The whole contract is reachable without proto files, as grpcurl needs.
        file = database.FindFileContainingSymbol("autointerp.v1.AutoInterp")
        assert [m.name for m in file.service[0].method] == [
            "ExplainDefault",
            "ScoreEmbedding",
            "ScoreFuzzDetection",
            "ListMethods",
            "Explain",
            "Score",
            "ExplainAndScore",
        ]


async def test_reflection_lists_the_service(app) -> None:
    # The sync reflection client blocks: off the loop the in-process server runs on.
    await asyncio.to_thread(_reflect, app.grpc_target)


async def test_health_serving_without_secret(app) -> None:
    async with grpc.aio.insecure_channel(app.grpc_target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        for service in ("", "autointerp.v1.AutoInterp"):
            reply = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
    assert (await app.rest.get("/health")).json() == {"status": "SERVING"}


@pytest.mark.parametrize("secret", [None, "wrong", "test-secret-4"])
async def test_grpc_auth_rejects_missing_or_wrong_secret(app, secret: str | None) -> None:
    metadata = () if secret is None else (("x-secret-key", secret),)
    request = pb.ScoreEmbeddingRequest(activations=_records_pb(), explanation="x")
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await _grpc_call(app, "ScoreEmbedding", request, metadata=metadata)
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "x-secret-key" in info.value.details()
    if secret:
        assert secret not in info.value.details()


@pytest.mark.parametrize("secret", [None, "wrong", ""])
async def test_rest_auth_rejects_missing_or_wrong_secret(app, secret: str | None) -> None:
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers["X-SECRET-KEY"] = secret
    response = await _post(app, "/v1/explain/default", SEED_EXPLAIN_BODY, headers=headers)
    assert response.status_code == 401
    body = response.json()
    assert body["code"] == "UNAUTHENTICATED"
    assert "X-SECRET-KEY" in body["detail"]


# --- REST door -----------------------------------------------------------------------------


async def test_rest_seed_curl_request_unchanged(app) -> None:
    response = await _post(app, "/v1/explain/default", SEED_EXPLAIN_BODY)
    assert response.status_code == 200, response.text
    assert response.json() == {"explanation": 'Mentions of "cat", "felines"'}
    assert response.headers["x-request-id"]


@pytest.mark.parametrize("key_field", ["openrouter_key", "openrouterKey"])
async def test_rest_fuzz_detection_snake_and_camel(app, key_field: str) -> None:
    body = {
        "activations": cat_records(),
        "explanation": RIGHT_EXPLANATION,
        key_field: API_KEY,
        "model": MODEL,
        "type": "DETECTION",
    }
    response = await _post(app, "/v1/score/fuzz-detection", body)
    assert response.status_code == 200, response.text
    data = response.json()
    assert data["score"] == 1.0
    assert set(data["breakdown"][0]) == {
        "strTokens",
        "activations",
        "distance",
        "groundTruth",
        "prediction",
        "highlighted",
        "probability",
        "correct",
    }
    # No logprobs from the provider: the legacy JSON says null, not a missing key.
    assert data["breakdown"][0]["probability"] is None


@pytest.mark.parametrize("explain_key", ["openrouter_key", "openrouterKey"])
async def test_rest_explain_snake_and_camel(app, explain_key: str) -> None:
    body = {"activations": cat_records(), explain_key: API_KEY, "model": MODEL}
    response = await _post(app, "/v1/explain/default", body)
    assert response.status_code == 200, response.text
    assert response.json() == {"explanation": 'Mentions of "cat"'}


async def test_rest_embedding(app) -> None:
    response = await _post(
        app, "/v1/score/embedding", {"activations": cat_records(), "explanation": "cats"}
    )
    assert response.status_code == 200, response.text
    data = response.json()
    assert 0.9 <= data["score"] <= 1.0
    assert set(data["breakdown"][0]) == {"text", "distance", "similarity"}


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "JSON object"),
        ('{"activations": [], "explanation": "x"}', "activations is required"),
        ('{"activations": [{"tokens": ["a"], "values": [NaN]}], "explanation": "x"}', "NaN"),
        ('{"activations": [{"tokens": ["a"], "values": [1]}], "explanation": " "}', "explanation"),
        ('{"activations": [{"tokens": ["a"], "values": [1]}], "explanation": "x"}', "both"),
        ('{"activations": "nope", "explanation": "x"}', "activations"),
    ],
)
async def test_rest_bad_input_is_400_with_reason(app, body: str, needle: str) -> None:
    response = await _post(app, "/v1/score/embedding", body)
    assert response.status_code == 400, response.text
    data = response.json()
    assert data["code"] == "INVALID_ARGUMENT"
    assert needle in data["detail"]


async def test_rest_unknown_type_is_400(app) -> None:
    body = {
        "activations": cat_records(),
        "explanation": "x",
        "openrouterKey": API_KEY,
        "model": MODEL,
        "type": "FUZZY",
    }
    response = await _post(app, "/v1/score/fuzz-detection", body)
    assert response.status_code == 400
    detail = response.json()["detail"]
    assert "type must be one of FUZZ, DETECTION" in detail
    assert "FUZZY" not in detail  # a rejected value is never quoted back


async def test_openapi_lists_the_three_paths(app) -> None:
    document = (await app.rest.get("/openapi.json")).json()
    assert document["openapi"].startswith("3.")
    assert {
        "/v1/explain/default",
        "/v1/score/embedding",
        "/v1/score/fuzz-detection",
    } <= set(document["paths"])


# --- both doors agree --------------------------------------------------------------------


async def test_parity_same_request_same_answer_on_both_doors(app) -> None:
    body = {
        "activations": cat_records(),
        "explanation": RIGHT_EXPLANATION,
        "openrouterKey": API_KEY,
        "model": MODEL,
        "type": "FUZZ",
    }
    rest = await _post(app, "/v1/score/fuzz-detection", body)
    request = json_format.ParseDict(body, pb.ScoreFuzzDetectionRequest())
    over_grpc = await _grpc_call(app, "ScoreFuzzDetection", request)
    from autointerp_grpc.rest.jsonmap import to_json_dict

    assert rest.json() == to_json_dict(over_grpc)


async def test_no_secret_or_key_in_server_log(app) -> None:
    # Runs after the calls above (file order): neither the shared secret nor any provider key
    # the tests sent may appear in what the server logged.
    log = app.log_text()
    for secret in (app.secret, API_KEY, "YOUR_OPENROUTER_KEY", "no-credits-key"):
        assert secret not in log
