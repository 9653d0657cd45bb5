"""The fake LLM on the service's other prompts: our own formats (autointerp_grpc.prompts) and
delphi's simulation and intruder prompts.

The server tests start a real server on a free port and talk to it with the real
``openai.AsyncOpenAI`` client, using delphi's own prompt builders and parsers and those of
autointerp_grpc.prompts.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import openai
import pytest
from fake_llm_samples import (
    DETECTION,
    EXPLANATION,
    MODEL,
    TEXTS,
    chat,
    examples_block,
    explain_messages,
    scorer_for,
)

import autointerp_grpc.delphi_compat  # noqa: F401  (registers the vLLM shim before delphi)

# isort: split
from delphi.clients.client import Response
from delphi.explainers.explainer import Explainer
from delphi.scorers.classifier.intruder import IntruderScorer, IntruderSentence
from delphi.scorers.classifier.prompts import detection_prompt
from delphi.scorers.simulator.simulation.simulator import NeuronSimulator

from autointerp_grpc.prompts import (
    RECALL_DECOYS,
    RECALL_RESPONSE_FORMAT,
    np_max_act_messages,
    oai_token_act_pair_messages,
    parse_oai_answer,
    parse_recall_answer,
    parse_short_explanation,
    recall_messages,
    strip_reasoning,
)
from autointerp_testing.fake_llm import (
    LONG_ANSWER,
    SIGNATURES,
    THINK_TRACE,
    intruder_answer,
    np_answer,
    oai_answer,
    recall_answer,
    request_kind,
    simulation_answer,
)

# ------------------------------------------------------------------------------------------
# The service's other prompts: our formats (autointerp_grpc.prompts) and delphi's simulation
# and intruder prompts
# ------------------------------------------------------------------------------------------

CAT_RECORDS = [
    (["The", " cat", " sat", " on", " the", " mat"], [0.0, 9.0, 0.0, 0.0, 0.0, 1.0]),
    (["My", " cats", " purr", " and", " a", " cat", " sleeps"], [0.0, 5.0, 0.0, 0.0, 0.0, 8.0, 0]),
    (["Dogs", " bark", " at", " the", " cat", "!"], [0.0, 0.0, 0.0, 0.0, 7.0, 0.0]),
]
RECALL_TEXTS = ["The cat sat on the mat.", "Two CATS slept.", *RECALL_DECOYS[:3]]
RECALL_EXPECTED = [True, True, False, False, False]
SIM_TOKENS = ["The", " cat", " sat", " on", " two", " Cats", "\n", ""]
SIM_EXPECTED = [0.0, 10.0, 0.0, 0.0, 0.0, 10.0, 0.0, 0.0]
INTRUDER_EXAMPLES = [
    " you<< guys>> support me",
    " thank you<< guys>> so much",
    " the<< weather>> is<< nice>> today",  # shares no span with the others
    "<< Guys>>, listen<< up>>",
]


class _DelphiClient:
    """The smallest client delphi's scorers accept: ``generate(prompt) -> Response``."""

    def __init__(self, oai: openai.AsyncOpenAI, model: str = MODEL) -> None:
        self.oai, self.model = oai, model

    async def generate(self, prompt: list[dict], **kwargs) -> Response:
        response = await self.oai.chat.completions.create(
            model=self.model, messages=prompt, max_tokens=kwargs.get("max_tokens")
        )
        return Response(text=strip_reasoning(response.choices[0].message.content or ""))


def _simulator(explanation: str = 'Mentions of "cat"') -> NeuronSimulator:
    return NeuronSimulator(None, explanation, use_logprobs=False)


def _intruder(examples: list[str] = INTRUDER_EXAMPLES) -> tuple[IntruderScorer, IntruderSentence]:
    sample = IntruderSentence(
        examples=examples,
        intruder_index=2,
        chosen_quantile=0,
        activations=[],
        tokens=[],
        intruder_distance=0.0,
    )
    return IntruderScorer(None, n_examples_shown=len(examples)), sample


def test_request_kind_recognises_the_other_prompts():
    sim = _simulator()._make_json_prompt(SIM_TOKENS)
    scorer, sample = _intruder()
    assert request_kind(oai_token_act_pair_messages(CAT_RECORDS)) == "oai_token_act_pair"
    assert request_kind(np_max_act_messages(CAT_RECORDS)) == "np_max_act"
    assert request_kind(np_max_act_messages(CAT_RECORDS, logits=True)) == "np_max_act_logits"
    assert request_kind(recall_messages("cats", RECALL_TEXTS)) == "recall"
    assert request_kind(sim) == "simulation"
    assert request_kind(scorer._build_prompt(sample)) == "intruder"
    assert request_kind([{"role": "user", "content": '{"to_find": 1}'}]) == "other"


def test_our_formats_are_recognised_by_content_not_markers():
    built = {
        "oai_token_act_pair": oai_token_act_pair_messages(CAT_RECORDS),
        "np_max_act": np_max_act_messages(CAT_RECORDS),
        "np_max_act_logits": np_max_act_messages(CAT_RECORDS, logits=True),
        "recall": recall_messages("cats", RECALL_TEXTS),
    }
    assert sorted(built) == sorted(signature.kind for signature in SIGNATURES)
    for kind, messages in built.items():
        system, *rest = messages
        assert request_kind(messages) == kind
        # Without the system prompt's sentences, or the user message's structure, it is
        # just another chat.
        assert request_kind(rest) == "other"
        reworded = {"role": "system", "content": "You are a helpful assistant."}
        assert request_kind([reworded, *rest]) == "other"
        assert request_kind([system, *rest[:-1], {"role": "user", "content": "Hi"}]) == "other"
    # A marker line on its own names nothing.
    marker_only = [
        {"role": "system", "content": "FORMAT: recall_judge"},
        {"role": "user", "content": "Explanation: cats\n\nTexts:\nText 1: a cat"},
    ]
    assert request_kind(marker_only) == "other"


def test_oai_and_np_answers():
    assert oai_answer(oai_token_act_pair_messages(CAT_RECORDS)[-1]["content"]) == (
        'the tokens "cat", "cats"'  # "mat" (1 of 9) is below half the top activation
    )
    assert oai_answer("<start>\n dog\t3\nx\t0\n<end>") == 'the token "dog"'
    assert oai_answer("no lines") == "no clear pattern"
    assert np_answer(np_max_act_messages(CAT_RECORDS)[-1]["content"]) == "mentions of cat"
    logits = np_max_act_messages(CAT_RECORDS, logits=True, top_positive_logits=[" purrs", "x"])
    assert np_answer(logits[-1]["content"], logits=True) == "cat predicting purrs"
    assert np_answer(logits[-1]["content"]) == "mentions of cat"
    assert np_answer("nothing marked") == "no clear pattern"


def test_recall_simulation_and_intruder_answers():
    assert recall_answer(recall_messages('Mentions of "cat"', RECALL_TEXTS)[-1]["content"]) == (
        RECALL_EXPECTED
    )
    assert recall_answer("not a recall prompt") is None
    sim = json.loads(simulation_answer(_simulator()._make_json_prompt(SIM_TOKENS)[-1]["content"]))
    assert [e["token"] for e in sim["activations"]] == SIM_TOKENS
    assert [e["activation"] for e in sim["activations"]] == SIM_EXPECTED
    assert simulation_answer("[1, 2]") is None
    scorer, sample = _intruder()
    assert intruder_answer(scorer._build_prompt(sample)[-1]["content"]) == 2
    tie = "Examples:\n\nExample 0:<<a>>\nExample 1:<<b>>\nExample 2:<<a>><<b>>\n"
    assert intruder_answer(tie) == 0  # 0 and 1 share one span each: lowest index wins
    assert intruder_answer("Examples:\n\n") == 0


async def test_oai_format_end_to_end(fake, client):
    response = await chat(client, oai_token_act_pair_messages(CAT_RECORDS))
    assert parse_oai_answer(response.choices[0].message.content) == 'the tokens "cat", "cats"'


async def test_np_formats_end_to_end(fake, client):
    for logits in (False, True):
        messages = np_max_act_messages(CAT_RECORDS, logits=logits, top_positive_logits=[" purr"])
        response = await chat(client, messages)
        label = parse_short_explanation(response.choices[0].message.content)
        assert "cat" in label.split()
        assert len(label.split()) <= 6
    stats = fake.stats()
    assert stats["by_kind"] == {"np_max_act": 1, "np_max_act_logits": 1}


async def test_recall_end_to_end_with_response_format(fake, client):
    messages = recall_messages('Mentions of "cat"', RECALL_TEXTS)
    response = await chat(client, messages, response_format=RECALL_RESPONSE_FORMAT)
    content = response.choices[0].message.content
    assert parse_recall_answer(content, len(RECALL_TEXTS)) == RECALL_EXPECTED
    # Other or unknown response formats change nothing.
    for response_format in ({"type": "json_object"}, {"type": "no-such-format", "x": 1}):
        again = await chat(client, messages, response_format=response_format)
        assert again.choices[0].message.content == content
    assert [(r["kind"], r["n_examples"]) for r in fake.stats()["records"]] == [
        ("recall", len(RECALL_TEXTS))
    ] * 3


async def test_simulation_end_to_end_through_delphi(fake, client):
    simulator = _simulator()
    simulator.client = _DelphiClient(client)
    simulation = await simulator.simulate(SIM_TOKENS)  # delphi's own JSON round trip and parser
    assert simulation.expected_activations == SIM_EXPECTED
    response = await chat(client, simulator._make_json_prompt(SIM_TOKENS))
    parsed = simulator._parse_json_response(
        Response(text=response.choices[0].message.content), SIM_TOKENS
    )
    assert parsed == SIM_EXPECTED
    assert [(r["kind"], r["n_examples"]) for r in fake.stats()["records"]] == [
        ("simulation", len(SIM_TOKENS))
    ] * 2


async def test_intruder_end_to_end_through_delphi(fake, client):
    scorer, sample = _intruder()
    response = await chat(client, scorer._build_prompt(sample))
    assert scorer._parse(response.choices[0].message.content) == ("", 2)
    scorer.client = _DelphiClient(client)
    result = await scorer._generate(sample)
    assert (result.prediction, result.correct) == (2, True)
    assert [(r["kind"], r["n_examples"]) for r in fake.stats()["records"]] == [
        ("intruder", len(INTRUDER_EXAMPLES))
    ] * 2


async def test_answering_faults_on_the_other_prompts(fake, client):
    fake.set_fault("wrong_length")
    oai = await chat(client, oai_token_act_pair_messages(CAT_RECORDS))
    with pytest.raises(ValueError):
        parse_oai_answer(oai.choices[0].message.content)
    np = await chat(client, np_max_act_messages(CAT_RECORDS))
    assert np.choices[0].message.content == LONG_ANSWER
    with pytest.raises(ValueError, match="words"):
        parse_short_explanation(np.choices[0].message.content)
    recall = await chat(client, recall_messages("cat", RECALL_TEXTS))
    with pytest.raises(ValueError, match="expected 5 answers, got 4"):
        parse_recall_answer(recall.choices[0].message.content, len(RECALL_TEXTS))
    simulator = _simulator()
    sim = await chat(client, simulator._make_json_prompt(SIM_TOKENS))
    assert len(json.loads(sim.choices[0].message.content)["activations"]) == len(SIM_TOKENS) - 1
    text = Response(text=sim.choices[0].message.content)
    assert simulator._parse_json_response(text, SIM_TOKENS) == [0.0] * len(SIM_TOKENS)
    scorer, sample = _intruder()
    intruder = await chat(client, scorer._build_prompt(sample))
    with pytest.raises(ValueError, match="out of range"):
        scorer._parse(intruder.choices[0].message.content)
    fake.set_fault("garbage")
    recall = await chat(client, recall_messages("cat", RECALL_TEXTS))
    with pytest.raises(ValueError, match="not JSON"):
        parse_recall_answer(recall.choices[0].message.content, len(RECALL_TEXTS))


async def test_usage_reports_cost(fake, client):
    response = await chat(client, oai_token_act_pair_messages(CAT_RECORDS))
    usage = response.usage
    assert usage.cost == pytest.approx(1e-6 * usage.total_tokens)
    assert usage.model_dump()["cost"] > 0


async def test_think_fault_hides_a_wrong_answer_in_the_trace(fake, client):
    fake.set_fault("think")
    explain = (await chat(client, explain_messages())).choices[0].message.content
    assert explain.startswith("<think>\n")
    # Parsed naively, delphi's parser picks up the trace; the final answer is the right one.
    assert Explainer.parse_explanation(SimpleNamespace(), explain).startswith(
        "wrong trace explanation"
    )
    final = strip_reasoning(explain)
    assert Explainer.parse_explanation(SimpleNamespace(), final) == EXPLANATION

    detection = await chat(client, detection_prompt.prompt(examples_block(TEXTS), EXPLANATION))
    content = detection.choices[0].message.content
    with pytest.raises(ValueError):  # delphi's first "[...]" is the trace's "[EXPLANATION]"
        scorer_for(len(TEXTS))._parse(content)
    assert scorer_for(len(TEXTS))._parse(strip_reasoning(content))[0] == [
        bool(x) for x in DETECTION
    ]

    recall = await chat(client, recall_messages("cat", RECALL_TEXTS))
    assert parse_recall_answer(recall.choices[0].message.content, 5) == RECALL_EXPECTED
    oai = await chat(client, oai_token_act_pair_messages(CAT_RECORDS))
    assert "wrong" not in parse_oai_answer(oai.choices[0].message.content)
    # The model directive does the same for one request.
    fake.set_fault(None)
    np = await chat(client, np_max_act_messages(CAT_RECORDS), model=f"{MODEL}@fault=think")
    assert THINK_TRACE in np.choices[0].message.content
    assert parse_short_explanation(np.choices[0].message.content) == "mentions of cat"
    assert [r["fault"] for r in fake.stats()["records"]] == ["think"] * 5


async def test_reasoning_directive_returns_the_trace_beside_a_clean_answer(fake, client):
    response = await chat(client, explain_messages(), model=f"{MODEL}@reasoning=1")
    message = response.choices[0].message
    assert message.content == f"[EXPLANATION]: {EXPLANATION}"
    assert message.reasoning == THINK_TRACE
    assert response.model == MODEL
    # It takes precedence over the think fault; @reasoning=0 leaves the field out.
    both = await chat(client, explain_messages(), model="m@fault=think@reasoning=true")
    assert both.choices[0].message.content == f"[EXPLANATION]: {EXPLANATION}"
    plain = await chat(client, explain_messages(), model="m@reasoning=0")
    assert getattr(plain.choices[0].message, "reasoning", None) is None
    assert "reasoning" not in plain.choices[0].message.model_dump(exclude_none=True)
    with pytest.raises(openai.BadRequestError):
        await chat(client, explain_messages(), model="m@reasoning=maybe")
    # Reasoning tokens are billed as completion tokens.
    assert response.usage.completion_tokens > plain.usage.completion_tokens
