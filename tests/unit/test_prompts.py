"""Tests for the prompt builders and answer parsers in autointerp_grpc.prompts, and for what
every prompt the service sends leaves out: lines that exist only for a test double."""

from __future__ import annotations

import json
import re

import pytest
import torch

from autointerp_grpc.delphi_compat import (
    ActivatingExample,
    ContrastiveExplainer,
    DefaultExplainer,
    DetectionScorer,
    FuzzingScorer,
    IntruderScorer,
    IntruderSentence,
    NeuronSimulator,
    NonActivatingExample,
)
from autointerp_grpc.prompts import (
    EXPLANATION_PREFIX,
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
from autointerp_grpc.testing.fake_llm import TEST_ONLY_MARKERS, request_kind

CAT = (["The", " cat", " sat", " on", " the", " mat", "."], [0.0, 4.0, 0.0, 0.0, 0.0, 1.0, 0.0])
DOG = (["A", " dog", " and", " a", " cat"], [0.0, -2.0, 0.0, 0.0, 8.0])
QUIET = (["x"] * 20, [0.0] * 20)


def _blocks(content: str) -> list[list[tuple[str, int]]]:
    """The <start>/<end> blocks of an OpenAI-style user message as (token, level) pairs."""
    blocks = re.findall(r"<start>\n(.*?)\n<end>", content, re.DOTALL)
    return [
        [(line.rsplit("\t", 1)[0], int(line.rsplit("\t", 1)[1])) for line in block.split("\n")]
        for block in blocks
    ]


def _shape(messages: list[dict]) -> None:
    assert messages[0]["role"] == "system"
    assert messages[-1]["role"] == "user"
    assert all(set(m) == {"role", "content"} for m in messages)
    assert all(isinstance(m["content"], str) and m["content"] for m in messages)


# ------------------------------------------------------------------------------------------
# OpenAI token<TAB>activation format
# ------------------------------------------------------------------------------------------


def test_oai_messages_shape_and_determinism():
    messages = oai_token_act_pair_messages([CAT, DOG])
    _shape(messages)
    assert messages[0]["content"].startswith("You are helping to interpret a single neuron")
    assert EXPLANATION_PREFIX in messages[-1]["content"]
    assert messages == oai_token_act_pair_messages([CAT, DOG])
    # The few-shot example is its own user/assistant turn; our records are the last message.
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]


def test_oai_normalises_by_max_over_all_shown_records():
    blocks = _blocks(oai_token_act_pair_messages([CAT, DOG])[-1]["content"])
    assert blocks == [
        [("The", 0), (" cat", 5), (" sat", 0), (" on", 0), (" the", 0), (" mat", 1), (".", 0)],
        [("A", 0), (" dog", 0), (" and", 0), (" a", 0), (" cat", 10)],  # negative clamps to 0
    ]


def test_oai_all_zero_and_max_records_and_order():
    blocks = _blocks(oai_token_act_pair_messages([QUIET, QUIET])[-1]["content"])
    assert all(level == 0 for block in blocks for _, level in block)
    assert "non-zero" not in oai_token_act_pair_messages([QUIET])[-1]["content"]
    blocks = _blocks(oai_token_act_pair_messages([DOG, CAT, QUIET], max_records=2)[-1]["content"])
    assert [block[0][0] for block in blocks] == ["A", "The"]


def test_oai_repeats_non_zero_lines_only_when_sparse():
    dense = oai_token_act_pair_messages([CAT, DOG])[-1]["content"]
    assert "non-zero" not in dense  # 3 of 12 tokens active: 25% is not sparse
    sparse = oai_token_act_pair_messages([CAT, DOG, QUIET])[-1]["content"]
    tail = sparse.split("<end>")[-1]
    assert "non-zero" in tail
    assert re.findall(r"^(.*)\t(\d+)$", tail, re.MULTILINE) == [
        (" cat", "5"),
        (" mat", "1"),
        (" cat", "10"),
    ]
    assert "second time" in oai_token_act_pair_messages([CAT])[0]["content"]


def test_oai_escapes_layout_characters_in_tokens():
    content = oai_token_act_pair_messages([(["a\tb", "\n", "c"], [1.0, 0.0, 2.0])])[-1]["content"]
    assert _blocks(content) == [[("a\\tb", 5), ("\\n", 0), ("c", 10)]]


def test_oai_rejects_bad_input():
    with pytest.raises(ValueError, match="no records"):
        oai_token_act_pair_messages([])
    with pytest.raises(ValueError, match="2 tokens but 1"):
        oai_token_act_pair_messages([(["a", "b"], [1.0])])
    with pytest.raises(ValueError, match="non-finite"):
        oai_token_act_pair_messages([(["a"], [float("nan")])])


@pytest.mark.parametrize(
    ("answer", "phrase"),
    [
        ("the word cat", "the word cat"),
        ("  \"the word 'cat'\".  ", "the word 'cat'"),
        ("The main thing this neuron does is find the word cat.", "the word cat"),
        ('"The main thing this neuron does is find: cats."', "cats"),
        ("the main thing this neuron does is find\n\nnames of weekdays\nmore", "names of weekdays"),
        ("<think>it finds dogs</think>\nmentions of cats", "mentions of cats"),
        ("**cats and kittens**", "cats and kittens"),
        # Only the whole restatement is removed, never part of a word.
        (
            "the main thing this neuron does is finding cats",
            "the main thing this neuron does is finding cats",
        ),
    ],
)
def test_parse_oai_answer(answer, phrase):
    assert parse_oai_answer(answer) == phrase


@pytest.mark.parametrize(
    "answer",
    ["", "   \n ", '""', "The main thing this neuron does is find.", "<think>cats"],
)
def test_parse_oai_answer_rejects_empty(answer):
    with pytest.raises(ValueError, match="no explanation"):
        parse_oai_answer(answer)


# ------------------------------------------------------------------------------------------
# Neuronpedia max-activating format
# ------------------------------------------------------------------------------------------


def _record(words: list[str], peak: int, value: float = 5.0) -> tuple[list[str], list[float]]:
    values = [0.0] * len(words)
    values[peak] = value
    return words, values


LONG = [f" w{i}" for i in range(30)]


def test_np_messages_shape_and_determinism():
    records = [CAT, DOG]
    messages = np_max_act_messages(records)
    _shape(messages)
    assert len(messages) == 2
    assert messages[0]["content"].startswith("You name features of a language model.")
    assert "1 to 6 words" in messages[0]["content"]
    assert "pushes the model" not in messages[0]["content"]
    assert messages == np_max_act_messages(records)
    logits = np_max_act_messages(records, logits=True, top_positive_logits=["dogs"])
    assert logits[0]["content"].startswith(messages[0]["content"].split("\n\n")[0])
    assert "pushes the model" in logits[0]["content"]


def test_np_top_tokens_rank_by_activation_and_stay_distinguishable():
    records = [
        _record(["a", " cat", "b"], 1, 3.0),
        _record(["a", " dog", "b"], 1, 9.0),
        _record(["a", "cat", "b"], 1, 2.0),  # strips like " cat": both shown quoted
        _record(["a", "\n", "b"], 1, 1.0),  # whitespace-only stays visible
        _record(["a", " dog", "b"], 1, 1.0),  # repeat: counted once
        _record(["a", " never", "b"], 1, 0.0),  # no positive activation: left out
    ]
    content = np_max_act_messages(records, top_tokens=4)[-1]["content"]
    section = content.split("\n\n")[0].splitlines()
    assert section[1:] == ["- dog", '- " cat"', '- "cat"', "- \\n"]
    content = np_max_act_messages(records, top_tokens=2)[-1]["content"]
    assert content.split("\n\n")[0].splitlines()[1:] == ["- dog", "- cat"]
    assert "never" not in content


def test_np_windows_are_marked_ranked_and_clipped():
    records = [_record(LONG, 15, 2.0), _record(LONG, 1, 7.0), _record(["\n", " x"], 0, 1.0)]
    content = np_max_act_messages(records, window=3, top_texts=3)[-1]["content"]
    texts = content.split("\n\n")[1].splitlines()[1:]
    assert texts == [
        "1. w0 [[w1]] w2 w3 w4",  # clipped at the start, strongest first
        "2. w12 w13 w14 [[w15]] w16 w17 w18",
        "3. [[\\n]] x",
    ]
    content = np_max_act_messages(records, window=0, top_texts=1)[-1]["content"]
    assert content.split("\n\n")[1].splitlines()[1:] == ["1. [[w1]]"]
    assert "right after" not in content


def test_np_logits_sections():
    records = [
        _record(["I", " love", " cats", "!"], 2, 9.0),
        _record(["two", " cats", " sleep"], 1, 5.0),
        _record(["no", " cats"], 1, 4.0),  # nothing after the peak
        _record(["my", " cats", "!"], 1, 3.0),
    ]
    messages = np_max_act_messages(
        records, logits=True, top_positive_logits=[" purr", "purr", " meow", " purr"]
    )
    assert "pushes the model" in messages[0]["content"]
    sections = messages[-1]["content"].split("\n\n")
    assert len(sections) == 4
    assert sections[2].splitlines()[1:] == ["- !", "- sleep"]
    assert sections[3].splitlines()[1:] == ['- " purr"', '- "purr"', "- meow"]
    one = np_max_act_messages(records, logits=True, next_tokens=1)[-1]["content"].split("\n\n")
    assert len(one) == 3  # no promoted tokens given: no section (d)
    assert one[2].splitlines()[1:] == ["- !"]
    alone = np_max_act_messages([records[2]], logits=True)[-1]["content"]
    assert alone.split("\n\n")[2].splitlines()[1:] == ["(none)"]


def test_np_rejects_bad_input():
    with pytest.raises(ValueError, match="positive activation"):
        np_max_act_messages([QUIET, ([], [])])
    with pytest.raises(ValueError, match="top_tokens"):
        np_max_act_messages([CAT], top_tokens=0)


@pytest.mark.parametrize(
    ("answer", "label"),
    [
        ("cat mentions", "cat mentions"),
        ("Explanation: feline words.", "feline words"),
        ('  "cats"  \nand more text', "cats"),
        ("**Label:** dates in French", "dates in French"),
        ("[EXPLANATION]: closing brackets", "closing brackets"),
        ("<think>long musing here</think>\nAnswer - plural nouns", "plural nouns"),
        ("one two three four five six seven eight nine ten eleven twelve", None),
    ],
)
def test_parse_short_explanation(answer, label):
    expected = label if label is not None else answer
    assert parse_short_explanation(answer) == expected


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        ("", "no explanation"),
        ("Explanation:", "no explanation"),
        ("'.'", "no explanation"),
        ("<think>\nall reasoning, no answer", "no explanation"),
        (" ".join(["word"] * 13), "13 words"),
    ],
)
def test_parse_short_explanation_rejects(answer, reason):
    with pytest.raises(ValueError, match=reason):
        parse_short_explanation(answer)


# ------------------------------------------------------------------------------------------
# Recall judge
# ------------------------------------------------------------------------------------------


def test_recall_decoys_are_fixed_varied_sentences():
    assert 6 <= len(RECALL_DECOYS) <= 10
    assert len(set(RECALL_DECOYS)) == len(RECALL_DECOYS)
    assert all(d.endswith(".") and "\n" not in d and len(d.split()) >= 6 for d in RECALL_DECOYS)


def test_recall_messages():
    texts = ["The cat sat.", "multi\nline   text", RECALL_DECOYS[0]]
    messages = recall_messages("Mentions\nof cats", texts)
    _shape(messages)
    assert len(messages) == 2
    assert messages[0]["content"].startswith("You check explanations of features")
    assert '{"answers": [' in messages[0]["content"]
    user = messages[-1]["content"]
    assert user.startswith("Explanation: Mentions of cats\n")
    assert re.findall(r"^Text (\d+): (.*)$", user, re.MULTILINE) == [
        ("1", "The cat sat."),
        ("2", "multi line text"),
        ("3", RECALL_DECOYS[0]),
    ]
    assert "exactly 3 booleans" in user
    assert messages == recall_messages("Mentions\nof cats", texts)
    with pytest.raises(ValueError, match="no texts"):
        recall_messages("cats", [])
    with pytest.raises(ValueError, match="explanation is empty"):
        recall_messages("  ", ["x"])


def test_recall_response_format_is_a_json_schema():
    assert RECALL_RESPONSE_FORMAT["type"] == "json_schema"
    schema = RECALL_RESPONSE_FORMAT["json_schema"]["schema"]
    assert schema["required"] == ["answers"]
    assert schema["properties"]["answers"]["items"] == {"type": "boolean"}
    json.dumps(RECALL_RESPONSE_FORMAT)  # serialisable as a request field


@pytest.mark.parametrize(
    "answer",
    [
        '{"answers": [true, false, true]}',
        '```json\n{"answers": [true, false, true]}\n```',
        'Here you go:\n```\n{"answers":[true,false,true]}\n```',
        '<think>{"answers": [false]}</think>{"answers": [true, false, true]}',
        "[true, false, true]",
    ],
)
def test_parse_recall_answer(answer):
    assert parse_recall_answer(answer, 3) == [True, False, True]


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        ("yes, no, yes", "not JSON"),
        ('{"answer": [true, false, true]}', 'no "answers" list'),
        ('{"answers": "true"}', 'no "answers" list'),
        ('{"answers": [1, 0, 1]}', "not all booleans"),
        ('{"answers": [true, false]}', "expected 3 answers, got 2"),
        ("", "not JSON"),
    ],
)
def test_parse_recall_answer_rejects(answer, reason):
    with pytest.raises(ValueError, match=reason):
        parse_recall_answer(answer, 3)


# ------------------------------------------------------------------------------------------
# Reasoning
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "answer"),
    [
        ("plain answer", "plain answer"),
        ("<think>a\nb</think>\n\nfinal", "final"),
        ("<THINKING>x</THINKING> final <think>y</think> too", "final  too"),
        ("<think>never closed\n[EXPLANATION]: x", ""),
        ("reasoning without its opening tag</think>final", "final"),
        ("<think>one</think><think>two</think>[1,0]", "[1,0]"),
    ],
)
def test_strip_reasoning(text, answer):
    assert strip_reasoning(text) == answer


# ------------------------------------------------------------------------------------------
# Every prompt the service sends: nothing in it exists only for a test double
# ------------------------------------------------------------------------------------------


def _activating(tokens: list[str], values: list[float]) -> ActivatingExample:
    activations = torch.tensor(values)
    return ActivatingExample(
        tokens=torch.arange(len(tokens)),
        activations=activations,
        normalized_activations=torch.floor(10 * activations / activations.max()),
        str_tokens=tokens,
    )


def _service_prompts() -> dict[str, tuple[str, list[dict]]]:
    """``name -> (the fake's request kind, messages)`` for every prompt format the service
    sends: autointerp's own and delphi's, built with the service's builders and parameters."""
    cat, dog = _activating(*CAT), _activating(*DOG)
    quiet = NonActivatingExample(
        tokens=torch.arange(3), activations=torch.zeros(3), str_tokens=["a", " b", " c"]
    )
    highlighted = "\n".join(
        f"Example {i}: {text}" for i, text in enumerate(["The<< cat>> sat", "A dog ran"])
    )
    explanation = 'Mentions of "cat"'
    sample = IntruderSentence(
        examples=[" my<< cat>>", " a<< cat>>", " the<< sky>>"],
        intruder_index=2,
        chosen_quantile=0,
        activations=[],
        tokens=[],
        intruder_distance=0.0,
    )
    simulator = NeuronSimulator(None, explanation, use_logprobs=False)
    built = {
        "oai_token_act_pair": ("oai_token_act_pair", oai_token_act_pair_messages([CAT, DOG])),
        "np_max_act": ("np_max_act", np_max_act_messages([CAT, DOG])),
        "np_max_act_logits": (
            "np_max_act_logits",
            np_max_act_messages([CAT, DOG], logits=True, top_positive_logits=[" purr"]),
        ),
        "recall_judge": ("recall", recall_messages(explanation, ["The cat sat.", *RECALL_DECOYS])),
        "delphi_contrastive": (
            "explain",
            ContrastiveExplainer(None, activations=True)._build_prompt([cat, dog, quiet]),
        ),
        "delphi_detection": ("detection", DetectionScorer(None).prompt(highlighted, explanation)),
        "delphi_fuzz": ("fuzz", FuzzingScorer(None).prompt(highlighted, explanation)),
        "delphi_intruder": ("intruder", IntruderScorer(None)._build_prompt(sample)),
        "delphi_simulation": ("simulation", simulator._make_json_prompt(list(CAT[0]))),
    }
    for activations in (False, True):
        for cot in (False, True):
            explainer = DefaultExplainer(None, activations=activations, cot=cot)
            name = f"delphi_default{'_activations' * activations}{'_cot' * cot}"
            built[name] = ("explain", explainer._build_prompt([cat, dog]))
    return built


SERVICE_PROMPTS = _service_prompts()


@pytest.mark.parametrize("name", sorted(SERVICE_PROMPTS))
def test_no_prompt_line_exists_only_for_a_test_double(name):
    _, messages = SERVICE_PROMPTS[name]
    for message in messages:
        content = message["content"]
        assert not re.search(r"^\s*FORMAT:", content, re.MULTILINE), content
        assert [marker for marker in TEST_ONLY_MARKERS if marker in content] == []


@pytest.mark.parametrize("name", sorted(SERVICE_PROMPTS))
def test_the_fake_llm_recognises_every_prompt_by_its_content(name):
    kind, messages = SERVICE_PROMPTS[name]
    assert request_kind(messages) == kind
