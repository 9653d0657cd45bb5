"""The oai_attention_head explainer: the prompt against what Neuronpedia's own code sends
(fixtures made by running the anchors: tests/fixtures/anchors/oai_attention/README.md), the
marking of "from" and "to" tokens, record selection, the answer parser, the delphi explainer
around them and the validation of attention records."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from autointerp_grpc.delphi_compat import Response
from autointerp_grpc.errors import InvalidArgument, UpstreamBadResponse
from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2 as pb
from autointerp_grpc.gen.params import OaiAttentionHeadParams
from autointerp_grpc.handlers.explain import DELPHI_PARSE_FAILURE, run_explainer
from autointerp_grpc.methods.attention import build_oai_attention_head
from autointerp_grpc.methods.params import spec_of
from autointerp_grpc.methods.spec import ExplainContext
from autointerp_grpc.prompts.oai_attention import (
    ATTENTION_RECORDS,
    attention_to_index,
    clean_token_as_webapp,
    format_attention_record,
    oai_attention_head_messages,
    parse_attention_head_answer,
)
from autointerp_grpc.validation import Limits, check_attention

ANCHORS = Path(__file__).parents[1] / "fixtures" / "anchors" / "oai_attention"


def _load(name: str) -> dict:
    return json.loads((ANCHORS / name).read_text(encoding="utf-8"))


RECORDS = _load("records.json")["cases"]
WEBAPP = _load("webapp.json")
PYTHON = _load("python.json")


def _record(tokens: list[str], from_index: int, weights: list[float]) -> pb.AttentionRecord:
    return pb.AttentionRecord(tokens=tokens, from_index=from_index, weights=weights)


def _records(case: str) -> list[pb.AttentionRecord]:
    return [pb.AttentionRecord(**record) for record in RECORDS[case]]


def _final(records: list[pb.AttentionRecord], **kwargs) -> str:
    return oai_attention_head_messages(records, **kwargs)[-1]["content"]


def _shown(records: list[pb.AttentionRecord], **kwargs) -> list[str]:
    """The record lines of the final user message."""
    body = _final(records, **kwargs).split("Activations:\n", 1)[1].rsplit("\nExplanation", 1)[0]
    return body.split("\n<|sequence_separator|>\n")


# ------------------------------------------------------------------------------------------
# (a) The prompt is what the anchors send
# ------------------------------------------------------------------------------------------


def test_the_fixtures_were_made_by_the_anchors():
    assert WEBAPP["anchor"]["repository"] == "hijohnnylin/neuronpedia"
    assert len(WEBAPP["anchor"]["commit"]) == 40
    assert PYTHON["anchor"] == {
        "package": "automated-interpretability",
        "version": "0.0.24",
        "files": ["neuron_explainer/explanations/explainer.py"],
    }


def test_prompt_is_what_neuronpedias_webapp_sends():
    """Selection (duplicates, a tie across the cut, the top 10), token cleaning, markers,
    system prompt and few-shot examples: byte for byte the webapp's own output."""
    assert oai_attention_head_messages(_records("selection")) == WEBAPP["cases"]["selection"]


def test_self_attention_is_marked_as_the_prompt_says_not_as_the_webapp_writes_it():
    ours = oai_attention_head_messages(_records("self_attention"))
    webapp = WEBAPP["cases"]["self_attention"]
    assert ours[:-1] == webapp[:-1]
    # The webapp writes a token that attends to itself as **tok**; we (and the Python
    # library) as [[**tok**]], as the system prompt and few-shot example 4 describe it.
    ours_final = ours[-1]["content"]
    assert "[[**When**]]" in ours_final
    assert "[[** C**]]" in ours_final
    as_webapp = ours_final.replace("[[**When**]]", "**When**").replace("[[** C**]]", "** C**")
    assert as_webapp == webapp[-1]["content"]


def test_final_message_is_the_python_librarys():
    ours = oai_attention_head_messages(_records("self_attention"))
    python = PYTHON["cases"]["self_attention"]
    assert ours[-1] == python[-1]
    # Few-shot examples 2-4 and all four answers are the same in both anchors; the system
    # prompt and example 1 are written differently (see the module docstring).
    assert ours[3:9] == python[3:9]
    assert ours[2] == python[2]
    assert ours[0] != python[0]
    assert ours[1] != python[1]


def test_message_shape():
    messages = oai_attention_head_messages(_records("self_attention"))
    assert [m["role"] for m in messages] == ["system"] + ["user", "assistant"] * 4 + ["user"]
    final = messages[-1]["content"]
    assert final.startswith("\n\nAttention head 5\nActivations:\n")
    assert final.endswith("\nExplanation of attention head 5 behavior: this attention head")
    assert messages == oai_attention_head_messages(_records("self_attention"))


# ------------------------------------------------------------------------------------------
# (b) Marking and token cleaning
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tokens", "from_index", "weights", "line"),
    [
        # from == to, at the first token, in the middle and at the last token
        (["A", " B", " C"], 0, [1.0, 0.0, 0.0], "[[**A**]] B C"),
        (["A", " B", " C"], 1, [0.2, 0.5, 0.0], "A[[** B**]] C"),
        (["A", " B", " C"], 2, [0.1, 0.2, 0.7], "A B[[** C**]]"),
        # "to" at index 0, "from" later; adjacent tokens
        (["A", " B", " C"], 2, [0.6, 0.1, 0.2], "**A** B[[ C]]"),
        (["A", " B", " C"], 1, [0.6, 0.1, 0.0], "**A**[[ B]] C"),
        # the first of equal weights; negative attributions never win
        (["A", " B", " C", " D"], 3, [-1.0, 0.5, 0.5, 0.1], "A** B** C[[ D]]"),
    ],
)
def test_marking(tokens, from_index, weights, line):
    assert _shown([_record(tokens, from_index, weights)]) == [line]


def test_to_is_looked_for_at_or_before_from_only():
    assert attention_to_index([0.1, 0.3, 0.9], 1) == 1
    assert attention_to_index([0.4, 0.3, 0.0], 2) == 0
    assert format_attention_record(["a", "b", "c"], 2, 0) == "**a**b[[c]]"


@pytest.mark.parametrize(
    ("token", "shown"),
    [
        ("\u0120cat", " cat"),  # Ġ
        ("\u010a", "\u21b5"),  # Ċ: the webapp writes ↵, not a newline
        ("<0x0A>", "\u21b5"),
        ("\u0109x", "\tx"),  # ĉ
        ("\u2581word", "\u2004word"),  # ▁: the webapp writes a three-per-em space
        ("It\u00e2\u0122\u013bs", "It\u2019s"),
        ("\u00e2\u0122\u013eq\u00e2\u0122\u013f", "\u201cq\u201d"),
        ("a\u00e2\u0122\u0136b\u00e2\u0122\u0135c", "a\u2014b\u2013c"),
        ("\u00e2\u0122\u013a\u00e2\u0122\u012d", "\u2018 "),
        ("\n", "\n"),  # a raw newline stays
        ("plain <b>", "plain <b>"),
        ("\u0120\u0120\u010a\u010a", "  \u21b5\u21b5"),
    ],
)
def test_tokens_are_cleaned_as_the_webapp_cleans_them(token, shown):
    assert clean_token_as_webapp(token) == shown


def test_cleaning_applies_inside_the_markers():
    record = _record(["\u0120from", "\u0109to", "\u0120x"], 2, [0.1, 0.9, 0.0])
    assert _shown([record]) == [" from**\tto**[[ x]]"]


# ------------------------------------------------------------------------------------------
# (c) Record selection
# ------------------------------------------------------------------------------------------

WEAK = _record(["weak", " one"], 1, [0.1, 0.0])
MID = _record(["mid", " one"], 1, [0.5, 0.0])
STRONG = _record(["strong", " one"], 1, [0.0, 0.9])


def test_strongest_first():
    assert _shown([WEAK, STRONG, MID]) == [
        "strong[[** one**]]",
        "**mid**[[ one]]",
        "**weak**[[ one]]",
    ]


def test_ties_keep_request_order():
    first = _record(["first"], 0, [0.5])
    second = _record(["second"], 0, [0.5])
    assert _shown([first, second]) == ["[[**first**]]", "[[**second**]]"]
    assert _shown([second, first]) == ["[[**second**]]", "[[**first**]]"]


def test_duplicates_are_shown_once_the_strongest_copy():
    weaker = _record(["The cat", " sat"], 1, [0.2, 0.0])
    stronger = _record(["The", " cat sat"], 1, [0.8, 0.0])  # same text, other tokens
    for records in ([weaker, stronger, MID], [stronger, weaker, MID], [MID, weaker, stronger]):
        assert _shown(records) == ["**The**[[ cat sat]]", "**mid**[[ one]]"]
    assert _shown([MID, MID, MID]) == ["**mid**[[ one]]"]


def test_max_records():
    many = [_record([f"t{i}"], 0, [1.0 - i / 100]) for i in range(30)]
    assert len(_shown(many)) == ATTENTION_RECORDS == 10
    assert _shown(many, max_records=3) == ["[[**t0**]]", "[[**t1**]]", "[[**t2**]]"]
    assert len(_shown(many, max_records=100)) == 30
    with pytest.raises(ValueError, match="max_records"):
        oai_attention_head_messages(many, max_records=0)


def test_the_default_is_the_protos():
    field = pb.OaiAttentionHeadParams.DESCRIPTOR.fields_by_name["max_records"]
    assert json.loads(spec_of(field).default_value) == ATTENTION_RECORDS


@pytest.mark.parametrize(
    ("records", "message"),
    [
        ([], "no attention records"),
        ([_record([], 0, [])], "no tokens"),
        ([_record(["a", "b"], 0, [1.0])], "one weight per token"),
        ([_record(["a"], 1, [1.0])], "outside its tokens"),
        ([_record(["a"], -1, [1.0])], "outside its tokens"),
        ([_record(["a"], 0, [math.nan])], "non-finite"),
        ([_record(["a", "b"], 1, [0.0, -1.0])], "no positive weight"),
    ],
)
def test_builder_rejects_unusable_records(records, message):
    with pytest.raises(ValueError, match=message):
        oai_attention_head_messages(records)


# ------------------------------------------------------------------------------------------
# (d) The answer
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "explanation"),
    [
        # the completion as the few-shot answers (and the webapp's model) write it
        (
            ' attends to the token "golf" from golf-related tokens.',
            'attends to the token "golf" from golf-related tokens',
        ),
        ("attends to the previous token", "attends to the previous token"),
        # the full sentence, as the system prompt's "takes the form" invites
        ("This attention head attends to commas from names.", "attends to commas from names"),
        ('"This attention head attends to X from Y."', "attends to X from Y"),
        ("**This attention head** attends to X.", "attends to X"),
        ("this attention head: attends to X", "attends to X"),
        ("The head attends to X", "attends to X"),
        (
            "Explanation of attention head 5 behavior: this attention head attends to X.",
            "attends to X",
        ),
        ("Explanation:\nattends to X from Y", "attends to X from Y"),
        ("<think>golf? no, commas</think> attends to commas.", "attends to commas"),
        ("attends to X.\n\nThe head seems to...", "attends to X"),
        (
            "This attention head's focus is the first token.",
            "This attention head's focus is the first token",
        ),
    ],
)
def test_parse_attention_head_answer(answer, explanation):
    assert parse_attention_head_answer(answer) == explanation


@pytest.mark.parametrize(
    "answer",
    [
        "",
        "   \n  ",
        ".",
        '""',
        "this attention head",
        "This attention head.",
        "Explanation of attention head 5 behavior: this attention head",
        "<think>it attends to commas",
        "<think>attends to commas</think>",
    ],
)
def test_parse_rejects_answers_without_an_explanation(answer):
    with pytest.raises(ValueError, match="no explanation"):
        parse_attention_head_answer(answer)


class ScriptedClient:
    """Answers each request with the next scripted text and keeps the prompts it was sent."""

    def __init__(self, *answers: str) -> None:
        self.answers = list(answers)
        self.prompts: list[list[dict]] = []

    async def generate(self, prompt: list[dict], **kwargs) -> Response:
        self.prompts.append(prompt)
        return Response(text=self.answers.pop(0))


def _context(
    client: ScriptedClient, records, max_records: int = 10
) -> ExplainContext[OaiAttentionHeadParams]:
    return ExplainContext(
        params=OaiAttentionHeadParams(max_records=max_records),
        client=client,
        activating=[],
        non_activating=[],
        attention=list(records),
    )


async def test_the_explainer_sends_the_prompt_and_parses_the_answer():
    client = ScriptedClient(" attends to names from pronouns.")
    explainer, record = build_oai_attention_head(_context(client, _records("selection"), 4))
    assert record.train == []
    assert await run_explainer(explainer, record) == "attends to names from pronouns"
    assert client.prompts == [oai_attention_head_messages(_records("selection"), max_records=4)]


async def test_an_unparsable_answer_is_retried_once_then_fails():
    client = ScriptedClient("", "This attention head attends to X.")
    explainer, record = build_oai_attention_head(_context(client, _records("self_attention")))
    assert (await explainer(record)).explanation == DELPHI_PARSE_FAILURE
    assert await run_explainer(explainer, record) == "attends to X"

    client = ScriptedClient("", "<think>", "")
    explainer, record = build_oai_attention_head(_context(client, _records("self_attention")))
    with pytest.raises(UpstreamBadResponse):
        await run_explainer(explainer, record)
    assert len(client.answers) == 1  # two attempts, no more


def test_the_builder_refuses_missing_or_unusable_records():
    with pytest.raises(InvalidArgument, match="attention is required"):
        build_oai_attention_head(_context(ScriptedClient(), []))
    with pytest.raises(InvalidArgument, match="no positive weight"):
        build_oai_attention_head(_context(ScriptedClient(), [_record(["a"], 0, [0.0])]))


# ------------------------------------------------------------------------------------------
# (e) Validation of attention records
# ------------------------------------------------------------------------------------------

LIMITS = Limits(max_records=3, max_tokens_per_record=5, max_record_chars=12, max_request_chars=20)
GOOD = _record(["ab", "cd", "ef"], 2, [0.5, 0.0, 0.25])


def test_valid_records_pass_and_count_their_characters():
    assert check_attention([GOOD], LIMITS) == 6
    assert check_attention([GOOD, GOOD, GOOD], LIMITS) == 18
    # negative attributions at or before fromIndex, and -0.0 after it, are fine
    assert check_attention([_record(["a", "b", "c"], 1, [-1.0, 0.5, -0.0])], LIMITS) == 3
    for case in RECORDS.values():
        check_attention([pb.AttentionRecord(**r) for r in case], Limits())


@pytest.mark.parametrize(
    ("records", "message"),
    [
        ([], r"^attention must hold at least one record$"),
        ([GOOD] * 4, r"^attention holds 4 records; the limit is 3$"),
        ([_record([], 0, [])], r"^attention\[0\]\.tokens must not be empty$"),
        (
            [GOOD, _record(["a"] * 6, 0, [1.0] + [0.0] * 5)],
            r"^attention\[1\]\.tokens holds 6 tokens; the limit is 5 per record$",
        ),
        (
            [_record(["a", "b"], 0, [1.0])],
            r"^attention\[0\] must have one weight per token \(2 tokens, 1 weights\)$",
        ),
        (
            [_record(["a"], 0, [1.0, 0.0])],
            r"^attention\[0\] must have one weight per token \(1 tokens, 2 weights\)$",
        ),
        (
            [_record(["a", "b"], -1, [1.0, 0.0])],
            r"^attention\[0\]\.fromIndex must be a token index, 0 to 1$",
        ),
        (
            [_record(["a", "b"], 2, [1.0, 0.0])],
            r"^attention\[0\]\.fromIndex must be a token index, 0 to 1$",
        ),
        (
            [_record(["abcdefg", "hijklmn"], 1, [1.0, 0.0])],
            r"^attention\[0\]\.tokens hold 14 characters; the limit is 12 per record$",
        ),
        (
            [_record(["abcdefghij"], 0, [1.0]), _record(["abcdefghij"], 0, [1.0]), GOOD],
            r"^the records hold more than 20 characters in all .*counting up to attention\[2\]$",
        ),
        (
            [_record(["a", "b"], 1, [math.nan, 1.0])],
            r"^attention\[0\]\.weights\[0\] must be a finite number$",
        ),
        (
            [_record(["a", "b"], 1, [1.0, math.inf])],
            r"^attention\[0\]\.weights\[1\] must be a finite number$",
        ),
        (
            [_record(["a", "b"], 1, [1.0, -math.inf])],
            r"^attention\[0\]\.weights\[1\] must be a finite number$",
        ),
        (
            [_record(["a", "b", "c"], 0, [1.0, 0.0, 0.5])],
            r"^attention\[0\]\.weights\[2\] must be 0: attention only looks back, to tokens "
            r"at or before fromIndex \(0\)$",
        ),
        (
            [_record(["a", "b", "c"], 2, [0.0, 0.0, 0.0])],
            r"^attention\[0\]\.weights must hold a positive weight at or before fromIndex",
        ),
        (
            [GOOD, _record(["a", "b"], 1, [-0.5, -0.1])],
            r"^attention\[1\]\.weights must hold a positive weight at or before fromIndex",
        ),
    ],
)
def test_invalid_records_are_refused_with_a_clear_message(records, message):
    with pytest.raises(InvalidArgument, match=message):
        check_attention(records, LIMITS)
