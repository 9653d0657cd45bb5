"""The expected-value simulation (mode logprob_ev): its prompt and arithmetic against the
anchor's own output (tests/fixtures/anchors/simulation, made by running
automated-interpretability 0.0.24), reading log probabilities a provider sends, the modes of
the simulation scorer, and the fake LLM's side of it (the answer with OpenAI-shaped log
probabilities, the faults that take them away, and the explainer prompts it recognises by
their anchors' sentences)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import openai
import pytest
from openai.types.chat.chat_completion_token_logprob import ChatCompletionTokenLogprob

from autointerp_grpc.delphi_compat import NeuronSimulator, Response
from autointerp_grpc.errors import (
    AutoInterpError,
    FailedPrecondition,
    InvalidArgument,
    Unavailable,
    UpstreamBadResponse,
)
from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2 as pb
from autointerp_grpc.handlers import Deps
from autointerp_grpc.handlers.lookup import default_method
from autointerp_grpc.handlers.score import score_split
from autointerp_grpc.methods import simulation
from autointerp_grpc.methods.registry import SCORER_REGISTRY
from autointerp_grpc.methods.simulation import _simulation_result
from autointerp_grpc.methods.simulation_ev import (
    SimulatedLine,
    align,
    expected_value,
    has_top_logprobs,
    simulated_lines,
)
from autointerp_grpc.prompts import (
    np_max_act_messages,
    oai_token_act_pair_messages,
    recall_messages,
)
from autointerp_grpc.prompts.oai_simulation import simulation_ev_messages
from autointerp_grpc.records import split_records
from autointerp_testing.fake_llm import (
    TEST_ONLY_MARKERS,
    Answer,
    attention_answer,
    request_kind,
)
from autointerp_testing.fake_llm.recognise import last_user_message, system_prompt

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "anchors" / "simulation"


@pytest.fixture(autouse=True)
def one_record_per_call(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests pin what happens to each record's answer (record 0's answer first), so
    each call asks for one record (the anchor's prompt exactly), in the request's order;
    calls of several records are tested in tests/unit/test_simulation_batches.py."""
    monkeypatch.setattr(
        simulation, "record_batches", lambda records, seed: [[i] for i in range(len(records))]
    )


def _fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


# --- the anchor's prompt and arithmetic --------------------------------------------------


@pytest.mark.parametrize("case", _fixture("prompts.json"), ids=lambda c: c["explanation"][:12])
def test_the_prompt_is_the_anchors(case: dict[str, Any]) -> None:
    assert simulation_ev_messages(case["explanation"], case["tokens"]) == case["messages"]


def test_the_prompt_is_recognised_by_content_and_holds_no_test_marker() -> None:
    messages = simulation_ev_messages("the word cat", ["The", " cat"])
    assert request_kind(messages) == "simulation_ev"
    assert all(m not in msg["content"] for msg in messages for m in TEST_ONLY_MARKERS)
    # The JSON simulation prompt shares its first sentence and stays what it was.
    json_prompt = NeuronSimulator(None, "cats", use_logprobs=False)._make_json_prompt(["a"])
    assert request_kind(json_prompt) == "simulation"
    with pytest.raises(ValueError, match="no tokens"):
        simulation_ev_messages("cats", [])


@pytest.mark.parametrize("case", _fixture("expected_values.json"))
def test_expected_values_are_the_anchors(case: dict[str, Any]) -> None:
    value = expected_value(case["top_logprobs"].items())
    assert value == pytest.approx(case["expected_value"], abs=1e-12)


def test_expected_value_edges() -> None:
    assert expected_value([("x", 0.0), ("11", -0.1)]) is None  # no activation token
    assert expected_value([]) is None
    assert expected_value([(" 4", math.log(0.5)), ("4", math.log(0.5))]) == 4.0  # same value
    assert expected_value([("2", float("nan")), ("6", -1.0)]) == 6.0
    assert expected_value([("10", 1e9), ("0", 0.0)]) == 5.0  # a nonsense logprob is capped


def _split(records: list[tuple[list[float], Any]]):
    return split_records(
        [pb.Activation(tokens=[f"t{i}" for i in range(len(t))], values=t) for t, _ in records]
    )


def test_pooled_correlation_is_openais_ev_correlation_score() -> None:
    # OpenAI pools every token of every record (scoring.py aggregate_scored_sequence_simulations);
    # the fixture's number is the anchor's own, on expected values and on point predictions.
    data = _fixture("ev_correlation.json")
    records = [(r["true"], r["expected_values"]) for r in data["records"]]
    result = _simulation_result(_split(records), [p for _, p in records], [], [], 0.8)
    assert result.score == pytest.approx(data["ev_correlation_score"], abs=1e-12)
    points = [(t, [round(v) for v in p]) for t, p in records]
    flat_true = [v for t, _ in points for v in t]
    flat_points = [v for _, p in points for v in p]
    result = _simulation_result(_split(points), [p for _, p in points], [], [], 0.8)
    assert result.score == pytest.approx(np.corrcoef(flat_true, flat_points)[0, 1], abs=1e-12)


# --- reading what a provider sends --------------------------------------------------------


def _entry(token: str, top: dict[str, float] | None = None, raw: bytes | None = None):
    alternatives = top or {token: 0.0}
    return ChatCompletionTokenLogprob.model_validate(
        {
            "token": token,
            "logprob": max(alternatives.values()),
            "bytes": None if raw is None else list(raw),
            "top_logprobs": [{"token": t, "logprob": lp} for t, lp in alternatives.items()],
        }
    )


HIGH = {"9": math.log(0.5), "10": math.log(0.5)}
LOW = {"0": 0.0}


def _line(token: str, top: dict[str, float], end: str = "\u0f17\n") -> list[Any]:
    return [_entry(token), _entry("\t"), _entry(max(top, key=top.__getitem__), top), _entry(end)]


def test_lines_from_byte_split_marks_and_merged_tab_digits() -> None:
    mark = "\u0f17".encode()
    entries = [
        _entry(" cat"),
        _entry("\t9", {"\t9": math.log(0.5), "\t10": math.log(0.5)}),  # tab and digit in one
        _entry("bytes:\\xe0\\xbc", raw=mark[:2]),
        _entry("bytes:\\x97", raw=mark[2:]),
        _entry("\n"),
        _entry("\u2026\n\n"),  # a token holding newlines
        _entry("\t"),
        _entry("0", LOW),
        _entry("\u0f17\n"),
    ]
    assert simulated_lines(entries) == [
        SimulatedLine(" cat", 9.5),
        SimulatedLine("\u2026\n\n", 0.0),
    ]


def test_lines_after_a_preamble_or_a_reasoning_trace_or_without_marks() -> None:
    entries = [
        _entry("<think>The\t10 is wrong</think>"),
        _entry("Here you go:\n\nThe"),
        *_line("", LOW)[1:],
        *_line(" cat", HIGH),
    ]
    lines = simulated_lines(entries)
    assert lines == [SimulatedLine("Here you go:\n\nThe", 0.0), SimulatedLine(" cat", 9.5)]
    assert align(["The", " cat"], lines) == [0.0, 9.5]
    # Without the marks, lines end at newlines (the anchor's own fallback).
    bare = [_entry("Sure:\n"), *_line("The", LOW, end="\n"), *_line(" cat", HIGH, end="\n")]
    assert simulated_lines(bare) == [SimulatedLine("The", 0.0), SimulatedLine(" cat", 9.5)]


def test_a_hostile_logprobs_shape_is_no_answer_not_a_crash() -> None:
    assert not has_top_logprobs(5)  # type: ignore[arg-type]
    assert not has_top_logprobs([{"top_logprobs": [{"token": "1", "logprob": 0}]}])
    assert not has_top_logprobs([SimpleNamespace(top_logprobs="oops")])
    odd = [
        SimpleNamespace(token="a\t", bytes="x", top_logprobs=[]),
        SimpleNamespace(token="4", bytes=[300], top_logprobs=7),
        SimpleNamespace(token=None, top_logprobs=[SimpleNamespace(token=4, logprob=True)]),
    ]
    assert simulated_lines(odd) == [SimulatedLine("a", None)]


def test_alignment_leaves_unmatched_tokens_unanswered_and_shifts_nothing() -> None:
    tokens = ["The", " cat", " sat", " on", "<|endoftext|>"]
    lines = [
        SimulatedLine("The", 0.0),
        SimulatedLine("cat", 9.0),  # the leading space dropped
        SimulatedLine(" on", 1.0),  # " sat" skipped
        SimulatedLine(" extra", 5.0),  # a line for no token
        SimulatedLine("<|not_endoftext|>", 2.0),
    ]
    assert align(tokens, lines) == [0.0, 9.0, None, 1.0, 2.0]
    assert align(tokens, []) == [None] * 5
    # A digit without usable alternatives stays unanswered.
    no_digit = [*_line("The", {"x": 0.0})]
    assert simulated_lines(no_digit) == [SimulatedLine("The", None)]


# --- the scorer's modes, with the fake LLM's answers in process ----------------------------


class FakeClient:
    """An LLM client answering like the fake LLM (its Answer builder), in process."""

    def __init__(self, logprobs: bool = True, reject: bool = False, fault: str | None = None):
        self.logprobs, self.reject, self.fault = logprobs, reject, fault
        self.errors: list[AutoInterpError] = []
        self.kinds: list[str] = []
        self.logprobs_missing = False

    async def generate(self, prompt: list[dict[str, Any]], **kwargs: Any) -> Response:
        # As LLMClient sends them: delphi's roles are a str Enum.
        messages = [
            {"role": str(getattr(m["role"], "value", m["role"])), "content": m["content"]}
            for m in prompt
        ]
        kind = request_kind(messages)
        self.kinds.append(kind)
        if self.reject and kwargs.get("logprobs"):
            error = InvalidArgument("The LLM provider rejected the request (HTTP 400)")
            self.errors.append(error)
            raise error
        answer = Answer(kind, system_prompt(messages), last_user_message(messages))
        content = answer.content(self.fault)
        entries = None
        if kwargs.get("logprobs") and self.logprobs:
            raw = answer.logprobs(content, kwargs.get("top_logprobs"))
            entries = [ChatCompletionTokenLogprob.model_validate(e) for e in raw]
        return Response(text=content, logprobs=entries)  # pyright: ignore[reportArgumentType]


def _records(n: int = 6) -> list[pb.Activation]:
    records = []
    for i in range(n):
        records.append(pb.Activation(tokens=["The", " cat", f" id{i}"], values=[0, 0.9, 0]))
        records.append(pb.Activation(tokens=["The", " bank", f" id{i}"], values=[0, 0, 0]))
    return records


async def _score(client: FakeClient, explanation: str = "cat", mode: str = "auto", **kw):
    method = default_method(SCORER_REGISTRY, "simulation", mode=mode, structured_output=False)
    split = split_records(_records())
    return await score_split(method, explanation, split, Deps(llm=None), client, **kw)  # type: ignore[arg-type]


async def test_auto_runs_logprob_ev_where_the_provider_sends_logprobs() -> None:
    client = FakeClient()
    result = await _score(client)
    assert set(client.kinds) == {"simulation_ev"} and len(client.kinds) == 12
    assert result.notes[0].startswith("Simulated with mode logprob_ev (auto)")
    assert result.score > 0.99
    predicted = [list(item.predicted_activations) for item in result.breakdown]
    assert predicted[0] == pytest.approx([0.2143, 9.3776, 0.2143], abs=1e-4)
    # A reasoning trace before the lines (its tokens in the log probabilities too) is skipped.
    thinking = await _score(FakeClient(fault="think"))
    assert thinking.score == result.score


async def test_auto_falls_back_to_json_and_says_why() -> None:
    client = FakeClient(logprobs=False)
    result = await _score(client)
    # Two calls to find out: the first record, then a probe of the provider itself.
    assert client.kinds == ["simulation_ev", "simulation_ev", *["simulation"] * 12]
    assert "no top log probabilities" in result.notes[0] and "mode json (auto)" in result.notes[0]
    assert result.score == pytest.approx(1.0)
    client = FakeClient(reject=True)
    result = await _score(client)
    assert "rejected the request" in result.notes[0]
    assert result.coverage is not None and result.coverage.answered == 12  # no stale error
    # The mode note, which structured output ran, and the small-sample note only.
    assert len(result.notes) == 3
    assert result.notes[1].startswith("Answers asked for with ")


async def test_explicit_logprob_ev_without_logprobs_fails_clearly() -> None:
    with pytest.raises(FailedPrecondition, match="mode logprob_ev needs the provider's top log"):
        await _score(FakeClient(logprobs=False), mode="logprob_ev")
    with pytest.raises(InvalidArgument, match="HTTP 400"):
        await _score(FakeClient(reject=True), mode="logprob_ev")


async def test_json_mode_is_delphis_json_simulation() -> None:
    client = FakeClient()
    result = await _score(client, mode="json")
    assert set(client.kinds) == {"simulation"}
    assert result.notes[0].startswith("Simulated with mode json:")


async def test_failures_are_never_scores() -> None:
    # An explanation the fake finds nowhere: the same expected value everywhere.
    with pytest.raises(UpstreamBadResponse, match="same activation"):
        await _score(FakeClient(), explanation="stock market", mode="logprob_ev")
    # Every answer a line short: every record unanswered, said so.
    with pytest.raises(UpstreamBadResponse, match="no usable answer"):
        await _score(FakeClient(fault="wrong_length"), mode="logprob_ev")
    # Half the records short of a line: below the coverage floor.
    client = FakeClient()
    calls = [0]
    original = client.generate

    async def every_other(prompt: list[dict[str, Any]], **kwargs: Any) -> Response:
        calls[0] += 1
        # Calls 2-3, 6-7, 10-11: records 1-2, 5-6, 9-10, half of either kind.
        client.fault = "wrong_length" if calls[0] % 4 in (2, 3) else None
        return await original(prompt, **kwargs)

    client.generate = every_other  # type: ignore[method-assign]
    with pytest.raises(Unavailable, match="minAnswered"):
        await _score(client, mode="logprob_ev")
    result = await _score(client, mode="logprob_ev", min_answered=0.3)
    assert result.coverage is not None and result.coverage.answered == 6
    assert any("Scored on the" in note for note in result.notes)


# --- the fake LLM over HTTP ---------------------------------------------------------------

CAT_TOKENS = ["The", " cat", " sat", "\n", " on", " Cats"]


async def test_fake_answers_lines_and_openai_shaped_logprobs(fake, client) -> None:
    messages = simulation_ev_messages("the word cat", CAT_TOKENS)
    response = await client.chat.completions.create(
        model="m",
        messages=messages,
        logprobs=True,
        top_logprobs=20,  # type: ignore[arg-type]
    )
    choice = response.choices[0]
    assert choice.message.content == "".join(
        f"{t}\t{10 if 'cat' in t.lower() else 0}\u0f17\n" for t in CAT_TOKENS
    )
    assert choice.logprobs is not None and choice.logprobs.content is not None
    content = choice.logprobs.content
    assert bytes(b for e in content for b in (e.bytes or [])).decode() == choice.message.content
    values = align(CAT_TOKENS, simulated_lines(content))
    assert values == pytest.approx([0.2143, 9.3776, 0.2143, 0.2143, 0.2143, 9.3776], abs=1e-4)
    record = fake.stats()["records"][0]
    assert (record["kind"], record["n_examples"]) == ("simulation_ev", len(CAT_TOKENS))
    # Fewer alternatives when fewer are asked for; none without logprobs.
    few = await client.chat.completions.create(
        model="m",
        messages=messages,
        logprobs=True,
        top_logprobs=2,  # type: ignore[arg-type]
    )
    assert few.choices[0].logprobs is not None
    assert max(len(e.top_logprobs) for e in few.choices[0].logprobs.content or []) == 2
    plain = await client.chat.completions.create(model="m", messages=messages)  # type: ignore[arg-type]
    assert plain.choices[0].logprobs is None


async def test_fake_logprob_faults(fake, client) -> None:
    messages: Any = simulation_ev_messages("cats", CAT_TOKENS)
    fake.set_fault("no_logprobs")
    response = await client.chat.completions.create(
        model="m", messages=messages, logprobs=True, top_logprobs=20
    )
    assert response.choices[0].logprobs is None
    assert "\u0f17" in (response.choices[0].message.content or "")
    fake.set_fault("reject_logprobs")
    with pytest.raises(openai.BadRequestError) as info:
        await client.chat.completions.create(
            model="m", messages=messages, logprobs=True, top_logprobs=20
        )
    assert "logprobs" in str(info.value.body)
    plain = await client.chat.completions.create(model="m", messages=messages)
    assert plain.choices[0].message.content  # answered when no logprobs are asked for
    assert fake.stats()["by_status"] == {200: 2, 400: 1}


# --- the explainer prompts the fake recognises by their anchors' sentences ------------------

EXPLAINER_PROMPTS: dict[str, list[dict[str, str]]] = _fixture("explainer_prompts.json")


def test_fake_explainer_answers() -> None:
    def answer(name: str) -> str:
        messages = EXPLAINER_PROMPTS[name]
        kind = request_kind(messages)
        return Answer(kind, system_prompt(messages), last_user_message(messages)).content(None)

    assert answer("np_acts_logits_general") == "cat predicting purrs"
    assert answer("python_code") == "mentions of ("
    assert answer("oai_attention_head") == ' attends to "golf" from "course".'
    assert answer("oai_attention_head_webapp") == ' attends to "golf" from "course".'
    assert attention_answer("Activations:\nno markers") == " attends to no clear pattern."


def test_existing_kinds_are_not_misrecognised() -> None:
    records = [(["The", " cat", " sat"], [0.0, 9.0, 0.0])]
    assert request_kind(oai_token_act_pair_messages(records)) == "oai_token_act_pair"
    assert request_kind(np_max_act_messages(records)) == "np_max_act"
    assert request_kind(np_max_act_messages(records, logits=True)) == "np_max_act_logits"
    assert request_kind(recall_messages("cats", ["a cat"])) == "recall"
    for messages in EXPLAINER_PROMPTS.values():
        assert request_kind(messages) not in {"np_max_act", "np_max_act_logits", "simulation"}


@pytest.mark.parametrize("n_tokens", [100, 1000, 4096])
def test_alignment_is_bounded_on_hostile_answers(n_tokens: int) -> None:
    """Issue 17 item 1: answers of ten lines per token, repeating few texts, are aligned in
    well under a second (difflib took 76 s at 1,000 tokens, minutes at 4,096): lines past
    twice the token count (plus a margin) are not read, and long records are aligned in one
    linear pass."""
    import time

    hostile = {
        "cycles": (
            [f" t{i % 7}" for i in range(n_tokens)],
            [f" t{i % 5}" for i in range(10 * n_tokens)],
        ),
        "ab": ([" a"] * n_tokens, [" a" if i % 2 else " b" for i in range(10 * n_tokens)]),
    }
    for name, (tokens, texts) in hostile.items():
        lines = [SimulatedLine(text, 1.0) for text in texts]
        start = time.perf_counter()
        values = align(tokens, lines)
        elapsed = time.perf_counter() - start
        assert elapsed < 0.5, (name, elapsed)
        assert len(values) == len(tokens)


@pytest.mark.parametrize("n_tokens", [20, 300])
def test_alignment_of_a_nearly_right_answer_short_and_long(n_tokens: int) -> None:
    """difflib (short records) and the in-step pass (long ones) agree on a well-formed
    answer with a token skipped, a line added and a line reworded."""
    tokens = [f" w{i}" for i in range(n_tokens)]
    lines = [SimulatedLine(t, float(i % 10)) for i, t in enumerate(tokens)]
    assert align(tokens, lines) == [float(i % 10) for i in range(n_tokens)]
    skipped, extra, reworded = 3, 8, 15
    edited = [line for i, line in enumerate(lines) if i != skipped]
    edited.insert(extra, SimulatedLine(" extra", 5.0))
    edited[reworded + 1 - 1] = SimulatedLine(" something else", 7.0)
    expected: list[float | None] = [float(i % 10) for i in range(n_tokens)]
    expected[skipped] = None
    expected[reworded] = None
    assert align(tokens, edited) == expected
