"""The recall judge's prompt, decoy texts and answer parser."""

from __future__ import annotations

import re
from typing import Any

from autointerp_grpc.prompts.common import (
    loads_answer,
    strip_reasoning,
    system_message,
)

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
    return [system_message(_RECALL_SYSTEM), {"role": "user", "content": user}]


_FENCE = "```"
_FENCE_LANGUAGE_RE = re.compile(r"[a-zA-Z0-9_-]*")


def fenced_text(answer: str) -> str | None:
    """What the first ``` fence of ``answer`` holds (after its language tag), or None when
    there is no fence closed after its opening. A scan, linear in the answer's length;
    the same text, once stripped, as ``r"```[a-zA-Z0-9_-]*[ \t]*\n?(.*?)\n?[ \t]*```"`` with
    DOTALL finds (that pattern took a minute on 32 KiB of ``` + letters)."""
    opened = answer.find(_FENCE)
    if opened < 0:
        return None
    start = _FENCE_LANGUAGE_RE.match(answer, opened + len(_FENCE))
    begin = start.end() if start is not None else opened + len(_FENCE)
    closed = answer.find(_FENCE, begin)
    return None if closed < 0 else answer[begin:closed]


def parse_recall_answer(text: str, expected: int) -> list[bool]:
    """The judge's booleans from ``{"answers": [...]}`` (optionally in ``` fences).

    ``ValueError`` unless there are exactly ``expected`` JSON booleans.
    """
    answer = strip_reasoning(text).strip()
    fenced = fenced_text(answer)
    if fenced is not None:
        answer = fenced.strip()
    try:
        data = loads_answer(answer)
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
