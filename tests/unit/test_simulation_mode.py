"""The simulation scorer decides its mode on the provider, not on the first record (issue 18
item 6): a provider that sends top log probabilities for some calls of a request runs
logprob_ev, and a record whose answer lacks them is an unanswered record under the coverage
floor, wherever it sits in the request; only a provider that sends none at all makes explicit
logprob_ev a FAILED_PRECONDITION and ``auto`` a JSON simulation, said so in ``notes``.

The judges are in-process clients answering like the fake LLM, except for the calls they pick
(by the record's tokens in the prompt): those get an answer without log probabilities, or a
400, or lines that do not match the record.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from openai.types.chat.chat_completion_token_logprob import ChatCompletionTokenLogprob

from autointerp_grpc.delphi_compat import Response
from autointerp_grpc.errors import (
    AutoInterpError,
    FailedPrecondition,
    InvalidArgument,
    Unavailable,
)
from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2 as pb
from autointerp_grpc.handlers import Deps
from autointerp_grpc.handlers.lookup import default_method
from autointerp_grpc.handlers.score import score_split
from autointerp_grpc.methods import simulation
from autointerp_grpc.methods.registry import SCORER_REGISTRY
from autointerp_grpc.methods.simulation import PROBE_TOKENS
from autointerp_grpc.records import split_records
from autointerp_testing.fake_llm import Answer, request_kind
from autointerp_testing.fake_llm.recognise import last_user_message, system_prompt

N = 6
"""Records of each class: record 2i is activating (" cat"), record 2i + 1 is not (" bank")."""


@pytest.fixture(autouse=True)
def one_record_per_call(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests pin what happens to each record's answer (record 0's answer first), so
    each call asks for one record (the anchor's prompt exactly), in the request's order;
    calls of several records are tested in tests/unit/test_simulation_batches.py."""
    monkeypatch.setattr(
        simulation, "record_batches", lambda records, seed: [[i] for i in range(len(records))]
    )


class Judge:
    """An LLM client answering like the fake LLM, but for the logprob_ev calls whose user
    message ``picked`` selects: ``how`` is "no_logprobs" (an answer without them), "reject"
    (a 400) or "unalignable" (an answer a line short, with log probabilities)."""

    def __init__(self, picked: Callable[[str], bool], how: str = "no_logprobs") -> None:
        self.picked, self.how = picked, how
        self.errors: list[AutoInterpError] = []
        self.kinds: list[str] = []
        self.logprobs_missing = False

    async def generate(self, prompt: list[dict[str, Any]], **kwargs: Any) -> Response:
        messages = [
            {"role": str(getattr(m["role"], "value", m["role"])), "content": m["content"]}
            for m in prompt
        ]
        kind = request_kind(messages)
        self.kinds.append(kind)
        user = last_user_message(messages)
        picked = bool(kwargs.get("logprobs")) and self.picked(user)
        if picked and self.how == "reject":
            error = InvalidArgument("The LLM provider rejected the request (HTTP 400)")
            self.errors.append(error)
            raise error
        answer = Answer(kind, system_prompt(messages), user)
        content = answer.content("wrong_length" if picked and self.how == "unalignable" else None)
        entries = None
        if kwargs.get("logprobs") and not (picked and self.how == "no_logprobs"):
            raw = answer.logprobs(content, kwargs.get("top_logprobs"))
            entries = [ChatCompletionTokenLogprob.model_validate(e) for e in raw]
        return Response(text=content, logprobs=entries)  # pyright: ignore[reportArgumentType]


def _records() -> list[pb.Activation]:
    records = []
    for i in range(N):
        records.append(pb.Activation(tokens=["The", " cat", f" id{i}"], values=[0, 0.9, 0]))
        records.append(pb.Activation(tokens=["The", " bank", f" id{i}"], values=[0, 0, 0]))
    return records


async def _score(client: Judge, mode: str, **kw: Any):
    method = default_method(SCORER_REGISTRY, "simulation", mode=mode, structured_output=False)
    split = split_records(_records())
    return await score_split(method, "cat", split, Deps(llm=None), client, **kw)  # type: ignore[arg-type]


def _record(user: str, word: str, i: int | None = None) -> bool:
    """Whether the prompt's token lines are the record of ``word`` (and number ``i``)."""
    ids = [f" id{i}\t"] if i is not None else [f" id{k}\t" for k in range(N)]
    return f"\n {word}\t" in user and any(marker in user for marker in ids)


def _record_0(user: str) -> bool:
    return _record(user, "cat", 0)


def _activating(user: str) -> bool:
    return _record(user, "cat")


def _everything(user: str) -> bool:
    return True


@pytest.mark.parametrize("how", ["no_logprobs", "reject"])
@pytest.mark.parametrize("mode", ["logprob_ev", "auto"])
async def test_record_0_without_logprobs_is_one_unanswered_record(mode: str, how: str) -> None:
    judge = Judge(_record_0, how)
    result = await _score(judge, mode)
    how_note = " (auto)" if mode == "auto" else ""
    assert result.notes[0].startswith(f"Simulated with mode logprob_ev{how_note}:")
    assert "simulation" not in judge.kinds  # never switched to JSON
    assert result.coverage is not None
    assert (result.coverage.activating_answered, result.coverage.activating_total) == (5, 6)
    assert (result.coverage.non_activating_answered, result.coverage.non_activating_total) == (
        6,
        6,
    )
    assert any("Scored on the 5/6 activating and 6/6 non-activating" in n for n in result.notes)
    if how == "no_logprobs":
        assert any(
            "1 of the 12 records' answers carried no top log prob" in n for n in result.notes
        )
    else:
        assert any("1 LLM call(s) failed" in n for n in result.notes)
    assert not result.breakdown[0].predicted_activations
    assert result.score > 0.99
    # The first record, the probe (a fixed text that is no record), then the other 11.
    assert len(judge.kinds) == 13 and set(judge.kinds) == {"simulation_ev"}
    # Below a stricter floor the same gap is a refusal naming the counts, never a switch.
    with pytest.raises(Unavailable, match=r"Only 5/6 activating and 6/6 non-activating"):
        await _score(Judge(_record_0, how), mode, min_answered=0.9)


@pytest.mark.parametrize("how", ["no_logprobs", "unalignable", "reject"])
@pytest.mark.parametrize("mode", ["logprob_ev", "auto"])
async def test_a_judge_dropping_every_activating_answer_gets_the_coverage_refusal(
    mode: str, how: str
) -> None:
    judge = Judge(_activating, how)
    with pytest.raises(Unavailable) as info:
        await _score(judge, mode)
    assert "Only 0/6 activating and 6/6 non-activating records got a usable answer" in str(
        info.value.message
    )
    assert "minAnswered" in info.value.message
    assert "simulation" not in judge.kinds


async def test_a_gap_elsewhere_reads_the_same_as_a_gap_at_record_0() -> None:
    at_0 = await _score(Judge(_record_0), "logprob_ev")
    at_4 = await _score(Judge(lambda user: _record(user, "cat", 2)), "logprob_ev")
    assert at_0.coverage == at_4.coverage
    assert at_0.notes == at_4.notes
    assert at_0.score == pytest.approx(at_4.score)


async def test_a_provider_without_logprobs_fails_explicit_and_falls_back_in_auto() -> None:
    judge = Judge(_everything)
    with pytest.raises(FailedPrecondition, match="mode logprob_ev needs the provider's top log"):
        await _score(judge, "logprob_ev")
    assert judge.kinds == ["simulation_ev", "simulation_ev"]  # the first record and the probe

    judge = Judge(_everything)
    result = await _score(judge, "auto")
    assert judge.kinds == ["simulation_ev", "simulation_ev", *["simulation"] * 12]
    assert result.notes[0].startswith("Simulated with mode json (auto)")
    assert "no top log probabilities" in result.notes[0]
    assert result.coverage is not None and result.coverage.answered == 12

    # A provider that rejects the request for them: the 400 for explicit, JSON for auto.
    with pytest.raises(InvalidArgument, match="HTTP 400"):
        await _score(Judge(_everything, "reject"), "logprob_ev")
    result = await _score(Judge(_everything, "reject"), "auto")
    assert "rejected the request for them" in result.notes[0]
    assert result.coverage is not None and result.coverage.answered == 12


async def test_the_probe_is_a_fixed_text_that_no_judge_can_take_for_a_record() -> None:
    seen: list[str] = []

    def record_0_and_log(user: str) -> bool:
        seen.append(user)
        return _record_0(user)

    await _score(Judge(record_0_and_log), "logprob_ev")
    probe = seen[1]
    assert all(token.strip() in probe for token in PROBE_TOKENS)
    assert not _record(probe, "cat") and not _record(probe, "bank")
