"""What the prompt formats share: records, token display, and reasoning-trace stripping."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from typing import Any

Record = tuple[Sequence[str], Sequence[float]]
"""``(tokens, values)``: one text's string tokens and the activation on each token."""


EXPLANATION_PREFIX = "the main thing this neuron does is find"
"""The sentence the OpenAI-style answer completes."""

MAX_ACTIVATION = 10
SPARSE_FRACTION = 0.2
"""Below this fraction of non-zero shown tokens, the OpenAI-style prompt repeats them."""
MAX_SHORT_EXPLANATION_WORDS = 12
"""Longest explanation :func:`parse_short_explanation` accepts (the prompt asks for 1-6
words)."""
RECORD_START = "<start>"
RECORD_END = "<end>"


def system_message(content: str) -> dict[str, str]:
    return {"role": "system", "content": content}


def check_records(records: Sequence[Record]) -> list[tuple[list[str], list[float]]]:
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


def escape_token(token: str) -> str:
    """One-line form of a token: tabs, newlines and carriage returns become visible escapes."""
    return token.replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


# --------------------------------------------------------------------------------------------
# Reasoning traces
# --------------------------------------------------------------------------------------------

# Every pattern here is a bounded literal (no quantifier runs over the answer); the scans below
# are linear in the answer's length whatever it holds (issue 17: ``<think>`` x 8000 took seconds
# with ``<(think|thinking)>.*?</\1>``).
_THINK_OPEN_RE = re.compile(r"<(think|thinking)>", re.IGNORECASE)
_THINK_CLOSE_RE = {name: re.compile(rf"</{name}>", re.IGNORECASE) for name in ("think", "thinking")}
_ANY_CLOSE_RE = re.compile(r"</(?:think|thinking)>", re.IGNORECASE)
_UNTERMINATED_RE = re.compile(r"^\s*<(?:think|thinking)>", re.IGNORECASE)


def _without_think_blocks(text: str) -> str:
    """``text`` without its ``<think>...</think>`` and ``<thinking>...</thinking>`` blocks:
    each opening tag, left to right, up to the first closing tag of its own name after it; an
    opening tag that no closing tag follows stays. Once a name has no closing tag after some
    point it has none after any later one, so each search runs once over any stretch."""
    kept: list[str] = []
    copied = 0
    position = 0
    unclosed: set[str] = set()
    while (opened := _THINK_OPEN_RE.search(text, position)) is not None:
        name = "thinking" if len(opened.group(1)) == len("thinking") else "think"
        closed = None if name in unclosed else _THINK_CLOSE_RE[name].search(text, opened.end())
        if closed is None:
            unclosed.add(name)
            position = opened.start() + 1
            continue
        kept.append(text[copied : opened.start()])
        copied = position = closed.end()
    kept.append(text[copied:])
    return "".join(kept)


def strip_reasoning(text: str) -> str:
    """The final answer of a model reply, without its reasoning.

    Removes ``<think>...</think>`` and ``<thinking>...</thinking>`` blocks; a reply that
    starts with an unterminated ``<think>`` is all reasoning (empty result); a closing tag
    with no opening one (templates that put ``<think>`` in the prompt) drops everything up to
    it. The result is whitespace-stripped. Linear in the length of ``text``.
    """
    answer = _without_think_blocks(text)
    if _UNTERMINATED_RE.match(answer):
        return ""
    stray = _ANY_CLOSE_RE.search(answer)
    if stray is not None:
        answer = answer[stray.end() :]
    return answer.strip()


_QUOTES = "\"'`\u201c\u201d\u2018\u2019*"


def first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return ""


def clean_phrase(text: str) -> str:
    """Strip surrounding whitespace, matching quotes (or ``*``) and a trailing period, until
    stable. (Index arithmetic, not a slice per step: linear even for 256 KiB of quotes.)"""
    start, end = 0, len(text)
    while True:
        before = (start, end)
        while start < end and text[start].isspace():
            start += 1
        while end > start and text[end - 1].isspace():
            end -= 1
        if text.endswith(".", start, end) and not text.endswith("..", start, end):
            end -= 1
        # Pair after pair while both ends are quotes (stripping and the period rule have
        # nothing to do between two such steps).
        while end - start >= 2 and text[start] in _QUOTES and text[end - 1] in _QUOTES:
            start, end = start + 1, end - 1
        if (start, end) == before:
            return text[start:end]


def loads_answer(text: str) -> Any:
    """``json.loads`` of a model's answer; ``ValueError`` also for nesting too deep for the
    decoder (``[`` x 100000 raises RecursionError), so every caller's "unparsable" path sees
    one exception type."""
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("the answer nests too deeply to be read") from None


_REFUSAL_RE = re.compile(
    r"^\W*+(i'm|i am|i can|i cannot|i can't|i don't|i do not|i'd|i would|sorry|unfortunately|"
    r"as an ai)\b",
    re.IGNORECASE,
)


def is_refusal(phrase: str) -> bool:
    """Whether an answer that should be an explanation is the model talking about itself
    instead ("I'm not sure what you mean", "Sorry, ..."): no explanation format asks for a
    first-person sentence, so such an answer is unparsable (retried, then an error), never
    stored as an explanation."""
    return bool(_REFUSAL_RE.match(phrase))
