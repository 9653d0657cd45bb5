"""Every parser of model text runs in linear time (issue 17 item 1).

Each parser gets a table of hostile answers at the answer size cap (256 KiB): long runs of
``[``, ``<think>``, spaces between a label and its text, repeated labels and fences, unclosed
fences. Each must be parsed (or refused with ``ValueError``) in well under 100 ms; the bound
asserted is a generous 0.5 s so a loaded machine does not flake, while the old super-linear
patterns took minutes to hours at this size (seconds at a few KiB).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autointerp_grpc import prompts
from autointerp_grpc.delphi_compat import DefaultExplainer
from autointerp_grpc.methods.classifiers import Detection, parse_predictions
from autointerp_grpc.methods.explainers import DelphiDefaultExplainer
from autointerp_grpc.methods.intruder import Intruder
from autointerp_grpc.methods.simulation import parse_simulation
from autointerp_grpc.prompts.common import clean_phrase, is_refusal, strip_reasoning
from autointerp_grpc.prompts.np_general import parse_np_general_answer, parse_python_code_answer
from autointerp_grpc.prompts.oai_attention import parse_attention_head_answer

CAP = 256 * 1024
BOUND_S = 0.5


def _fill(unit: str, head: str = "", tail: str = "") -> str:
    """``head`` + ``unit`` repeated + ``tail``, at most CAP characters."""
    room = CAP - len(head) - len(tail)
    return head + unit * max(room // len(unit), 1) + tail


HOSTILE: dict[str, str] = {
    "brackets": _fill("["),
    "double brackets": _fill("[["),
    "brackets then one close": _fill("[", tail="]"),
    "bracket comma": _fill("[1,"),
    "braces": _fill("{"),
    "think": _fill("<think>"),
    "THINK": _fill("<THINK>"),
    "thinking": _fill("<thinking>"),
    "think closers": _fill("</think>"),
    "think open then closers": _fill("</thinking>", head="<think>"),
    "unclosed think": _fill("x", head="<think>"),
    "text then unclosed think": _fill("<think> ", head="answer "),
    "late think": _fill("a", tail="<think>"),
    "label spaces": _fill(" ", head="Explanation: a", tail="b"),
    "label tabs": _fill("\t", head="Explanation: a", tail="b"),
    "explanation repeated": _fill("Explanation:"),
    "explanation space repeated": _fill("explanation "),
    "explanation of neuron": _fill(" ", head="explanation of neuron 1", tail="x"),
    "EXPLANATION tag spaces": _fill(" ", head="[EXPLANATION]:"),
    "EXPLANATION tag repeated": _fill("[EXPLANATION]:"),
    "label star run": _fill("*", head="Label", tail="x"),
    "fences": _fill("```"),
    "fence spaces": _fill(" ", head="```"),
    "fence json spaces": _fill(" ", head="```json"),
    "spaces then fence": _fill(" ", head="{", tail="```"),
    "fence space repeated": _fill("``` "),
    "fence newline repeated": _fill("```\n"),
    "unclosed fence": _fill("a", head="```json\n"),
    "fence lang run": _fill("a", head="```"),
    "quotes": _fill('"'),
    "quote pairs": _fill("'\""),
    "periods": _fill(". "),
    "spaces": _fill(" ", head="a", tail="b"),
    "newlines": _fill("\n", head="a", tail="b"),
    "method spaces": _fill(" ", head="a method", tail="x"),
    "method paren spaces": _fill(" ", head="a (method 1)", tail="x"),
    "method parens repeated": _fill("(method 1)", tail=" x"),
    "dash method spaces": _fill(" ", head="a -", tail="x"),
    "dash repeated": _fill(" -"),
    "paren repeated": _fill(" ("),
    "digits": _fill("1", head="a method ", tail="x"),
    "restatement spaces": _fill(" ", head="the main thing this neuron does is find", tail="x"),
    "head spaces": _fill(" ", head="this attention head", tail="x"),
    "response tag spaces": _fill(" ", head="[RESPONSE]:"),
    "response tag repeated": _fill("[RESPONSE]:"),
    "refusal words": _fill("*", tail="sorry"),
}


def _intruder_parse(text: str) -> object:
    return Intruder._parse(SimpleNamespace(n_examples_shown=5), text)  # type: ignore[arg-type]


def _detection_parse(text: str) -> object:
    scorer = SimpleNamespace(n_examples_shown=5)
    return Detection._parse(scorer, text)  # type: ignore[arg-type]


def _delphi_explanation(text: str) -> object:
    return DefaultExplainer.parse_explanation(SimpleNamespace(), text)  # type: ignore[arg-type]


PARSERS: dict[str, Callable[[str], object]] = {
    "strip_reasoning": strip_reasoning,
    "clean_phrase": clean_phrase,
    "is_refusal": is_refusal,
    "parse_short_explanation (np_max_act)": prompts.parse_short_explanation,
    "parse_oai_answer": prompts.parse_oai_answer,
    "parse_attention_head_answer": parse_attention_head_answer,
    "parse_np_general_answer": parse_np_general_answer,
    "parse_recall_answer": lambda text: prompts.parse_recall_answer(text, 3),
    "parse_predictions": lambda text: parse_predictions(text, 3),
    "Detection._parse": _detection_parse,
    "parse_simulation": lambda text: parse_simulation(text, 3),
    "delphi parse_explanation (default, contrastive)": _delphi_explanation,
    "DelphiDefaultExplainer.parse_explanation (data-shape check)": (
        DelphiDefaultExplainer(None).parse_explanation  # type: ignore[arg-type]
    ),
    "parse_python_code_answer": parse_python_code_answer,
    "Intruder._parse (delphi)": _intruder_parse,
}


def _once(parser: Callable[[str], object], text: str) -> float:
    start = time.perf_counter()
    # A refused answer is fine: every caller reads ValueError as "unparsable".
    with contextlib.suppress(ValueError):
        parser(text)
    return time.perf_counter() - start


def _timed(parser: Callable[[str], object], text: str) -> float:
    """The parse time, the best of up to three tries when the first is over the bound: a
    loaded machine only ever adds time (another process, a GC pause), while a super-linear
    parser is slow on every try."""
    best = _once(parser, text)
    for _ in range(2):
        if best <= BOUND_S:
            break
        best = min(best, _once(parser, text))
    return best


@pytest.mark.parametrize("name", list(PARSERS))
def test_every_parser_is_linear_on_hostile_answers_at_the_cap(name: str) -> None:
    parser = PARSERS[name]
    slow = {}
    for label, text in HOSTILE.items():
        elapsed = _timed(parser, text)
        if elapsed > BOUND_S:
            slow[label] = round(elapsed, 2)
    assert not slow, f"{name} took over {BOUND_S}s on: {slow}"


def test_nested_brackets_are_an_unparsable_answer_not_a_recursion_error() -> None:
    deep = "[" * 100_000 + "]" * 100_000
    with pytest.raises(ValueError):
        parse_predictions(deep, 3)
    with pytest.raises(ValueError):
        prompts.parse_recall_answer(deep, 3)
    with pytest.raises(ValueError):
        parse_simulation(deep, 3)


_PIECES = st.sampled_from(
    [
        "[",
        "]",
        "[1, 0, 1]",
        "<think>",
        "</think>",
        "<thinking>",
        "</thinking>",
        "Explanation:",
        "explanation of neuron 3 behavior:",
        "[EXPLANATION]:",
        "Label:",
        "```",
        "```json\n",
        "(method 2)",
        " - method 1",
        ". Method 3",
        "method: 4",
        " ",
        "\t",
        "\n",
        "*",
        '"',
        "the main thing this neuron does is find",
        "this attention head",
        "a",
        "1",
        '{"answers": [true, false, true]}',
    ]
)


@settings(max_examples=60, deadline=None)
@given(st.lists(_PIECES, max_size=12), st.integers(min_value=1, max_value=2000))
def test_hostile_compositions_stay_linear(pieces: list[str], repeat: int) -> None:
    """Any composition of the tokens the patterns key on, repeated up to 2000 times, parses
    within the bound by every parser."""
    text = ("".join(pieces) * repeat)[:CAP] or " "
    for name, parser in PARSERS.items():
        elapsed = _timed(parser, text)
        assert elapsed < BOUND_S, f"{name} took {elapsed:.2f}s on {pieces!r} x {repeat}"
