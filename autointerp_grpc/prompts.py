"""Prompt builders and answer parsers for the explanation formats delphi does not ship.

Pure functions: no I/O, no delphi imports, deterministic output. A *record* is
``(tokens, values)``: a latent's string tokens and its activation on each of them.

* :func:`oai_token_act_pair_messages` / :func:`parse_oai_answer`: the OpenAI neuron-explainer
  style (``token<TAB>activation`` lines, activations scaled to integers 0-10, answer completes
  "the main thing this neuron does is find").
* :func:`np_max_act_messages` / :func:`parse_short_explanation`: the Neuronpedia "max
  activating" style (top tokens, windows around each record's strongest token, optionally the
  next tokens and the tokens the latent promotes), answered with a 1-6 word label.
* :func:`recall_messages` / :func:`parse_recall_answer`: an LLM judge that says, per text,
  whether an explanation describes something in it (used with :data:`RECALL_DECOYS`).
* :func:`strip_reasoning`: drops ``<think>`` blocks so answers are parsed from the final
  answer, never from a reasoning trace.

Prompts carry nothing but what the model needs to answer: no marker lines for test doubles
or logs (a fake LLM recognises each format by its content). Builders raise ``ValueError`` on
unusable input; parsers raise ``ValueError`` with a short reason when an answer is unusable.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from typing import Any

__all__ = [
    "EXPLANATION_PREFIX",
    "MAX_SHORT_EXPLANATION_WORDS",
    "RECALL_DECOYS",
    "RECALL_RESPONSE_FORMAT",
    "Record",
    "np_max_act_messages",
    "oai_token_act_pair_messages",
    "parse_oai_answer",
    "parse_recall_answer",
    "parse_short_explanation",
    "recall_messages",
    "strip_reasoning",
]

Record = tuple[Sequence[str], Sequence[float]]
"""``(tokens, values)``: one text's string tokens and the activation on each token."""

EXPLANATION_PREFIX = "the main thing this neuron does is find"
"""The sentence the OpenAI-style answer completes."""

MAX_ACTIVATION = 10
SPARSE_FRACTION = 0.2
"""Below this fraction of non-zero shown tokens, the OpenAI-style prompt repeats them."""
MAX_SHORT_EXPLANATION_WORDS = 12
"""Longest label :func:`parse_short_explanation` accepts (the prompt asks for 1-6 words)."""
RECORD_START = "<start>"
RECORD_END = "<end>"
MARK_OPEN = "[["
MARK_CLOSE = "]]"


def _system(content: str) -> dict[str, str]:
    return {"role": "system", "content": content}


def _check_records(records: Sequence[Record]) -> list[tuple[list[str], list[float]]]:
    checked = []
    for index, record in enumerate(records):
        tokens, values = record
        if len(tokens) != len(values):
            raise ValueError(
                f"record {index} has {len(tokens)} tokens but {len(values)} activations"
            )
        floats = [float(value) for value in values]
        if not all(math.isfinite(value) for value in floats):
            raise ValueError(f"record {index} has a non-finite activation")
        checked.append(([str(token) for token in tokens], floats))
    return checked


def _escape_token(token: str) -> str:
    """One-line form of a token: tabs, newlines and carriage returns become visible escapes."""
    return token.replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def _visible(token: str) -> str:
    """A token stripped for display; whitespace-only tokens stay visible as escapes."""
    stripped = token.strip()
    if stripped:
        return _escape_token(stripped)
    if not token:
        return "(empty)"
    return _escape_token(token).replace(" ", "\u2423")  # open box: a visible space


def _distinct_displays(tokens: Sequence[str]) -> list[str]:
    """Display forms of distinct raw tokens; tokens that strip to the same text are shown
    quoted with their whitespace so they stay distinguishable."""
    plain = [_visible(token) for token in tokens]
    collisions = {text for text in plain if plain.count(text) > 1}
    return [
        json.dumps(token, ensure_ascii=False) if text in collisions else text
        for token, text in zip(tokens, plain, strict=True)
    ]


# --------------------------------------------------------------------------------------------
# OpenAI neuron-explainer style: token<TAB>activation
# --------------------------------------------------------------------------------------------

_OAI_SYSTEM = f"""\
You are helping to interpret a single neuron inside a language model.

You will see several text excerpts. Each excerpt lies between a {RECORD_START} line and an \
{RECORD_END} line and lists one token per line in the form token<TAB>activation. Activations \
are whole numbers from 0 to {MAX_ACTIVATION}: 0 means the neuron does not respond to that \
token, {MAX_ACTIVATION} marks its strongest response anywhere in the excerpts. Special \
characters inside tokens are written as escapes (\\n for a newline, \\t for a tab). When only a \
few tokens respond, their token<TAB>activation lines are listed a second time after the \
excerpts so they are easy to find.

Work out what the neuron is looking for: a word, a family of words, a piece of syntax, or a \
pattern in the surrounding context. Then complete the sentence "{EXPLANATION_PREFIX} ..." \
with a short phrase. Reply with that phrase alone on a single line: do not repeat the start \
of the sentence, do not add quotes and do not explain your reasoning."""

_OAI_EXAMPLE: list[Record] = [
    (["We", " met", " on", " Monday", " and", " again", " Friday", "."], [0, 0, 0, 9, 0, 0, 8, 0]),
    (["Every", " Tuesday", " the", " shop", " closes", " early"], [0, 10, 0, 0, 0, 0]),
]
_OAI_EXAMPLE_ANSWER = "names of weekdays"


def _normalised(values: Sequence[float], max_value: float) -> list[int]:
    if max_value <= 0:
        return [0] * len(values)
    return [
        min(MAX_ACTIVATION, math.floor(MAX_ACTIVATION * max(value, 0.0) / max_value))
        for value in values
    ]


def _oai_user_message(records: Sequence[tuple[list[str], list[float]]]) -> str:
    max_value = max((value for _, values in records for value in values), default=0.0)
    blocks: list[str] = []
    active: list[str] = []
    shown = 0
    for tokens, values in records:
        lines = [RECORD_START]
        for token, level in zip(tokens, _normalised(values, max_value), strict=True):
            line = f"{_escape_token(token)}\t{level}"
            lines.append(line)
            shown += 1
            if level > 0:
                active.append(line)
        lines.append(RECORD_END)
        blocks.append("\n".join(lines))
    parts = [f"Neuron activations on {len(records)} excerpts:", "\n".join(blocks)]
    if active and len(active) < SPARSE_FRACTION * shown:
        parts.append(
            "The same activations, listing only the non-zero tokens:\n" + "\n".join(active)
        )
    parts.append(f'Complete the sentence: "{EXPLANATION_PREFIX} ..."')
    return "\n\n".join(parts)


def oai_token_act_pair_messages(
    records: Sequence[Record], max_records: int = 20
) -> list[dict[str, str]]:
    """Chat messages asking for an explanation in the OpenAI neuron-explainer format.

    The first ``max_records`` records are shown in the order given, one ``token<TAB>activation``
    line per token between ``<start>``/``<end>`` lines. Activations are scaled to integers
    0-10 by the largest activation over all shown records (``floor(10 * v / max)``, negatives
    clamp to 0, an all-zero set shows all 0). When fewer than 20% of the shown tokens are
    non-zero, the non-zero lines are repeated in a second section. The answer completes
    "the main thing this neuron does is find"; parse it with :func:`parse_oai_answer`.
    """
    if max_records < 1:
        raise ValueError("max_records must be at least 1")
    shown = _check_records(records[:max_records])
    if not shown:
        raise ValueError("no records to show")
    example = _check_records(_OAI_EXAMPLE)
    return [
        _system(_OAI_SYSTEM),
        {"role": "user", "content": _oai_user_message(example)},
        {"role": "assistant", "content": _OAI_EXAMPLE_ANSWER},
        {"role": "user", "content": _oai_user_message(shown)},
    ]


_QUOTES = "\"'`\u201c\u201d\u2018\u2019*"
_RESTATEMENT_RE = re.compile(
    r"^[\s\"'`\u201c\u2018*.]*" + r"\s+".join(map(re.escape, EXPLANATION_PREFIX.split())) + r"s?\b"
    r"[ \t:,\-\u2013\u2014]*",
    re.IGNORECASE,
)


def _first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return ""


def _clean_phrase(text: str) -> str:
    """Strip surrounding whitespace, matching quotes (or ``*``) and a trailing period, until
    stable."""
    previous = None
    while previous != text:
        previous = text
        text = text.strip()
        if text.endswith(".") and not text.endswith(".."):
            text = text[:-1]
        if len(text) >= 2 and text[0] in _QUOTES and text[-1] in _QUOTES:
            text = text[1:-1]
    return text


def parse_oai_answer(text: str) -> str:
    """The completion phrase of an OpenAI-style answer.

    Reasoning blocks are dropped, a restated "the main thing this neuron does is find" is
    removed (case-insensitive), then the first non-empty line is taken without surrounding
    quotes or a trailing period. An empty phrase raises ``ValueError``.
    """
    answer = _clean_phrase(strip_reasoning(text))
    answer = _RESTATEMENT_RE.sub("", answer, count=1)
    phrase = _clean_phrase(_first_line(answer))
    if not phrase:
        raise ValueError("the answer has no explanation phrase")
    return phrase


# --------------------------------------------------------------------------------------------
# Neuronpedia style: max-activating tokens and windows
# --------------------------------------------------------------------------------------------

_NP_SYSTEM = f"""\
You name features of a language model. For one feature you will see the tokens on which it \
fires most strongly and short excerpts of text around its strongest activations. In each \
excerpt the token where the feature is strongest is wrapped in {MARK_OPEN} {MARK_CLOSE}; the \
excerpts are ordered from the strongest activation down. Newlines and tabs inside the text \
are written as \\n and \\t."""

_NP_LOGITS_SYSTEM = """\
You will also see the tokens that come right after the marked token in those excerpts, and \
the output tokens this feature pushes the model towards. Some features are best named by what \
they read, others by what they make the model say next; use whichever fits the evidence."""

_NP_ANSWER_RULES = """\
Answer with a very short label of 1 to 6 words for what the feature detects or predicts. Do \
not write a full sentence, do not use quotes, do not explain. Reply with the label only."""

_NP_TOP_TOKENS = "Tokens with the strongest activations:"
_NP_TEXTS = "Excerpts around the strongest activations:"
_NP_NEXT_TOKENS = "Tokens that come right after the marked token:"
_NP_LOGITS = "Output tokens this feature promotes most:"


def _argmax(values: Sequence[float]) -> int:
    best = 0
    for index, value in enumerate(values):
        if value > values[best]:
            best = index
    return best


def _window_text(tokens: Sequence[str], peak: int, window: int) -> str:
    """One line: ``window`` tokens either side of ``peak``, the peak token in ``[[ ]]``
    (its surrounding whitespace left outside the marks)."""
    start, stop = max(0, peak - window), min(len(tokens), peak + window + 1)
    token = tokens[peak]
    core = token.strip()
    if core:
        lead = token[: len(token) - len(token.lstrip())]
        trail = token[len(token.rstrip()) :]
        marked = f"{_escape_token(lead)}{MARK_OPEN}{_escape_token(core)}{MARK_CLOSE}"
        marked += _escape_token(trail)
    else:
        marked = f"{MARK_OPEN}{_visible(token)}{MARK_CLOSE}"
    before = "".join(_escape_token(t) for t in tokens[start:peak])
    after = "".join(_escape_token(t) for t in tokens[peak + 1 : stop])
    return f"{before}{marked}{after}".strip()


def _bullets(items: Sequence[str]) -> str:
    return "\n".join(f"- {item}" for item in items)


def np_max_act_messages(  # noqa: PLR0917 (positional signature is the documented API)
    records: Sequence[Record],
    top_tokens: int = 10,
    top_texts: int = 10,
    window: int = 8,
    logits: bool = False,
    top_positive_logits: list[str] | None = None,
    next_tokens: int = 10,
) -> list[dict[str, str]]:
    """Chat messages asking for a 1-6 word label in Neuronpedia's "max activating" style.

    Only records whose largest activation is positive count; each contributes its argmax token
    (the first one on ties). Sections, in order:

    a. up to ``top_tokens`` distinct argmax tokens, ranked by the largest activation each
       reached (ties: first seen), shown stripped (whitespace-only tokens as escapes; tokens
       that would look alike are shown quoted);
    b. the ``top_texts`` records with the largest activations, each as a one-line window of
       ``window`` tokens either side of its argmax token, which is wrapped in ``[[ ]]``;
    c. with ``logits``: up to ``next_tokens`` distinct tokens that follow the argmax token in
       the records of (b), in their order;
    d. with ``logits`` and a non-empty ``top_positive_logits``: those tokens, in order.

    Parse the answer with :func:`parse_short_explanation`. ``ValueError`` if no record has a
    positive activation.
    """
    if top_tokens < 1 or top_texts < 1 or next_tokens < 1 or window < 0:
        raise ValueError("top_tokens, top_texts and next_tokens must be >= 1 and window >= 0")
    peaks: list[tuple[float, int, list[str], int]] = []
    for index, (tokens, values) in enumerate(_check_records(records)):
        if tokens:
            peak = _argmax(values)
            if values[peak] > 0:
                peaks.append((values[peak], index, tokens, peak))
    if not peaks:
        raise ValueError("no record has a positive activation")
    ranked = sorted(peaks, key=lambda item: (-item[0], item[1]))

    best_tokens: dict[str, None] = {}
    for _, _, tokens, peak in ranked:
        best_tokens.setdefault(tokens[peak], None)
    shown_tokens = _distinct_displays(list(best_tokens)[:top_tokens])
    shown = ranked[:top_texts]
    texts = [
        f"{n}. {_window_text(tokens, peak, window)}"
        for n, (_, _, tokens, peak) in enumerate(shown, start=1)
    ]
    sections = [f"{_NP_TOP_TOKENS}\n{_bullets(shown_tokens)}", f"{_NP_TEXTS}\n" + "\n".join(texts)]

    system = _NP_SYSTEM
    if logits:
        system = f"{_NP_SYSTEM}\n\n{_NP_LOGITS_SYSTEM}"
        following: dict[str, None] = {}
        for _, _, tokens, peak in shown:
            if peak + 1 < len(tokens):
                following.setdefault(tokens[peak + 1], None)
        after = _distinct_displays(list(following)[:next_tokens])
        sections.append(f"{_NP_NEXT_TOKENS}\n{_bullets(after) if after else '(none)'}")
        promoted = list(dict.fromkeys(str(token) for token in top_positive_logits or ()))
        if promoted:
            sections.append(f"{_NP_LOGITS}\n{_bullets(_distinct_displays(promoted))}")
    return [
        _system(f"{system}\n\n{_NP_ANSWER_RULES}"),
        {"role": "user", "content": "\n\n".join(sections)},
    ]


_LABEL_RE = re.compile(
    r"^[\s*#>_]*\[?(?:final\s+)?(?:explanation|label|answer)\]?[\s*_]*[:\-\u2013\u2014][\s*_]*",
    re.IGNORECASE,
)


def parse_short_explanation(text: str) -> str:
    """A short label from an answer: the first non-empty line of the final answer, without a
    leading ``Explanation:``/``Label:``/``Answer:`` label, surrounding quotes or a trailing
    period. ``ValueError`` if it is empty or longer than 12 words."""
    line = _first_line(strip_reasoning(text))
    label = _clean_phrase(_LABEL_RE.sub("", line, count=1))
    if not label:
        raise ValueError("the answer has no explanation")
    words = len(label.split())
    if words > MAX_SHORT_EXPLANATION_WORDS:
        raise ValueError(
            f"the explanation has {words} words; at most {MAX_SHORT_EXPLANATION_WORDS} allowed"
        )
    return label


# --------------------------------------------------------------------------------------------
# Recall judge
# --------------------------------------------------------------------------------------------

RECALL_DECOYS: tuple[str, ...] = (
    "She left the umbrella by the front door and forgot it all afternoon.",
    "The bus was twenty minutes late because of roadworks near the bridge.",
    "Add a pinch of salt to the water before the pasta goes in.",
    "Our neighbours painted their fence a bright shade of green last weekend.",
    "He keeps his receipts in a shoebox under the desk.",
    "The library extends its opening hours during the exam period.",
    "A light breeze made the curtains move while we ate breakfast.",
    "Please remember to water the tomato plants on Thursday evening.",
)
"""Everyday sentences mixed into recall tests; a specific explanation should match none."""

RECALL_RESPONSE_FORMAT: dict[str, Any] = {
    "type": "json_schema",
    "json_schema": {
        "name": "recall_answers",
        "strict": True,
        "schema": {
            "type": "object",
            "properties": {
                "answers": {
                    "type": "array",
                    "items": {"type": "boolean"},
                    "description": "One entry per numbered text, in order.",
                }
            },
            "required": ["answers"],
            "additionalProperties": False,
        },
    },
}
"""OpenAI ``response_format`` for the recall judge's answer."""

_RECALL_SYSTEM = """\
You check explanations of features of a language model against text. You will get one \
explanation and a numbered list of texts. For each text decide whether it contains something \
the explanation describes: true if it does, false if it does not. Judge each text on its own.

Reply with JSON only, in exactly this shape: {"answers": [true, false, ...]}, with one boolean \
per text, in the order the texts are numbered, and nothing else."""


def _one_line(text: str) -> str:
    return " ".join(text.split())


def recall_messages(explanation: str, texts: list[str]) -> list[dict[str, str]]:
    """Chat messages asking a judge whether ``explanation`` describes something in each text.

    Texts are numbered ``Text 1:`` ... one per line (whitespace runs, newlines included,
    collapse to one space). The answer is ``{"answers": [bool, ...]}``, one per text; send
    :data:`RECALL_RESPONSE_FORMAT` with it where the provider supports it and parse with
    :func:`parse_recall_answer`.
    """
    explanation = _one_line(explanation)
    if not explanation:
        raise ValueError("the explanation is empty")
    if not texts:
        raise ValueError("no texts to judge")
    numbered = "\n".join(f"Text {n}: {_one_line(text)}" for n, text in enumerate(texts, start=1))
    user = (
        f"Explanation: {explanation}\n\nTexts:\n{numbered}\n\n"
        f"Answer with exactly {len(texts)} booleans."
    )
    return [_system(_RECALL_SYSTEM), {"role": "user", "content": user}]


_FENCE_RE = re.compile(r"```[a-zA-Z0-9_-]*[ \t]*\n?(.*?)\n?[ \t]*```", re.DOTALL)


def parse_recall_answer(text: str, expected: int) -> list[bool]:
    """The judge's booleans from ``{"answers": [...]}`` (optionally in ``` fences).

    ``ValueError`` unless there are exactly ``expected`` JSON booleans.
    """
    answer = strip_reasoning(text).strip()
    fenced = _FENCE_RE.search(answer)
    if fenced is not None:
        answer = fenced.group(1).strip()
    try:
        data = json.loads(answer)
    except ValueError:
        raise ValueError("the answer is not JSON") from None
    if isinstance(data, dict):
        data = data.get("answers")
    if not isinstance(data, list):
        raise ValueError('the answer has no "answers" list')
    if not all(isinstance(item, bool) for item in data):
        raise ValueError("the answers are not all booleans")
    if len(data) != expected:
        raise ValueError(f"expected {expected} answers, got {len(data)}")
    return list(data)


# --------------------------------------------------------------------------------------------
# Reasoning traces
# --------------------------------------------------------------------------------------------

_THINK_BLOCK_RE = re.compile(r"<(think|thinking)>.*?</\1>", re.DOTALL | re.IGNORECASE)
_UNOPENED_CLOSE_RE = re.compile(r"^.*?</(?:think|thinking)>", re.DOTALL | re.IGNORECASE)
_UNTERMINATED_RE = re.compile(r"^\s*<(?:think|thinking)>", re.IGNORECASE)


def strip_reasoning(text: str) -> str:
    """The final answer of a model reply, without its reasoning.

    Removes ``<think>...</think>`` and ``<thinking>...</thinking>`` blocks; a reply that
    starts with an unterminated ``<think>`` is all reasoning (empty result); a closing tag
    with no opening one (templates that put ``<think>`` in the prompt) drops everything up to
    it. The result is whitespace-stripped.
    """
    answer = _THINK_BLOCK_RE.sub("", text)
    if _UNTERMINATED_RE.match(answer):
        return ""
    answer = _UNOPENED_CLOSE_RE.sub("", answer, count=1)
    return answer.strip()
