"""A data-shaped answer is a typed error on both doors (issue 18 item 9): the in-process
service, with every LLM call answered ``names of day<TAB>0`` (what a small instruct model wrote
for ``oai_token_act_pair``, continuing the excerpts' lines), fails the Explain call with
UNAVAILABLE naming the OpenAI format's answer shape, over gRPC and REST alike, after two
attempts; before, that line was returned as the explanation."""

from __future__ import annotations

import json
from typing import Any

import grpc
import pytest
from google.protobuf import json_format
from samples import cat_records

from autointerp_grpc.backends.llm import LLMClient
from autointerp_grpc.delphi_compat import Response
from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2 as pb
from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2_grpc as pb_grpc

DATA_LINE = "names of day\t0"
BODY = {
    "method": "oai_token_act_pair",
    "activations": cat_records(),
    "llm": {"model": "some/small-instruct-model", "apiKey": "sk-data-line-key"},
}


async def test_a_data_line_answer_is_unavailable_on_both_doors(app, monkeypatch) -> None:
    calls: list[Any] = []

    async def continues_the_excerpts(self: LLMClient, prompt: Any, **_: Any) -> Response:
        calls.append(prompt)
        return Response(text=DATA_LINE)

    monkeypatch.setattr(LLMClient, "generate", continues_the_excerpts)
    request = json_format.ParseDict(BODY, pb.ExplainRequest())
    async with grpc.aio.insecure_channel(app.grpc_target) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await pb_grpc.AutoInterpStub(channel).Explain(request, metadata=app.auth, timeout=30)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    detail = info.value.details() or ""
    assert "no parsable explanation in 2 attempts" in detail
    assert 'completing "the main thing this neuron does is find ..."' in detail
    assert "[EXPLANATION]" not in detail
    assert len(calls) == 2

    headers = {**app.headers, "Content-Type": "application/json"}
    response = await app.rest.post("/v1/explain", content=json.dumps(BODY), headers=headers)
    assert response.status_code == 503, response.text
    assert response.json() == {"code": "UNAVAILABLE", "detail": detail}
    assert len(calls) == 4
