"""Handlers against the fake LLM over real HTTP (no gRPC/HTTP server in between)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from samples import RIGHT_EXPLANATION, cat_records

from autointerp_grpc.backends.llm import LLMBackend
from autointerp_grpc.config import Settings
from autointerp_grpc.delphi_compat import DetectionScorer, Latent, LatentRecord
from autointerp_grpc.errors import (
    FailedPrecondition,
    InvalidArgument,
    ResourceExhausted,
    Unavailable,
    UpstreamBadResponse,
)
from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2 as pb
from autointerp_grpc.handlers import Deps
from autointerp_grpc.handlers.legacy import explain_default, score_fuzz_detection
from autointerp_grpc.records import split_records

KEY = "sk-handler-test"


@pytest.fixture
async def deps(fake_llm) -> AsyncIterator[Deps]:
    fake_llm.set_fault(None)
    fake_llm.set_latency(0)
    fake_llm.reset_stats()
    backend = LLMBackend(Settings(llm_base_url=fake_llm.base_url, llm_max_retries=0))
    yield Deps(llm=backend)
    await backend.aclose()


def _records(n_activating: int = 7, n_non_activating: int = 7) -> list[pb.Activation]:
    records = cat_records()
    activating = [r for r in records if sum(r["values"]) > 0][:n_activating]
    others = [r for r in records if sum(r["values"]) <= 0][:n_non_activating]
    return [pb.Activation(tokens=r["tokens"], values=r["values"]) for r in activating + others]


def _score_request(
    model: str = "m", kind: int = pb.DETECTION, **kw
) -> pb.ScoreFuzzDetectionRequest:
    fields = {
        "activations": _records(),
        "explanation": RIGHT_EXPLANATION,
        "openrouter_key": KEY,
        "model": model,
        "type": kind,
    }
    fields.update(kw)
    return pb.ScoreFuzzDetectionRequest(**fields)


async def test_last_short_batch_is_answered(deps, fake_llm) -> None:
    # 7 + 5 = 12 examples at 5 per prompt: batches of 5, 5 and 2.
    request = _score_request(activations=_records(7, 5))
    response = await score_fuzz_detection(request, deps)
    assert len(response.breakdown) == 12
    assert all(item.HasField("prediction") for item in response.breakdown)
    assert response.score == 1.0
    assert fake_llm.stats()["requests"] == 3


async def test_stock_delphi_drops_the_short_batch(deps) -> None:
    # The delphi 0.1.3 behaviour our Classifier mixin fixes: a correct 2-item answer to the
    # last batch fails its length check, so those examples come back unanswered.
    split = split_records(_records(7, 5))
    record = LatentRecord(Latent("latent", 0))
    record.test, record.not_active, record.explanation = (
        split.activating,
        split.non_activating,
        RIGHT_EXPLANATION,
    )
    scorer = DetectionScorer(deps.llm.client("m", KEY), n_examples_shown=5)
    outputs = (await scorer(record)).score
    assert sum(o.prediction is None for o in outputs) == 2


async def test_wrong_length_answers_are_unanswered_not_false(deps) -> None:
    with pytest.raises(UpstreamBadResponse, match="no usable answer for any of the 14 examples"):
        await score_fuzz_detection(_score_request(model="m@fault=wrong_length"), deps)


async def test_garbage_explanation_is_retried_once_then_an_error(deps, fake_llm) -> None:
    request = pb.ExplainDefaultRequest(
        activations=_records(), openrouter_key=KEY, model="m@fault=garbage"
    )
    with pytest.raises(UpstreamBadResponse, match=r"\[EXPLANATION\]"):
        await explain_default(request, deps)
    assert fake_llm.stats()["requests"] == 2


async def test_explanation_recovers_on_retry(deps, fake_llm) -> None:
    fake_llm.set_fault("garbage", count=1)
    request = pb.ExplainDefaultRequest(activations=_records(), openrouter_key=KEY, model="m")
    response = await explain_default(request, deps)
    assert response.explanation == 'Mentions of "cat"'


@pytest.mark.parametrize(
    ("fault", "error", "text"),
    [
        ("429", ResourceExhausted, "rate limiting"),
        ("500", Unavailable, "HTTP 500"),
        ("bad_key", FailedPrecondition, "rejected the API key"),
        ("no_credits", FailedPrecondition, "no credits"),
    ],
)
async def test_provider_faults_become_typed_errors(
    deps, fault: str, error: type, text: str
) -> None:
    request = pb.ExplainDefaultRequest(
        activations=_records(), openrouter_key=KEY, model=f"m@fault={fault}"
    )
    with pytest.raises(error, match=text) as info:
        await explain_default(request, deps)
    assert KEY not in info.value.message
    # Scoring reports the same cause when no example got an answer.
    with pytest.raises(error, match=text):
        await score_fuzz_detection(_score_request(model=f"m@fault={fault}"), deps)


async def test_unknown_type_value_is_invalid(deps) -> None:
    with pytest.raises(InvalidArgument, match="FUZZ or DETECTION"):
        await score_fuzz_detection(_score_request(kind=7), deps)


async def test_scoring_needs_both_kinds(deps) -> None:
    with pytest.raises(InvalidArgument, match="got 7 activating and 0 non-activating"):
        await score_fuzz_detection(_score_request(activations=_records(7, 0)), deps)
