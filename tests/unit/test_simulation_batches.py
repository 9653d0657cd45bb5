"""logprob_ev asks for several records per call (issue 20 item 3: the few-shot preamble,
about 1,100 prompt tokens, was sent once per record): which records share a call, how an
answer's lines are read back to their records, and that a request scores the same with
several records per call as with one, for far fewer calls and prompt tokens."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from samples import RIGHT_EXPLANATION, many_cat_records
from support import app_settings, in_process_app

from autointerp_grpc.methods import simulation
from autointerp_grpc.methods.simulation import RECORDS_PER_CALL, TOKENS_PER_CALL, record_batches
from autointerp_grpc.methods.simulation_ev import simulated_lines
from autointerp_grpc.prompts.oai_simulation import (
    simulation_ev_batch_messages,
    simulation_ev_messages,
)
from autointerp_testing.fake_llm import simulation_ev_answer
from autointerp_testing.fake_llm.recognise import parse_simulation_ev_sequences


def test_batches_cover_every_record_once_within_the_bounds() -> None:
    records = [["t"] * n for n in [3, 5, 300, 40, 7, 2, 90, 90, 90, 1, 1, 1, 1, 1, 1, 1, 1]]
    batches = record_batches(records, seed=7)
    assert sorted(i for batch in batches for i in batch) == list(range(len(records)))
    for batch in batches:
        assert len(batch) <= RECORDS_PER_CALL
        assert len(batch) == 1 or sum(len(records[i]) for i in batch) <= TOKENS_PER_CALL
    assert [2] in batches  # longer than a call's tokens: alone
    # Reproducible from the request's content, and another request draws other calls.
    assert record_batches(records, seed=7) == batches
    assert record_batches(records, seed=8) != batches


def test_one_record_is_the_anchors_prompt_exactly() -> None:
    tokens = ["The", " cat", " sat"]
    assert simulation_ev_batch_messages("cats", [tokens]) == simulation_ev_messages("cats", tokens)


def _content(answer: Any) -> list[SimpleNamespace]:
    return [
        SimpleNamespace(
            token=e["token"],
            bytes=e.get("bytes"),
            top_logprobs=[SimpleNamespace(**t) for t in e["top_logprobs"]],
        )
        for e in answer.logprobs(20)
    ]


def test_each_line_is_read_back_to_the_record_under_its_heading() -> None:
    records = [["The", " cat", " sat"], ["A", " dog", " ran", "."], ["My", " cat"]]
    user = simulation_ev_batch_messages("the word cat", records)[-1]["content"]
    parsed = parse_simulation_ev_sequences(user)
    assert parsed is not None and parsed[1] == records
    answer = simulation_ev_answer(user)
    assert answer is not None
    assert "\nSequence 3 Tokens with Activations:\n" in answer.text()
    lines = simulated_lines(_content(answer))
    assert [(line.sequence, line.token) for line in lines] == [
        (number, token) for number, tokens in enumerate(records, 1) for token in tokens
    ]
    high = [line.token for line in lines if line.value is not None and line.value > 5]
    assert high == [" cat", " cat"]


def test_headings_split_an_answer_written_without_the_marks() -> None:
    text = "The\t0\n cat\t9\n\nSequence 2 Tokens with Activations:\nA\t0\n dog\t1\n"
    content = [
        SimpleNamespace(token=ch, bytes=None, top_logprobs=[SimpleNamespace(token=ch, logprob=0.0)])
        for ch in text
    ]
    lines = simulated_lines(content)
    assert [(line.sequence, line.token, line.value) for line in lines] == [
        (1, "The", 0.0),
        (1, " cat", 9.0),
        (2, "A", 0.0),
        (2, " dog", 1.0),
    ]


async def _simulate(app: Any, records: list[dict[str, Any]]) -> dict[str, Any]:
    body = {
        "method": "simulation",
        "simulationParams": {"mode": "logprob_ev"},
        "explanation": RIGHT_EXPLANATION,
        "activations": records,
        "llm": {"model": "openai/gpt-4o-mini", "apiKey": "sk-batch-test-key"},
    }
    response = await app.rest.post("/v1/score", json=body, headers=app.headers, timeout=60)
    assert response.status_code == 200, response.text
    return response.json()


async def test_a_24_record_request_scores_the_same_in_3_calls(
    clean_fake, monkeypatch: pytest.MonkeyPatch
) -> None:
    records = many_cat_records()[:24]
    async with in_process_app(app_settings(clean_fake.base_url)) as app:
        batched = await _simulate(app, records)
        monkeypatch.setattr(
            simulation, "record_batches", lambda found, seed: [[i] for i in range(len(found))]
        )
        one_each = await _simulate(app, records)
    # Measured with the fake LLM's token counts: 24 calls and 27,261 prompt tokens before.
    assert one_each["usage"]["llmCalls"] == 24
    assert batched["usage"]["llmCalls"] == 3
    assert batched["usage"]["promptTokens"] < one_each["usage"]["promptTokens"] / 5
    assert batched["score"] == pytest.approx(one_each["score"])
    assert batched["coverage"] == one_each["coverage"]
    for mine, theirs in zip(batched["breakdown"], one_each["breakdown"], strict=True):
        assert mine["predictedActivations"] == pytest.approx(theirs["predictedActivations"])
