"""Structured output against a provider that refuses OpenAI's json_schema dialect, as
llama-cpp-python's server does (HTTP 422; it takes ``{"type": "json_object", "schema"}``):
the recall judge and the JSON simulation ask again in that dialect, keep it for the request,
score on both doors as they would with json_schema, and say which dialect ran (issue 20:
without this, every recall prompt to that server went unanswered)."""

from __future__ import annotations

import json
from typing import Any

import grpc
import pytest
from google.protobuf import json_format
from samples import RIGHT_EXPLANATION, cat_records

from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2 as pb
from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2_grpc as pb_grpc
from autointerp_grpc.rest.jsonmap import to_json_dict

LLM = {"model": "openai/gpt-4o-mini", "apiKey": "sk-structured-test-key"}
BODIES: dict[str, dict[str, Any]] = {
    "recall": {"method": "recall"},
    "simulation": {"method": "simulation", "simulationParams": {"mode": "json"}},
}


def _body(method: str) -> dict[str, Any]:
    return {
        **BODIES[method],
        "explanation": RIGHT_EXPLANATION,
        "activations": cat_records(),
        "llm": LLM,
    }


async def _both_doors(app, body: dict[str, Any]) -> dict[str, Any]:
    request = json_format.ParseDict(body, pb.ScoreRequest())
    async with grpc.aio.insecure_channel(app.grpc_target) as channel:
        reply = await pb_grpc.AutoInterpStub(channel).Score(request, metadata=app.auth, timeout=60)
    over_grpc = to_json_dict(reply)
    response = await app.rest.post(
        "/v1/score",
        content=json.dumps(body),
        headers={**app.headers, "Content-Type": "application/json"},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    assert response.json() == over_grpc
    return over_grpc


def _formats(fake) -> list[str | None]:
    return [r.get("response_format") for r in fake.stats()["records"]]


@pytest.mark.parametrize("method", ["recall", "simulation"])
async def test_json_schema_refused_asks_in_json_object_and_says_so(
    app, clean_fake, method: str
) -> None:
    plain = await _both_doors(app, _body(method))
    assert "structured output: response_format json_schema." in " ".join(plain["notes"])
    assert set(_formats(clean_fake)) == {"json_schema"}

    clean_fake.reset_stats()
    clean_fake.set_fault("reject_json_schema")
    result = await _both_doors(app, _body(method))
    notes = " ".join(result["notes"])
    assert "json_object with the schema" in notes
    assert "the provider rejected json_schema" in notes
    # The refusals are no item's failure: everything answered, no "calls failed" note.
    assert result["coverage"]["answered"] == result["coverage"]["total"]
    assert "failed" not in notes
    assert result["score"] == plain["score"]
    # Each door found out once (concurrent first calls may each be refused), then kept it.
    formats = _formats(clean_fake)
    assert formats.count("json_schema") <= 2 * 8  # at most one per call in flight at once
    assert formats[-1] == "json_object"
    assert formats.count("json_object") == len(formats) - formats.count("json_schema")
