"""Issue 13's explainers end to end, in process, over both doors: oai_attention_head (from
attention records), np_acts_logits_general and python_code; the prompt the provider receives is
the anchor format the prompt modules build (their own tests hold those against fixtures made by
running the anchors), bad attention records are clear 400s, and bulk runs take them."""

from __future__ import annotations

import json
import math
from typing import Any

import grpc
import pytest
from google.protobuf import json_format
from samples import cat_records

from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2 as pb
from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2_grpc as pb_grpc
from autointerp_grpc.prompts.np_general import np_acts_logits_general_messages, python_code_messages
from autointerp_grpc.prompts.oai_attention import oai_attention_head_messages
from autointerp_grpc.records import activating_example, max_over_records
from autointerp_grpc.rest.jsonmap import to_json_dict

LLM = {"model": "openai/gpt-4o-mini", "apiKey": "sk-anchor-methods-key"}
LOGITS = [" cats", " kitten"]


def _activating() -> list[dict[str, Any]]:
    return [r for r in cat_records() if sum(r["values"]) > 0]


def _attention() -> list[dict[str, Any]]:
    """A head that attends to " cat" from each record's last token."""
    records = []
    for record in _activating():
        weights = [0.0] * len(record["tokens"])
        weights[record["values"].index(max(record["values"]))] = 0.8
        weights[0] = 0.1
        last = len(record["tokens"]) - 1
        records.append({"tokens": record["tokens"], "fromIndex": last, "weights": weights})
    return records


async def _grpc(app, rpc: str, body: dict[str, Any], request_cls: type) -> Any:
    request = json_format.ParseDict(body, request_cls())
    async with grpc.aio.insecure_channel(app.grpc_target) as channel:
        return await getattr(pb_grpc.AutoInterpStub(channel), rpc)(
            request, metadata=app.auth, timeout=60
        )


async def _explain_both(app, body: dict[str, Any]) -> dict[str, Any]:
    over_grpc = to_json_dict(await _grpc(app, "Explain", body, pb.ExplainRequest))
    response = await app.rest.post("/v1/explain", json=body, headers=app.headers)
    assert response.status_code == 200, response.text
    assert response.json() == over_grpc
    return over_grpc


def _prompts(fake) -> list[str]:
    prompts = [r["prompt"] for r in fake.stats()["records"]]
    fake.reset_stats()
    return prompts


async def test_attention_head_explainer_sends_the_anchor_prompt(app, clean_fake) -> None:
    body = {"method": "oai_attention_head", "attention": _attention(), "llm": LLM}
    result = await _explain_both(app, body)
    assert result["method"] == "oai_attention_head"
    assert "cat" in result["explanation"]
    records = [json_format.ParseDict(r, pb.AttentionRecord()) for r in _attention()]
    expected = oai_attention_head_messages(records)[-1]["content"]
    assert _prompts(clean_fake) == [expected, expected]  # one call per door


@pytest.mark.parametrize(
    ("method", "build"),
    [
        ("np_acts_logits_general", lambda ex: np_acts_logits_general_messages(ex, LOGITS)),
        ("python_code", python_code_messages),
    ],
)
async def test_neuronpedia_general_explainers_send_the_anchor_prompt(
    app, clean_fake, method, build
) -> None:
    body = {"method": method, "activations": _activating(), "topPositiveLogits": LOGITS}
    result = await _explain_both(app, {**body, "llm": LLM})
    assert result["method"] == method
    assert result["explanation"]
    records = [json_format.ParseDict(r, pb.Activation()) for r in _activating()]
    peak = max_over_records(records)
    examples = [
        (list(e.str_tokens), e.activations.tolist())
        for e in (activating_example(r, latent_max=peak) for r in records)
    ]
    expected = build(examples)[-1]["content"]
    assert _prompts(clean_fake) == [expected, expected]


def _bad(**change: Any) -> list[dict[str, Any]]:
    records = _attention()
    records[1].update(change)
    return records


BAD_ATTENTION = [  # record 1 has 5 tokens, attended from the last
    (_bad(weights=[0.5]), "attention[1] must have one weight per token (5 tokens, 1 weights)"),
    (_bad(fromIndex=5), "attention[1].fromIndex must be a token index, 0 to 4"),
    (_bad(fromIndex=-1), "attention[1].fromIndex must be a token index, 0 to 4"),
    (_bad(fromIndex=0), "attention[1].weights[1] must be 0: attention only looks back"),
    (_bad(weights=[0.0] * 5), "attention[1].weights must hold a positive weight"),
    (_bad(weights=[0.1, "NaN", 0, 0, 0]), "attention[1].weights[1] must be a finite number"),
    (_bad(weights=[0.1, "-Infinity", 0, 0, 0]), "attention[1].weights[1] must be a finite"),
    (_bad(tokens=[]), "attention[1].tokens is required and must not be empty"),
    ([], "attention must hold at least one record"),
]


@pytest.mark.parametrize(("attention", "message"), BAD_ATTENTION)
async def test_bad_attention_records_are_clear_400s_on_both_doors(
    app, clean_fake, attention, message
) -> None:
    body = {"method": "oai_attention_head", "attention": attention, "llm": LLM}
    response = await app.rest.post("/v1/explain", content=json.dumps(body), headers=app.headers)
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "INVALID_ARGUMENT"
    assert message in response.json()["detail"]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await _grpc(app, "Explain", body, pb.ExplainRequest)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in (caught.value.details() or "")
    assert clean_fake.stats()["records"] == []  # refused before any LLM call


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            {"method": "default", "attention": _attention(), "activations": _activating()},
            "attention is read only by attention-head explainers, not by default",
        ),
        ({"method": "default"}, "activations must hold at least one record"),
        (
            {"method": "np_acts_logits_general", "activations": _activating()},
            "top_positive_logits is required",
        ),
    ],
)
async def test_inputs_a_method_does_not_take_or_lacks_are_400s(app, body, message) -> None:
    response = await app.rest.post("/v1/explain", json={**body, "llm": LLM}, headers=app.headers)
    assert response.status_code == 400, response.text
    assert message in response.json()["detail"]


def test_non_finite_weights_cannot_even_be_parsed_as_json_numbers() -> None:
    # JSON has no NaN literal; protobuf's JSON reads the strings "NaN"/"Infinity" as doubles,
    # which is why the service checks finiteness itself (above).
    record = json_format.ParseDict(
        {"tokens": ["a"], "weights": ["NaN"], "fromIndex": 0}, pb.AttentionRecord()
    )
    assert math.isnan(record.weights[0])


async def test_bulk_runs_take_attention_records(app, clean_fake) -> None:
    """ExplainAndScore: the attention-head explainer reads each feature's attention records;
    its scorers score the feature's activation records."""
    records = cat_records()
    feature = {
        "id": "head-3",
        "attention": _attention(),
        "activations": [r for r in records if sum(r["values"]) > 0],
        "nonActivating": [r for r in records if sum(r["values"]) <= 0],
    }
    body = {
        "features": [feature],
        "explainer": {"method": "oai_attention_head"},
        "scorers": [{"method": "embedding"}],
        "llm": LLM,
    }
    request = json_format.ParseDict(body, pb.ExplainAndScoreRequest())
    async with grpc.aio.insecure_channel(app.grpc_target) as channel:
        events = [
            e
            async for e in pb_grpc.AutoInterpStub(channel).ExplainAndScore(
                request, metadata=app.auth, timeout=60
            )
        ]
    (result,) = [e.result for e in events if e.HasField("result")]
    assert not result.HasField("error"), result.error
    assert "cat" in result.explanation
    assert result.scores[0].HasField("score")
