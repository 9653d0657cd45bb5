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
from autointerp_grpc.errors import InvalidArgument
from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2 as pb
from autointerp_grpc.gen.params import ContrastiveExplainerParams
from autointerp_grpc.methods import explainers
from autointerp_grpc.methods.params import spec_of
from autointerp_grpc.methods.spec import ExplainContext
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
from autointerp_grpc.prompts.neuronpedia import NP_TEXTS, NP_WINDOW
from autointerp_grpc.records import (
    activating_example,
    max_over_records,
    non_activating_example,
)
from autointerp_testing.fake_llm import TEST_ONLY_MARKERS, request_kind

# isort: split
from delphi.latents import ActivatingExample as DelphiActivatingExample
from delphi.latents.samplers import normalize_activations as delphi_normalize_activations

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
    # What OpenAI's explainer sends for these records (openai/automated-interpretability,
    # neuron_explainer/explanations/explainer.py with activation_records.py): the records
    # by max activation, strongest first; each token as floor(10 * relu(v) / max) with max
    # the largest activation over the shown records (8.0).
    blocks = _blocks(oai_token_act_pair_messages([CAT, DOG])[-1]["content"])
    assert blocks == [
        [("A", 0), (" dog", 0), (" and", 0), (" a", 0), (" cat", 10)],  # negative clamps to 0
        [("The", 0), (" cat", 5), (" sat", 0), (" on", 0), (" the", 0), (" mat", 1), (".", 0)],
    ]


def test_oai_shows_the_top_records_by_max_activation():
    low = (["a", " low", " one"], [0.0, 1.0, 0.0])
    tie = (["Another", " cat"], [0.0, 4.0])  # ties with CAT (4.0): request order decides
    records = [low, QUIET, CAT, DOG, tie]
    firsts = [b[0][0] for b in _blocks(oai_token_act_pair_messages(records)[-1]["content"])]
    assert firsts == ["A", "The", "Another", "a", "x"]
    two = _blocks(oai_token_act_pair_messages(records, max_records=2)[-1]["content"])
    assert [block[0][0] for block in two] == ["A", "The"]  # not the first two sent (low, QUIET)
    # Normalised by the max over the records shown, not over the records sent.
    shown = _blocks(oai_token_act_pair_messages([DOG, low, CAT], max_records=1)[-1]["content"])
    assert shown == [[("A", 0), (" dog", 0), (" and", 0), (" a", 0), (" cat", 10)]]
    shown = _blocks(oai_token_act_pair_messages([low, CAT], max_records=1)[-1]["content"])
    assert shown[0][1] == (" cat", 10)


def test_oai_all_zero_and_max_records_and_order():
    blocks = _blocks(oai_token_act_pair_messages([QUIET, QUIET])[-1]["content"])
    assert all(level == 0 for block in blocks for _, level in block)
    assert "non-zero" not in oai_token_act_pair_messages([QUIET])[-1]["content"]
    for records in ([DOG, CAT, QUIET], [QUIET, CAT, DOG]):
        blocks = _blocks(oai_token_act_pair_messages(records, max_records=2)[-1]["content"])
        assert [block[0][0] for block in blocks] == ["A", "The"]


def test_oai_repeats_non_zero_lines_only_when_sparse():
    dense = oai_token_act_pair_messages([CAT, DOG])[-1]["content"]
    assert "non-zero" not in dense  # 3 of 12 tokens active: 25% is not sparse
    sparse = oai_token_act_pair_messages([CAT, DOG, QUIET])[-1]["content"]
    tail = sparse.split("<end>")[-1]
    assert "non-zero" in tail
    assert re.findall(r"^(.*)\t(\d+)$", tail, re.MULTILINE) == [
        (" cat", "10"),
        (" cat", "5"),
        (" mat", "1"),
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


# The records of the fixtures below, sent in this order. Ranked as Neuronpedia ranks them
# (largest value first, a repeated text once): CAT_NL (9), BANG (5), NUMBERS (3), HELLO (0.5);
# CAT_NL_AGAIN repeats CAT_NL's text and QUIET never fires.
CAT_NL_AGAIN = (["The", " cat", "\n", "sat", " on", " the", " mat"], [0, 2.0, 0, 0, 0, 0, 0])
NUMBERS = ([f" {i}" for i in range(60)], [3.0 if i == 30 else 0.0 for i in range(60)])
CAT_NL = (["The", " cat", "\n", "sat", " on", " the", " mat"], [0, 9.0, 0, 0, 0, 0, 1.0])
HELLO = (["\u2581Hello", "\u2581world"], [0.5, 0.5])  # a tie: the first max counts
BANG = (["x", " y", "!"], [0.0, 0.0, 5.0])  # the max token is the last one
NP_RECORDS = [CAT_NL_AGAIN, NUMBERS, QUIET, CAT_NL, HELLO, BANG]
NUMBERS_TEXT = (  # 24 tokens either side of " 30", joined as they are
    " 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31 32 33 34 35"
    " 36 37 38 39 40 41 42 43 44 45 46 47 48 49 50 51 52 53 54"
)

# What Neuronpedia's webapp sends as the last user message for NP_RECORDS
# (hijohnnylin/neuronpedia apps/webapp/lib/external/autointerp-explainer-acts.ts and
# autointerp-explainer-logits.ts, with the records chosen as in
# apps/webapp/app/api/explanation/generate/route.tsx; "▁" read as a space as in
# hijohnnylin/automated-interpretability's MaxActivationExplainer).
NP_MAX_ACT_USER = (
    "\n\nNeuron 4\n\n"
    "<MAX_ACTIVATING_TOKENS>\n\n"
    "cat\n!\n30\nHello\n\n"
    "</MAX_ACTIVATING_TOKENS>\n\n\n"
    "<TOP_ACTIVATING_TEXTS>\n\n"
    "The cat  sat on the mat\n"  # a newline token is written as two spaces
    "x y!\n"
    f"{NUMBERS_TEXT}\n"
    " Hello world\n\n"
    "</TOP_ACTIVATING_TEXTS>\n\n\n"
    "Explanation of neuron 4 behavior: "
)
NP_MAX_ACT_LOGITS_USER = (
    "\n\nNeuron 5\n\n"
    "<TOKENS_AFTER_MAX_ACTIVATING_TOKEN>\n\n"
    "\n\n31\nworld\n\n"  # after " cat" comes "\n" (empty once removed); "!" is last
    "</TOKENS_AFTER_MAX_ACTIVATING_TOKEN>\n\n\n"
    "<MAX_ACTIVATING_TOKENS>\n\n"
    "cat\n!\n30\nHello\n\n"
    "</MAX_ACTIVATING_TOKENS>\n\n\n"
    "<TOP_POSITIVE_LOGITS>\n\n"
    "purr\nmeow\nhiss\n\n"
    "</TOP_POSITIVE_LOGITS>\n\n\n"
    "<TOP_ACTIVATING_TEXTS>\n\n"
    "The cat  sat on the mat\n"
    "x y!\n"
    f"{NUMBERS_TEXT}\n"
    " Hello world\n\n"
    "</TOP_ACTIVATING_TEXTS>\n\n\n"
    "Explanation of neuron 5 behavior: "
)
NP_LOGITS = ["\u2581purr", " meow\n", "hiss"]

_NP_TURN_RE = re.compile(
    r"\n\nNeuron (\d+)\n\n(?:<(\w+)>\n\n.*?\n\n</\2>\n\n\n)+Explanation of neuron \1 behavior: ",
    re.DOTALL,
)


def _np_lists(content: str) -> dict[str, list[str]]:
    """The tagged lists of a Neuronpedia-style user message, line by line."""
    return {
        tag: body.split("\n")
        for tag, body in re.findall(r"<(\w+)>\n\n(.*?)\n\n</\1>", content, re.DOTALL)
    }


def test_np_max_act_user_message_is_neuronpedias():
    messages = np_max_act_messages(NP_RECORDS)
    assert messages[-1] == {"role": "user", "content": NP_MAX_ACT_USER}


def test_np_max_act_logits_user_message_is_neuronpedias():
    messages = np_max_act_messages(NP_RECORDS, logits=True, top_positive_logits=NP_LOGITS)
    assert messages[-1] == {"role": "user", "content": NP_MAX_ACT_LOGITS_USER}
    # No logits given: the list is there, empty (as the Python library sends it).
    empty = np_max_act_messages(NP_RECORDS, logits=True)[-1]["content"]
    assert "<TOP_POSITIVE_LOGITS>\n\n\n\n</TOP_POSITIVE_LOGITS>" in empty


@pytest.mark.parametrize(
    ("logits", "tags", "examples"),
    [
        (False, ["MAX_ACTIVATING_TOKENS", "TOP_ACTIVATING_TEXTS"], 3),
        (
            True,
            [
                "TOKENS_AFTER_MAX_ACTIVATING_TOKEN",
                "MAX_ACTIVATING_TOKENS",
                "TOP_POSITIVE_LOGITS",
                "TOP_ACTIVATING_TEXTS",
            ],
            4,
        ),
    ],
)
def test_np_messages_system_prompt_and_few_shot_shape(logits, tags, examples):
    messages = np_max_act_messages(NP_RECORDS, logits=logits, top_positive_logits=NP_LOGITS)
    _shape(messages)
    assert messages == np_max_act_messages(NP_RECORDS, logits=logits, top_positive_logits=NP_LOGITS)
    # system, one user/assistant turn per few-shot example, then this latent.
    assert [m["role"] for m in messages] == [
        "system",
        *["user", "assistant"] * examples,
        "user",
    ]
    system = messages[0]["content"]
    assert "1-6 words" in system
    assert all(f"- {tag}:" in system for tag in tags)
    methods = re.findall(r"^Method (\d+): Look at (\w+)", system, re.MULTILINE)
    assert methods == [(str(n), tag) for n, tag in enumerate(tags, start=1)] or (
        # np_max_act_logits: methods in the anchor's order, max tokens first
        methods
        == [
            ("1", "MAX_ACTIVATING_TOKENS"),
            ("2", "TOKENS_AFTER_MAX_ACTIVATING_TOKEN"),
            ("3", "TOP_POSITIVE_LOGITS"),
            ("4", "TOP_ACTIVATING_TEXTS"),
        ]
    )
    assert ("say [the pattern]" in system) is logits
    assert "Explanation: " in system
    for number, (user, assistant) in enumerate(
        zip(messages[1:-1:2], messages[2:-1:2], strict=True), start=1
    ):
        match = _NP_TURN_RE.fullmatch(user["content"])
        assert match is not None and int(match.group(1)) == number
        assert list(_np_lists(user["content"])) == tags
        lists = _np_lists(user["content"])
        assert len(lists["MAX_ACTIVATING_TOKENS"]) == len(lists["TOP_ACTIVATING_TEXTS"]) == 2
        answer = assistant["content"].split("\n")
        assert answer[0].startswith("Method 1 ")
        assert answer[-1].startswith("Explanation: ")
        label = parse_short_explanation(assistant["content"])
        assert label == answer[-1].removeprefix("Explanation: ")
        assert 1 <= len(label.split()) <= 6
    assert _NP_TURN_RE.fullmatch(messages[-1]["content"]).group(1) == str(examples + 1)
    assert list(_np_lists(messages[-1]["content"])) == tags


def test_np_window_and_list_lengths():
    assert NP_WINDOW == 24 and NP_TEXTS == 10
    texts = _np_lists(np_max_act_messages([NUMBERS], window=2)[-1]["content"])
    assert texts["TOP_ACTIVATING_TEXTS"] == [" 28 29 30 31 32"]
    texts = _np_lists(np_max_act_messages([NUMBERS], window=0)[-1]["content"])
    assert texts["TOP_ACTIVATING_TEXTS"] == [" 30"]
    early = ([f" {i}" for i in range(10)], [1.0 if i == 1 else 0.0 for i in range(10)])
    texts = _np_lists(np_max_act_messages([early], window=3)[-1]["content"])
    assert texts["TOP_ACTIVATING_TEXTS"] == [" 0 1 2 3 4"]  # clipped at the start
    lists = _np_lists(
        np_max_act_messages(NP_RECORDS, top_texts=2, top_tokens=1, logits=True, next_tokens=1)[-1][
            "content"
        ]
    )
    assert lists["TOP_ACTIVATING_TEXTS"] == ["The cat  sat on the mat", "x y!"]
    assert lists["MAX_ACTIVATING_TOKENS"] == ["cat"]
    assert lists["TOKENS_AFTER_MAX_ACTIVATING_TOKEN"] == [""]
    # Eleven records: Neuronpedia's ten strongest are shown.
    many = [([f"w{i}", " x"], [float(i), 0.0]) for i in range(11)]
    lists = _np_lists(np_max_act_messages(many)[-1]["content"])
    assert lists["MAX_ACTIVATING_TOKENS"] == [f"w{i}" for i in range(10, 0, -1)]


def test_np_explainer_uses_neuronpedias_window():
    # The proto's NpMaxActParams.window default is Neuronpedia's 24.
    field = pb.NpMaxActParams.DESCRIPTOR.fields_by_name["window"]
    assert json.loads(spec_of(field).default_value) == NP_WINDOW == 24
    assert explainers.NpMaxActExplainer(None).window == NP_WINDOW


def test_np_rejects_bad_input():
    with pytest.raises(ValueError, match="positive activation"):
        np_max_act_messages([QUIET, ([], [])])
    with pytest.raises(ValueError, match="top_tokens"):
        np_max_act_messages([CAT], top_tokens=0)


@pytest.mark.parametrize(
    ("answer", "label"),
    [
        # Answers in the anchor's shape: the methods, then "Explanation: ...".
        (
            "Method 1 succeeds: All MAX_ACTIVATING_TOKENS (banana, kiwi) are fruits.\n"
            "Explanation: fruits",
            "fruits",
        ),
        (
            "Method 1 fails: (is, Room) differ.\nMethod 2 succeeds: all 7.\nExplanation: say 7.",
            "say 7",
        ),
        ("Method 2 succeeds: school texts.\nexplanation: education", "education"),
        ("Explanation: cities (Method 3)", "cities"),
        ("Explanation: sounds \u2014 Method 4, the texts are about music", "sounds"),
        ("Explanation: time words. Method 3 \u2013 temporal", "time words"),
        ("Explanation: crystal (used Method 1)", "crystal"),
        ("Explanation of neuron 4 behavior: weekdays", "weekdays"),
        ("Method 1 succeeds.\nExplanation:\n  weekdays\n", "weekdays"),
        ("Explanation: first\nExplanation: second", "second"),
        # Bare labels.
        ("cat mentions", "cat mentions"),
        ("Explanation: feline words.", "feline words"),
        ('  "cats"  \nand more text', "cats"),
        ("**Label:** dates in French", "dates in French"),
        ("[EXPLANATION]: closing brackets", "closing brackets"),
        ("<think>long musing here</think>\nAnswer - plural nouns", "plural nouns"),
        ("<think>Explanation: wrong</think>Explanation: right", "right"),
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
        # Reasoning but no explanation (Neuronpedia drops these too).
        ("Method 1 fails: the tokens differ.\nMethod 2 succeeds: football.", "no explanation"),
        ("Explanation: Method 2", "no explanation"),
        ("Explanation: see method 2 above for why", "names a method"),
    ],
)
def test_parse_short_explanation_rejects(answer, reason):
    with pytest.raises(ValueError, match=reason):
        parse_short_explanation(answer)


# ------------------------------------------------------------------------------------------
# Normalisation (records.py) and the contrastive explainer's examples
# ------------------------------------------------------------------------------------------


def _wire(tokens: list[str], values: list[float]) -> pb.Activation:
    return pb.Activation(tokens=tokens, values=values)


def test_normalised_by_the_latent_max_as_delphi_does():
    strong = _wire(["a", " b", " c"], [0.0, 10.0, 2.5])
    weak = _wire(["d", " e", " f"], [0.0, 1.0, -3.0])
    peak = max_over_records([strong, weak])
    assert peak == 10.0
    ex = activating_example(weak, latent_max=peak)
    assert ex.normalized_activations.tolist() == [0.0, 1.0, 0.0]  # 1.0 of 10.0 shows as 1
    assert activating_example(strong, latent_max=peak).normalized_activations.tolist() == [
        0.0,
        10.0,
        3.0,  # ceil(2.5)
    ]
    # delphi's own rule (delphi/latents/samplers.py normalize_activations) agrees.
    for record in (strong, weak, _wire(["g", " h"], [0.04, 9.99])):
        theirs = DelphiActivatingExample(
            tokens=torch.zeros(len(record.values)),
            activations=torch.tensor(list(record.values), dtype=torch.float64),
        )
        delphi_normalize_activations([theirs], peak)
        ours = activating_example(record, latent_max=peak).normalized_activations
        assert ours.tolist() == theirs.normalized_activations.tolist()
    # Non-activating records share the latent's scale.
    negative = non_activating_example(_wire(["x", " y"], [0.5, 0.0]), latent_max=peak)
    assert negative.normalized_activations.tolist() == [1.0, 0.0]
    # A latent that never fires normalises to zeros.
    quiet = activating_example(_wire(["q"], [0.0]), latent_max=0.0)
    assert quiet.normalized_activations.tolist() == [0.0]


def test_without_a_latent_max_each_record_keeps_its_own_scale():
    weak = _wire(["d", " e", " f"], [0.0, 1.0, -3.0])
    assert activating_example(weak).normalized_activations.tolist() == [0.0, 10.0, 0.0]
    assert non_activating_example(weak).normalized_activations.tolist() == [0.0, 10.0, 0.0]


def test_default_explainer_shows_activations_on_the_latent_scale():
    strong = _wire(["The", " cat"], [0.0, 10.0])
    weak = _wire(["A", " dog"], [0.0, 1.0])
    peak = max_over_records([strong, weak])
    examples = [activating_example(r, latent_max=peak) for r in (strong, weak)]
    prompt = DefaultExplainer(None, activations=True)._build_prompt(examples)[-1]["content"]
    assert '(" cat" : 10)' in prompt
    assert '(" dog" : 1)' in prompt


def _contrastive_prompt(activating: list, non_activating: list) -> str:
    ctx = ExplainContext(
        params=ContrastiveExplainerParams(
            threshold=0.3, show_activations=False, max_examples=15, max_non_activating=5
        ),
        client=None,
        activating=activating,
        non_activating=non_activating,
    )
    explainer, record = explainers._build_contrastive(ctx)
    # What ContrastiveExplainer.__call__ puts in its prompt.
    shown = (
        record.train[: explainer.max_examples] + record.not_active[: explainer.max_non_activating]
    )
    return explainer._build_prompt(shown)[-1]["content"]


def test_contrastive_lists_only_firing_records_as_activating():
    records = [
        _wire(["The", " cat", " sat"], [0.0, 4.0, 0.0]),
        _wire(["all", " zero"], [0.0, 0.0]),
        _wire(["A", " dog"], [0.0, 2.0]),
        _wire(["below", " zero"], [-1.0, 0.0]),
    ]
    peak = max_over_records(records)
    activating = [activating_example(r, latent_max=peak) for r in records]
    negatives = [non_activating_example(_wire(["the", " sky"], [0.0, 0.0]), latent_max=peak)]
    prompt = _contrastive_prompt(activating, negatives)
    firing = prompt.split("ACTIVATING EXAMPLES:")[1].split("NON-ACTIVATING EXAMPLES:")[0]
    assert re.findall(r"^Example \d+:", firing, re.MULTILINE) == ["Example 1:", "Example 2:"]
    assert "cat" in firing and "dog" in firing
    assert "zero" not in prompt  # left out, not moved to the non-activating side
    assert "sky" in prompt.split("NON-ACTIVATING EXAMPLES:")[1]
    with pytest.raises(InvalidArgument, match="positive activation"):
        _contrastive_prompt(activating[1:2], negatives)
    with pytest.raises(InvalidArgument, match="non_activating is required"):
        _contrastive_prompt(activating, [])


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


@pytest.mark.parametrize(
    "answer",
    ["I'm not sure what you mean.", "Sorry, I cannot help with that", "  I don't know", "As an AI"],
)
def test_a_refusal_is_never_an_explanation(answer: str) -> None:
    """A provider answering garbage ("I'm not sure what you mean") is unparsable for the
    formats whose whole answer is the explanation: retried, then an error, never stored."""
    from autointerp_grpc.prompts.np_general import parse_np_general_answer
    from autointerp_grpc.prompts.oai_attention import parse_attention_head_answer

    for parse in (parse_np_general_answer, parse_attention_head_answer, parse_oai_answer):
        with pytest.raises(ValueError):
            parse(answer)
    assert parse_np_general_answer("idioms and sayings") == "idioms and sayings"
    assert parse_oai_answer("images of cats") == "images of cats"
