"""Neuronpedia's np_acts-logits-general and python-code explainers: the messages we send equal
the anchor's (fixtures made by running it, tests/fixtures/anchors/np_general/), and the edges
of the format and of answer parsing."""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from autointerp_grpc.delphi_compat import Explainer, LatentRecord, Response
from autointerp_grpc.errors import InvalidArgument, UpstreamBadResponse
from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2 as pb
from autointerp_grpc.gen.params import NpActsLogitsGeneralParams
from autointerp_grpc.handlers.explain import (
    DELPHI_PARSE_FAILURE,
    check_explain_records,
    run_explainer,
)
from autointerp_grpc.handlers.lookup import ResolvedExplainer
from autointerp_grpc.methods.np_general import (
    NP_GENERAL_EXPLAINERS,
    NpActsLogitsGeneralExplainer,
    PythonCodeExplainer,
)
from autointerp_grpc.methods.params import spec_of
from autointerp_grpc.methods.spec import ExplainContext, ExplainerSpec, Needs
from autointerp_grpc.prompts.np_general import (
    MAX_GENERAL_EXPLANATION_WORDS,
    NP_GENERAL_TEXTS,
    NP_GENERAL_WINDOW,
    PYTHON_CODE_WINDOW,
    np_acts_logits_general_messages,
    parse_np_general_answer,
    python_code_messages,
    replace_html_anomalies,
)
from autointerp_grpc.records import activating_example
from autointerp_grpc.validation import Limits

FIXTURES = Path(__file__).parents[1] / "fixtures" / "anchors" / "np_general"
PROMPTS = json.loads((FIXTURES / "prompts.json").read_text())["explainers"]
ANSWERS = json.loads((FIXTURES / "answers.json").read_text())["explainers"]

REQUEST = "\n\n\nExplain the neuron above with a word or phrase, not a complete sentence."


def _run_spec(
    spec: ExplainerSpec[Any], client: ScriptedClient, logits: list[str], **params: int
) -> tuple[Explainer, LatentRecord]:
    """The spec's ``build`` on the test records, with ``params`` in the spec's own
    parameters class (both methods here take ``top_texts`` and ``window``)."""
    return spec.build(_ctx(client, logits, spec.params_type(**params)))


def _build(name: str, records: list, logits: list[str], **params: int) -> list[dict[str, str]]:
    if name == "python_code":
        return python_code_messages(records, **params)
    return np_acts_logits_general_messages(records, logits, **params)


def _lists(content: str) -> dict[str, list[str]]:
    """The tagged lists of a user message, by tag, one item a line."""
    return {
        tag: body.split("\n")
        for tag, body in re.findall(r"<([A-Z_]+)>\n\n(.*?)\n\n</\1>", content, re.DOTALL)
    }


# ------------------------------------------------------------------------------------------
# The anchor's messages
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "case"),
    [(name, case) for name, cases in PROMPTS.items() for case in cases],
    ids=[f"{name}-{case['name']}" for name, cases in PROMPTS.items() for case in cases],
)
def test_messages_equal_the_anchors(name: str, case: dict):
    records = [(r["tokens"], r["values"]) for r in case["records"]]
    built = _build(
        name,
        records,
        case["top_positive_logits"],
        top_texts=case["top_texts"],
        window=case["window"],
    )
    assert built == case["messages"]


def test_the_fixtures_cover_the_defaults_and_the_anchor_samples_at_1():
    for name, window in (("np_acts_logits_general", 24), ("python_code", 96)):
        defaults = next(c for c in PROMPTS[name] if c["name"] == "defaults")
        assert (defaults["top_texts"], defaults["window"]) == (10, window)
        records = [(r["tokens"], r["values"]) for r in defaults["records"]]
        assert _build(name, records, defaults["top_positive_logits"]) == defaults["messages"]
        # Neuronpedia's batch samples one answer at temperature 1 with 2000 tokens; the
        # service leaves sampling to the request's LLM options.
        assert defaults["settings"] == {
            "max_tokens": 2000,
            "temperature": 1.0,
            "top_p": 1.0,
            "n": 1,
        }


def test_proto_defaults_are_the_anchors():
    for message, window in ((pb.NpActsLogitsGeneralParams, 24), (pb.PythonCodeParams, 96)):
        fields = message.DESCRIPTOR.fields_by_name
        assert json.loads(spec_of(fields["top_texts"]).default_value) == NP_GENERAL_TEXTS == 10
        assert json.loads(spec_of(fields["window"]).default_value) == window
    assert (NP_GENERAL_WINDOW, PYTHON_CODE_WINDOW) == (24, 96)


# ------------------------------------------------------------------------------------------
# The format's edges
# ------------------------------------------------------------------------------------------

FIRST = (["For", " x", " in", " y", ":"], [6.0, 0.0, 0.0, 0.0, 0.0])
LAST = (["print", "(", "x", ")", "\n"], [0.0, 0.0, 1.0, 0.0, 5.0])
TIE = (["while", " True", ":"], [4.0, 0.0, 4.0])


def test_window_at_the_edges_of_a_record():
    general = _lists(np_acts_logits_general_messages([FIRST, LAST], ["a"], window=2)[1]["content"])
    assert general["TOP_ACTIVATING_TEXTS"] == ["For x in", "x)  "]  # clamped; "\n" as 2 spaces
    assert general["MAX_ACTIVATING_TOKENS"] == ["For", ""]  # the "\n" max token is emptied
    assert general["TOKENS_AFTER_MAX_ACTIVATING_TOKEN"] == ["x", ""]  # none after the last
    code = _lists(python_code_messages([LAST, FIRST], window=2)[1]["content"])
    assert code["TOP_ACTIVATING_TEXTS"] == ["\u2605For\u2605 x in", "x)\u2605  \u2605"]


def test_window_zero_and_wider_than_the_record():
    code = _lists(python_code_messages([FIRST], window=0)[1]["content"])
    assert code["TOP_ACTIVATING_TEXTS"] == ["\u2605For\u2605"]
    code = _lists(python_code_messages([FIRST], window=100)[1]["content"])
    assert code["TOP_ACTIVATING_TEXTS"] == ["\u2605For\u2605 x in y:"]
    with pytest.raises(ValueError, match="window"):
        python_code_messages([FIRST], window=-1)


def test_ties_first_peak_in_a_record_and_request_order_between_records():
    other = (["if", " x", ":"], [4.0, 0.0, 0.0])
    code = _lists(python_code_messages([TIE, other])[1]["content"])
    assert code["TOP_ACTIVATING_TEXTS"] == ["\u2605while\u2605 True:", "\u2605if\u2605 x:"]
    code = _lists(python_code_messages([other, TIE])[1]["content"])
    assert code["MAX_ACTIVATING_TOKENS"] == ["if", "while"]


def test_top_texts_strongest_first_and_repeats_once():
    records = [LAST, FIRST, TIE, FIRST]
    lists = _lists(np_acts_logits_general_messages(records, ["a"], top_texts=2)[1]["content"])
    assert lists["MAX_ACTIVATING_TOKENS"] == ["For", ""]
    lists = _lists(np_acts_logits_general_messages(records, ["a"])[1]["content"])
    assert lists["MAX_ACTIVATING_TOKENS"] == ["For", "", "while"]
    with pytest.raises(ValueError, match="top_texts"):
        python_code_messages(records, top_texts=0)


def test_sentencepiece_space_and_html_anomalies():
    record = (
        ["<bos>", "\u2581The", "\u2581bank", "\u0120rates", "\u010a", "go"],
        [0, 0, 3.0, 1, 0, 0],
    )
    logits = ["\u2581banks", "\u0120Bank", "\u010a", " loans\n", "<|endoftext|>"]
    lists = _lists(np_acts_logits_general_messages([record], logits)[1]["content"])
    assert lists["TOP_ACTIVATING_TEXTS"] == ["  The bank rates  go"]
    assert lists["MAX_ACTIVATING_TOKENS"] == ["bank"]
    assert lists["TOKENS_AFTER_MAX_ACTIVATING_TOKEN"] == ["rates"]
    assert lists["TOP_POSITIVE_LOGITS"] == ["banks", "Bank", "", "loans", ""]
    assert replace_html_anomalies("\u00e2\u0122\u0136 \u00e2\u0122\u013bs") == "\u2014 's"


def test_logits_shown_by_the_general_format_only():
    general = np_acts_logits_general_messages([FIRST], [" when", " while"])
    assert _lists(general[1]["content"])["TOP_POSITIVE_LOGITS"] == ["when", "while"]
    assert (
        "<TOP_POSITIVE_LOGITS>\n\n\n\n</TOP_POSITIVE_LOGITS>"
        in (np_acts_logits_general_messages([FIRST], [])[1]["content"])
    )
    code = python_code_messages([FIRST])
    assert "TOP_POSITIVE_LOGITS" not in code[1]["content"]
    assert list(_lists(code[1]["content"])) == [
        "MAX_ACTIVATING_TOKENS",
        "TOKENS_AFTER_MAX_ACTIVATING_TOKEN",
        "TOP_ACTIVATING_TEXTS",
    ]


def test_message_layout():
    for messages in (
        np_acts_logits_general_messages([FIRST], ["a"]),
        python_code_messages([FIRST]),
    ):
        assert [m["role"] for m in messages] == ["system", "user"]
        assert messages[1]["content"].startswith("\n\n<MAX_ACTIVATING_TOKENS>\n\n")
        assert messages[1]["content"].endswith("</TOP_ACTIVATING_TEXTS>" + REQUEST)
    assert (
        "</MAX_ACTIVATING_TOKENS>\n\n\n<TOKENS_AFTER"
        in (np_acts_logits_general_messages([FIRST], ["a"])[1]["content"])
    )
    assert (
        "</MAX_ACTIVATING_TOKENS>\n\n<TOKENS_AFTER" in python_code_messages([FIRST])[1]["content"]
    )


def test_records_without_a_positive_value_are_left_out():
    quiet = (["x", "y"], [0.0, -1.0])
    lists = _lists(python_code_messages([quiet, FIRST, ([], [])])[1]["content"])
    assert lists["MAX_ACTIVATING_TOKENS"] == ["For"]
    with pytest.raises(ValueError, match="positive activation"):
        python_code_messages([quiet])
    with pytest.raises(ValueError, match="activations"):
        python_code_messages([(["a", "b"], [1.0])])


# ------------------------------------------------------------------------------------------
# Answers
# ------------------------------------------------------------------------------------------

# Where we differ from the anchor on purpose: the batch deletes line breaks, we join the lines.
JOINED = {
    "financial\ninstitutions": "financial institutions",
    "first line.\r\nsecond line": "first line. second line",
}


@pytest.mark.parametrize(
    ("name", "row"),
    [(name, row) for name, rows in ANSWERS.items() for row in rows],
    ids=[f"{name}-{i}" for name, rows in ANSWERS.items() for i, _ in enumerate(rows)],
)
def test_answers_read_as_the_anchor_reads_them(name: str, row: dict):
    answer = row["answer"] or ""
    if row["gives_up"]:
        # Neuronpedia's batch puts the top token in the place of these; we report no explanation.
        with pytest.raises(ValueError, match=r"no explanation|gives up"):
            parse_np_general_answer(answer)
    else:
        assert parse_np_general_answer(answer) == JOINED.get(answer, row["explanation"])


def test_answers_reasoning_and_length():
    assert parse_np_general_answer("<think>Maybe loops.</think>\nfor loops.") == "for loops"
    with pytest.raises(ValueError, match="no explanation"):
        parse_np_general_answer("<think>still thinking about the loops")
    with pytest.raises(ValueError, match="no explanation"):
        parse_np_general_answer("  \n\t ")
    longest = " ".join(["word"] * MAX_GENERAL_EXPLANATION_WORDS)
    assert parse_np_general_answer(longest) == longest
    with pytest.raises(ValueError, match="words"):
        parse_np_general_answer(longest + " more")


# ------------------------------------------------------------------------------------------
# The methods
# ------------------------------------------------------------------------------------------


class ScriptedClient:
    """A delphi client that answers from a script and records what it was sent."""

    def __init__(self, *answers: str) -> None:
        self.answers = list(answers)
        self.sent: list[list[dict]] = []

    async def generate(self, messages: list[dict], **kwargs: object) -> Response:
        self.sent.append(messages)
        return Response(text=self.answers.pop(0))


def _ctx(client: ScriptedClient, logits: list[str], params: Any) -> ExplainContext[Any]:
    records = [pb.Activation(tokens=list(t), values=list(v)) for t, v in (FIRST, LAST, TIE)]
    return ExplainContext(
        params=params,
        client=client,  # type: ignore[arg-type]
        activating=[activating_example(r, latent_max=6.0) for r in records],
        non_activating=[],
        top_positive_logits=logits,
    )


def test_method_specs():
    specs = {spec.name: spec for spec in NP_GENERAL_EXPLAINERS}
    assert list(specs) == ["np_acts_logits_general", "python_code"]
    assert specs["np_acts_logits_general"].needs == Needs(llm=True, logits=True)
    assert specs["python_code"].needs == Needs(llm=True)
    for spec in specs.values():
        assert spec.kind == pb.METHOD_KIND_EXPLAINER
        assert spec.description.endswith(".") and "\n" not in spec.description
        assert {f.name for f in spec.params_descriptor.fields} == {"top_texts", "window"}


async def test_general_method_sends_the_format_and_requires_logits():
    spec = NP_GENERAL_EXPLAINERS[0]
    # The Explain rules refuse the request before the explainer is built (needs.logits).
    method = ResolvedExplainer(spec, NpActsLogitsGeneralParams(top_texts=10, window=24))
    records = [pb.Activation(tokens=list(t), values=list(v)) for t, v in (FIRST, LAST, TIE)]
    with pytest.raises(InvalidArgument, match="top_positive_logits is required"):
        check_explain_records(method, records, [], [], SimpleNamespace(limits=Limits()))  # type: ignore[arg-type]
    client = ScriptedClient("Loop keywords.")
    explainer, record = _run_spec(spec, client, [" when"], top_texts=2, window=1)
    assert isinstance(explainer, NpActsLogitsGeneralExplainer)
    assert await run_explainer(explainer, record) == "Loop keywords"
    assert client.sent == [
        np_acts_logits_general_messages([FIRST, LAST, TIE], [" when"], top_texts=2, window=1)
    ]


async def test_python_method_ignores_logits():
    spec = NP_GENERAL_EXPLAINERS[1]
    client = ScriptedClient("the for keyword")
    explainer, record = _run_spec(spec, client, [" when"], top_texts=10, window=96)
    assert isinstance(explainer, PythonCodeExplainer)
    assert await run_explainer(explainer, record) == "the for keyword"
    assert client.sent == [python_code_messages([FIRST, LAST, TIE])]


@pytest.mark.parametrize("garbage", ["", "Unclear.", "<think>hmm", "first token", "."])
async def test_unusable_answers_are_retried_then_fail(garbage: str):
    client = ScriptedClient(garbage, garbage)
    explainer, record = _run_spec(NP_GENERAL_EXPLAINERS[1], client, [], top_texts=10, window=96)
    assert (await explainer(record)).explanation == DELPHI_PARSE_FAILURE
    client = ScriptedClient(garbage, garbage)
    explainer, record = _run_spec(NP_GENERAL_EXPLAINERS[1], client, [], top_texts=10, window=96)
    with pytest.raises(UpstreamBadResponse):
        await run_explainer(explainer, record)
    assert len(client.sent) == 2
    client = ScriptedClient(garbage, "colons")
    explainer, record = _run_spec(NP_GENERAL_EXPLAINERS[0], client, ["a"], top_texts=10, window=24)
    assert await run_explainer(explainer, record) == "colons"
