"""Big requests run their record building, fuzz highlighting and response printing on a worker
thread (autointerp_grpc/offload.py) so the event loop keeps answering; the answers are the
same as when everything runs on the loop, on both doors."""

from __future__ import annotations

import json
from typing import Any

import grpc
import pytest
from google.protobuf import json_format
from samples import RIGHT_EXPLANATION, cat_records

from autointerp_grpc import offload
from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2 as pb
from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2_grpc as pb_grpc
from autointerp_grpc.rest.jsonmap import to_json_dict

MODEL = "openai/gpt-4o-mini"
KEY = "sk-offload-provider-key-1234"
PAD = 2000  # filler tokens per record: 14 records of 2,000 each > OFF_LOOP_ITEMS tokens


def _big_records() -> list[dict[str, Any]]:
    """cat_records with 2,000 zero-valued filler tokens in front of each record."""
    records = []
    for record in cat_records():
        tokens = [" and"] * PAD + record["tokens"]
        records.append({"tokens": tokens, "values": [0.0] * PAD + record["values"]})
    return records


CALLS: dict[str, tuple[str, type, dict[str, Any]]] = {
    "ScoreFuzzDetection": (
        "/v1/score/fuzz-detection",
        pb.ScoreFuzzDetectionRequest,
        {"explanation": RIGHT_EXPLANATION, "type": "FUZZ", "model": MODEL, "openrouterKey": KEY},
    ),
    "Score": (
        "/v1/score",
        pb.ScoreRequest,
        {
            "method": "detection",
            "explanation": RIGHT_EXPLANATION,
            "llm": {"model": MODEL, "apiKey": KEY},
            "minAnswered": 0.5,
        },
    ),
    "ExplainDefault": (
        "/v1/explain/default",
        pb.ExplainDefaultRequest,
        {"model": MODEL, "openrouterKey": KEY},
    ),
}


async def _both_doors(app, rpc: str) -> list[Any]:
    path, request_cls, fields = CALLS[rpc]
    body = {**fields, "activations": _big_records()}
    request = json_format.ParseDict(body, request_cls())
    async with grpc.aio.insecure_channel(app.grpc_target) as channel:
        reply = await getattr(pb_grpc.AutoInterpStub(channel), rpc)(
            request, metadata=app.auth, timeout=60
        )
    response = await app.rest.post(
        path, content=json.dumps(body), headers={**app.headers, "Content-Type": "application/json"}
    )
    assert response.status_code == 200, response.text
    return [to_json_dict(reply), response.json(), response.content]


@pytest.mark.parametrize("rpc", sorted(CALLS))
async def test_big_requests_answer_the_same_off_the_loop_as_on_it(
    app, clean_fake, monkeypatch, rpc
) -> None:
    used: list[str] = []
    real_executor = offload._executor

    def counting_executor():
        used.append(rpc)
        return real_executor()

    monkeypatch.setattr(offload, "_executor", counting_executor)
    off = await _both_doors(app, rpc)
    assert used, "the big request never left the event loop"
    assert off[0] == off[1]  # gRPC and REST agree

    monkeypatch.setattr(offload, "OFF_LOOP_ITEMS", 10**12)
    monkeypatch.setattr(offload, "OFF_LOOP_BYTES", 10**12)
    used.clear()
    on = await _both_doors(app, rpc)
    assert not used
    assert off == on  # same JSON, same bytes on the REST door
