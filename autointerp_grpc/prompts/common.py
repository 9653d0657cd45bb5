"""What the prompt formats share: records, token display, and reasoning-trace stripping."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

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


_QUOTES = "\"'`\u201c\u201d\u2018\u2019*"


def first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return ""


def clean_phrase(text: str) -> str:
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


_REFUSAL_RE = re.compile(
    r"^\W*(i'm|i am|i can|i cannot|i can't|i don't|i do not|i'd|i would|sorry|unfortunately|"
    r"as an ai)\b",
    re.IGNORECASE,
)


def is_refusal(phrase: str) -> bool:
    """Whether an answer that should be an explanation is the model talking about itself
    instead ("I'm not sure what you mean", "Sorry, ..."): no explanation format asks for a
    first-person sentence, so such an answer is unparsable (retried, then an error), never
    stored as an explanation."""
    return bool(_REFUSAL_RE.match(phrase))
