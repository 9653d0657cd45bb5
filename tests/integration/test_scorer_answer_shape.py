"""A scorer whose model never answers in its format says which format it expected (issue 20,
item 2), on both doors, as the explainers name their answer shape: a user of a small local
model learns what the model failed to write, not only that it failed."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from google.protobuf import json_format
from samples import RIGHT_EXPLANATION, cat_records
from support import InProcessApp

from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2 as pb
from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2_grpc as pb_grpc

SHAPES = {
    "detection": ({}, "a list of 0/1 predictions, one per example"),
    "fuzz": ({}, "a list of 0/1 predictions, one per example"),
    "recall": ({}, '{"answers": [true, false, ...]}'),
    "intruder": ({}, "[RESPONSE]: <the intruder's example number>"),
    "simulation": ({"simulationParams": {"mode": "json"}}, '{"activations": [{"token"'),
}


def _body(method: str) -> dict[str, Any]:
    params, _ = SHAPES[method]
    return {
        "method": method,
        "explanation": RIGHT_EXPLANATION,
        "activations": cat_records(),
        "llm": {"model": "m@fault=garbage", "apiKey": "sk-answer-shape-key"},
        **params,
    }


@pytest.mark.parametrize("method", sorted(SHAPES))
async def test_rest_names_the_answer_shape(app: InProcessApp, clean_fake, method: str) -> None:
    response = await app.rest.post("/v1/score", json=_body(method), headers=app.headers)
    assert response.status_code == 503, response.text
    detail = response.json()["detail"]
    assert "none had the expected format" in detail, detail
    assert SHAPES[method][1] in detail, detail


@pytest.mark.parametrize("method", ["detection", "simulation"])
async def test_grpc_names_the_answer_shape(app: InProcessApp, clean_fake, method: str) -> None:
    request = json_format.ParseDict(_body(method), pb.ScoreRequest())
    async with grpc.aio.insecure_channel(app.grpc_target) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await pb_grpc.AutoInterpStub(channel).Score(request, metadata=app.auth, timeout=60)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    assert SHAPES[method][1] in (info.value.details() or "")
