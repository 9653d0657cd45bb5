"""Golden JSON: the legacy request and response shapes survive proto3's JSON mapping, and the
OpenAPI document generated from the protos names the legacy properties and required fields."""

from __future__ import annotations

import json

import pytest
from samples import SEED_EXPLAIN_BODY

from autointerp_grpc.errors import InvalidArgument
from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2 as pb
from autointerp_grpc.rest.jsonmap import parse_json_body, to_json_dict
from autointerp_grpc.rest.openapi import build_openapi


def test_seed_request_parses() -> None:
    request = parse_json_body(SEED_EXPLAIN_BODY.encode(), pb.ExplainDefaultRequest)
    assert request.openrouter_key == "YOUR_OPENROUTER_KEY"
    assert request.model == "openai/gpt-4o-mini"
    assert list(request.activations[0].values) == [0.0, 0.8, 0.0, 0.0, 0.0, 0.0]
    assert list(request.activations[1].tokens) == ["I", " like", " felines"]


def test_camel_case_and_unknown_fields() -> None:
    body = b'{"activations": [], "openrouterKey": "k", "model": "m", "secret": "ignored"}'
    assert parse_json_body(body, pb.ExplainDefaultRequest).openrouter_key == "k"


def test_fuzz_detection_type_by_name() -> None:
    body = b'{"type": "DETECTION"}'
    assert parse_json_body(body, pb.ScoreFuzzDetectionRequest).type == pb.DETECTION
    with pytest.raises(InvalidArgument, match="type must be one of FUZZ, DETECTION") as info:
        parse_json_body(b'{"type": "FUZZY"}', pb.ScoreFuzzDetectionRequest)
    # A rejected value is never quoted back: it could be a key sent in the wrong field.
    assert "FUZZY" not in info.value.message


@pytest.mark.parametrize(
    ("body", "where"),
    [
        (b'{"x\\ud800": 1, "type": "FUZZ"}', None),  # an unknown key with a lone surrogate
        (b'{"model": "sk-or-v1-secret-in-the-wrong-place", "type": {"a": 1}}', "type"),
        (b'{"activations": [{"tokens": ["a\\ud800"], "values": [1]}]}', "activations[0].tokens[0]"),
        (b'{"explanation": ["sk-or-v1-secret"], "type": "FUZZ"}', "explanation"),
    ],
)
def test_parse_errors_name_the_field_never_the_value(body: bytes, where: str | None) -> None:
    if where is None:
        assert parse_json_body(body, pb.ScoreFuzzDetectionRequest).type == pb.FUZZ
        return
    with pytest.raises(InvalidArgument) as info:
        parse_json_body(body, pb.ScoreFuzzDetectionRequest)
    assert where in info.value.message
    assert "sk-or-v1" not in info.value.message


def test_explain_response_golden() -> None:
    text = json.dumps(
        to_json_dict(pb.ExplainDefaultResponse(explanation="cats")), separators=(",", ":")
    )
    assert text == '{"explanation":"cats"}'


def test_embedding_response_golden() -> None:
    response = pb.ScoreEmbeddingResponse(
        score=0.75,
        breakdown=[pb.ScoreEmbeddingBreakdownItem(text="The cat", distance=1, similarity=0.8)],
    )
    text = json.dumps(to_json_dict(response), separators=(",", ":"))
    assert text == '{"score":0.75,"breakdown":[{"text":"The cat","distance":1,"similarity":0.8}]}'


def test_fuzz_detection_response_golden_with_nulls() -> None:
    answered = pb.ScoreFuzzDetectionBreakdownItem(
        str_tokens=["a", " cat"],
        activations=[0.0, 0.8],
        distance=1,
        ground_truth=True,
        prediction=True,
        highlighted=True,
        correct=True,
    )
    unanswered = pb.ScoreFuzzDetectionBreakdownItem(
        str_tokens=["b"], activations=[0.0], distance=-1, ground_truth=False, highlighted=False
    )
    response = pb.ScoreFuzzDetectionResponse(score=0.0, breakdown=[answered, unanswered])
    text = json.dumps(to_json_dict(response), separators=(",", ":"))
    assert text == (
        '{"score":0.0,"breakdown":['
        '{"strTokens":["a"," cat"],"activations":[0.0,0.8],"distance":1,"groundTruth":true,'
        '"prediction":true,"highlighted":true,"probability":null,"correct":true},'
        '{"strTokens":["b"],"activations":[0.0],"distance":-1,"groundTruth":false,'
        '"prediction":null,"highlighted":false,"probability":null,"correct":null}]}'
    )


# The legacy server's OpenAPI: properties and required fields of each schema.
LEGACY_SCHEMAS = {
    "ExplainDefaultRequest": (
        {"activations", "openrouterKey", "model"},
        {"activations", "openrouterKey", "model"},
    ),
    "ExplainDefaultResponse": ({"explanation"}, {"explanation"}),
    "ScoreEmbeddingRequest": ({"activations", "explanation"}, {"activations", "explanation"}),
    "ScoreEmbeddingResponse": ({"score", "breakdown"}, {"score", "breakdown"}),
    "ScoreEmbeddingBreakdownItem": (
        {"text", "distance", "similarity"},
        {"text", "distance", "similarity"},
    ),
    "ScoreFuzzDetectionRequest": (
        {"activations", "explanation", "openrouterKey", "model", "type"},
        {"activations", "explanation", "openrouterKey", "model", "type"},
    ),
    "ScoreFuzzDetectionResponse": ({"score", "breakdown"}, {"score", "breakdown"}),
    "ScoreFuzzDetectionBreakdownItem": (
        {
            "strTokens",
            "activations",
            "distance",
            "groundTruth",
            "prediction",
            "highlighted",
            "probability",
            "correct",
        },
        set(),
    ),
    "Activation": ({"tokens", "values"}, {"tokens", "values"}),
}


@pytest.mark.parametrize("name", sorted(LEGACY_SCHEMAS))
def test_openapi_schema_matches_legacy(name: str) -> None:
    schema = build_openapi()["components"]["schemas"][name]
    properties, required = LEGACY_SCHEMAS[name]
    assert set(schema["properties"]) == properties
    assert set(schema.get("required", [])) == required


def test_openapi_paths_and_enum() -> None:
    document = build_openapi()
    assert set(document["paths"]) == {
        "/v1/explain/default",
        "/v1/score/embedding",
        "/v1/score/fuzz-detection",
        "/v1/methods",
        "/v1/explain",
        "/v1/score",
        "/v1/explain-and-score",
    }
    assert "requestBody" not in document["paths"]["/v1/methods"]["get"]
    assert document["paths"]["/v1/explain/default"]["post"]["operationId"] == "explainDefaultPost"
    assert document["components"]["schemas"]["ScoreFuzzDetectionType"]["enum"] == [
        "FUZZ",
        "DETECTION",
    ]
    nullable = document["components"]["schemas"]["ScoreFuzzDetectionBreakdownItem"]["properties"][
        "prediction"
    ]
    assert {"type": "null"} in nullable["anyOf"]
    assert document["components"]["securitySchemes"]["SimpleSecretAuth"]["name"] == "X-SECRET-KEY"


@pytest.mark.parametrize(
    ("choice", "request_cls"),
    [(pb.ExplainerChoice, pb.ExplainRequest), (pb.ScorerChoice, pb.ScoreRequest)],
)
def test_bulk_choices_offer_the_same_parameters_as_single_requests(choice, request_cls) -> None:
    # ExplainerChoice/ScorerChoice repeat the params oneof of Explain/Score; they must not drift.
    def members(message: type) -> list[tuple[str, int, str]]:
        oneof = message.DESCRIPTOR.oneofs_by_name["params"]
        return [(f.name, f.number, f.message_type.full_name) for f in oneof.fields]

    assert members(choice) == members(request_cls)
