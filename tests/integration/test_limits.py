"""A hostile world, in process (issue 11): bounded work per request, keys that never reach a
log line, bounded metrics labels, 64-bit usage, and the secret's edges."""

from __future__ import annotations

import asyncio
import json
import logging

import grpc
import numpy as np
import pytest
from google.protobuf import json_format
from samples import RIGHT_EXPLANATION, cat_records
from support import TEST_SECRET, app_settings, in_process_app
from uvicorn.logging import AccessFormatter

from autointerp_grpc.backends.embedding import EmbeddingBackend
from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2 as pb
from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2_grpc as pb_grpc
from autointerp_grpc.observability import JsonFormatter
from autointerp_grpc.redaction import REDACTED, RedactingFilter, Secrets
from autointerp_grpc.rest.jsonmap import to_json_dict
from autointerp_grpc.usage import Usage

MODEL = "openai/gpt-4o-mini"
KEY = "sk-limits-test-key-0123456789"
LLM = {"model": MODEL, "apiKey": KEY}


async def _score(app, body: dict, headers: dict | None = None):
    return await app.rest.post("/v1/score", json=body, headers=headers or app.headers)


# --- item 2: work per request bounded before any work starts ---------------------------------


async def test_an_explanation_past_the_limit_is_refused_up_front(app) -> None:
    body = {"method": "embedding", "explanation": "cat " * 600, "activations": cat_records()}
    response = await _score(app, body)
    assert response.status_code == 400
    assert "explanation holds 2400 characters; the limit is 2000" in response.json()["detail"]
    legacy = await app.rest.post(
        "/v1/score/embedding",
        json={"activations": cat_records(), "explanation": "x" * 2001},
        headers=app.headers,
    )
    assert legacy.status_code == 400


async def test_record_characters_are_bounded_per_record_and_per_request(app) -> None:
    wide = [{"tokens": ["x" * 20_001], "values": [1.0]}, *cat_records()]
    response = await _score(app, {"method": "embedding", "explanation": "x", "activations": wide})
    assert response.status_code == 400
    assert "activations[0].tokens hold 20001 characters" in response.json()["detail"]
    many = [{"tokens": ["y" * 10_000], "values": [float(i % 2)]} for i in range(101)]
    response = await _score(app, {"method": "embedding", "explanation": "x", "activations": many})
    assert response.status_code == 400
    assert "more than 1000000 characters" in response.json()["detail"]


async def test_tokens_are_bounded_per_request_even_when_empty(app) -> None:
    """Empty-string tokens cost no characters, yet each one costs memory (values, tensors,
    breakdown items): a request's tokens have their own budget (AUTOINTERP_MAX_REQUEST_TOKENS,
    500,000), shared by every record field of the request, on every RPC that takes records."""
    empty = [{"tokens": [""] * 4000, "values": [float(i % 2)] * 4000} for i in range(126)]
    message = "the records hold 504000 tokens in all; the limit is 500000"
    response = await _score(app, {"method": "embedding", "explanation": "x", "activations": empty})
    assert response.status_code == 400
    assert message in response.json()["detail"]
    explain = {"method": "contrastive", "activations": empty[:63], "nonActivating": empty[63:]}
    response = await app.rest.post("/v1/explain", json={**explain, "llm": LLM}, headers=app.headers)
    assert response.status_code == 400
    assert message in response.json()["detail"]
    legacy = {"activations": empty, "model": MODEL, "openrouterKey": KEY}
    response = await app.rest.post("/v1/explain/default", json=legacy, headers=app.headers)
    assert response.status_code == 400
    assert message in response.json()["detail"]


def test_the_embedding_model_runs_texts_in_batches_of_the_configured_size() -> None:
    """Peak memory of an encode call grows with sentence-transformers' batch_size (measured:
    +264 MiB at 32, +97 MiB at 8 for 1,000 texts of 1,000 characters); it is a setting."""
    model = _CountingModel()
    backend = EmbeddingBackend(model, "counting", encode_batch=8)
    backend.encode_now(["a", "b"])
    assert model.batch_sizes == [8]


# --- item 3: bulk amplification ---------------------------------------------------------------


async def test_bulk_scorers_are_bounded(app) -> None:
    request = pb.ExplainAndScoreRequest(
        features=[pb.Feature(id="f", activations=[pb.Activation(tokens=["a"], values=[1.0])])],
        explainer=pb.ExplainerChoice(method="default"),
        scorers=[pb.ScorerChoice(method="embedding")] * 17,
        llm=pb.LlmOptions(model=MODEL, api_key=KEY),
    )
    async with grpc.aio.insecure_channel(app.grpc_target) as channel:
        stream = pb_grpc.AutoInterpStub(channel).ExplainAndScore(
            request, metadata=app.auth, timeout=10
        )
        with pytest.raises(grpc.aio.AioRpcError) as info:
            [event async for event in stream]
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "scorers holds 17 entries; the limit is 16" in info.value.details()


async def test_bulk_features_are_bounded(fake_llm) -> None:
    feature = pb.Feature(activations=[pb.Activation(tokens=["a"], values=[1.0])])
    request = pb.ExplainAndScoreRequest(
        features=[pb.Feature(id=str(i), activations=feature.activations) for i in range(3)],
        explainer=pb.ExplainerChoice(method="default"),
        llm=pb.LlmOptions(model=MODEL, api_key=KEY),
    )
    async with (
        in_process_app(app_settings(fake_llm.base_url, max_bulk_features=2)) as small,
        grpc.aio.insecure_channel(small.grpc_target) as channel,
    ):
        stream = pb_grpc.AutoInterpStub(channel).ExplainAndScore(
            request, metadata=small.auth, timeout=10
        )
        with pytest.raises(grpc.aio.AioRpcError) as info:
            [event async for event in stream]
    assert "features holds 3 entries; the limit is 2" in info.value.details()


class _CountingModel:
    def __init__(self) -> None:
        self.texts: list[str] = []
        self.batch_sizes: list[int | None] = []

    def encode(self, texts, **options):
        self.texts.extend(texts)
        self.batch_sizes.append(options.get("batch_size"))
        return np.ones((len(texts), 4), dtype=np.float32)


async def test_queued_encodes_of_a_caller_that_left_are_skipped() -> None:
    model = _CountingModel()
    backend = EmbeddingBackend(model, "counting", window_s=0.05)
    try:
        kept = asyncio.ensure_future(backend.encode(["kept"]))
        gone = asyncio.ensure_future(backend.encode(["gone"] * 100))
        await asyncio.sleep(0.01)  # both queued, inside the batch window
        gone.cancel()
        assert (await kept).shape == (1, 4)
        assert model.texts == ["kept"]
    finally:
        await backend.close()


# --- item 6: keys never reach a log line --------------------------------------------------


async def test_a_key_in_a_field_that_is_not_a_key_field_is_neither_echoed_nor_logged(app) -> None:
    leaked = "sk-or-v1-sent-as-the-provider-name-0000"
    body = {
        "method": "detection",
        "explanation": "x",
        "activations": cat_records(),
        "llm": {**LLM, "provider": leaked},
    }
    response = await _score(app, body)
    assert response.status_code == 400
    assert leaked not in response.text
    assert leaked not in app.log_text()


async def test_a_request_id_equal_to_the_secret_is_redacted(app) -> None:
    headers = {**app.headers, "x-request-id": TEST_SECRET}
    await app.rest.get("/v1/methods", headers=headers)
    assert TEST_SECRET not in app.log_text()


def _record(message: str, *args: object, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("t", logging.INFO, __file__, 1, message, args, None)
    record.__dict__.update(extra)
    return record


def test_json_log_fields_are_redacted() -> None:
    secrets = Secrets()
    secrets.add(TEST_SECRET)
    record = _record("rpc=%s", "Score", request_id=TEST_SECRET, rpc="Score", status="OK")
    RedactingFilter(secrets).filter(record)
    line = json.loads(JsonFormatter().format(record))
    assert line["request_id"] == REDACTED
    assert TEST_SECRET not in json.dumps(line)


async def test_a_callers_key_never_touches_another_requests_lines() -> None:
    secrets = Secrets()
    lines: list[str] = []

    async def caller_with_a_hostile_key() -> None:
        with secrets.holding(["status="]):
            lines.append(secrets.redact("this request: status=OK"))
            await asyncio.sleep(0.01)

    async def another_request() -> None:
        await asyncio.sleep(0.005)
        lines.append(secrets.redact("other request: status=OK"))

    await asyncio.gather(caller_with_a_hostile_key(), another_request())
    assert "this request: [redacted]OK" in lines
    assert "other request: status=OK" in lines


def test_uvicorn_access_lines_still_format_after_redaction() -> None:
    secrets = Secrets()
    with secrets.holding(["HTTP/1.1"]):
        record = _record('%s - "%s %s HTTP/%s" %d', "127.0.0.1:1", "GET", "/health", "1.1", 200)
        RedactingFilter(secrets).filter(record)
        text = AccessFormatter('%(client_addr)s - "%(request_line)s" %(status_code)s').format(
            record
        )
    assert "GET /health" in text and "200" in text


# --- item 7: metrics labels bounded -----------------------------------------------------------


async def test_a_huge_model_name_does_not_become_a_metrics_label(app, clean_fake) -> None:
    model = "m" * 200_000
    body = {
        "activations": cat_records(),
        "explanation": RIGHT_EXPLANATION,
        "openrouterKey": KEY,
        "model": model,
        "type": "DETECTION",
    }
    await app.rest.post("/v1/score/fuzz-detection", json=body, headers=app.headers)
    metrics = (await app.rest.get("/metrics")).text
    assert model not in metrics
    assert len(metrics) < 200_000
    assert 'model="other"' in metrics


# --- item 9: 64-bit usage ---------------------------------------------------------------------


def test_usage_past_two_to_the_31_is_a_json_number() -> None:
    usage = Usage()
    for _ in range(3):
        usage.add(pb.Usage(llm_calls=1, prompt_tokens=2**30, completion_tokens=2**30))
    message = usage.to_proto()
    assert message.prompt_tokens == 3 * 2**30
    printed = to_json_dict(pb.Progress(done=1, total=1, usage=message))
    assert printed["usage"]["promptTokens"] == 3 * 2**30
    assert json_format.ParseDict(printed, pb.Progress()).usage.prompt_tokens == 3 * 2**30


# --- item 12: keys and the secret ---------------------------------------------------------------


@pytest.mark.parametrize("key", [KEY + " ", " " + KEY, KEY + "\t"])
async def test_a_key_with_surrounding_whitespace_is_refused_up_front(app, key: str) -> None:
    body = {"method": "detection", "explanation": "x", "activations": cat_records(),
            "llm": {"model": MODEL, "apiKey": key}}  # fmt: skip
    response = await _score(app, body)
    assert response.status_code == 400, response.text
    assert "llm.api_key" in response.json()["detail"]
    assert KEY not in response.text


async def test_duplicate_secret_headers_are_refused_on_both_doors(app) -> None:
    headers = [("x-secret-key", TEST_SECRET), ("x-secret-key", TEST_SECRET)]
    response = await app.rest.get("/v1/methods", headers=headers)
    assert response.status_code == 401
    assert "more than once" in response.json()["detail"]
    async with grpc.aio.insecure_channel(app.grpc_target) as channel:
        stub = pb_grpc.AutoInterpStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.ListMethods(pb.ListMethodsRequest(), metadata=headers, timeout=5)
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
        ok = await stub.ListMethods(pb.ListMethodsRequest(), metadata=headers[:1], timeout=5)
        assert ok.methods
