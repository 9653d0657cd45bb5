"""The OpenAI neuron-explainer format: ``token<TAB>activation`` lines, activations 0-10."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from autointerp_grpc.prompts.common import (
    EXPLANATION_PREFIX,
    MAX_ACTIVATION,
    RECORD_END,
    RECORD_START,
    SPARSE_FRACTION,
    Record,
    check_records,
    clean_phrase,
    escape_token,
    first_line,
    is_refusal,
    strip_reasoning,
    system_message,
)

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
            line = f"{escape_token(token)}\t{level}"
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


def _top_records(
    records: list[tuple[list[str], list[float]]], count: int
) -> list[tuple[list[str], list[float]]]:
    """The ``count`` records with the largest activations, largest first (ties keep request
    order): OpenAI's explainer is shown a neuron's top-activating records, in that order
    (openai/automated-interpretability, neuron_explainer/activations/activations.py:
    ``most_positive_activation_records``, sliced for the train split)."""
    ranked = sorted(range(len(records)), key=lambda i: -max(records[i][1], default=-math.inf))
    return [records[i] for i in ranked[:count]]


def oai_token_act_pair_messages(
    records: Sequence[Record], max_records: int = 20
) -> list[dict[str, str]]:
    """Chat messages asking for an explanation in the OpenAI neuron-explainer format.

    The ``max_records`` records with the largest activations are shown, largest first (ties
    keep request order), one ``token<TAB>activation`` line per token between
    ``<start>``/``<end>`` lines. Activations are scaled to integers 0-10 by the largest
    activation over the shown records, as OpenAI's explainer does
    (``neuron_explainer/explanations/explainer.py`` recomputes ``calculate_max_activation``
    over the records it shows, and ``normalize_activations`` is ``min(10, floor(10 *
    relu(v) / max))``): negatives clamp to 0, an all-zero set shows all 0. When fewer than
    20% of the shown tokens are non-zero, the non-zero lines are repeated in a second
    section. The answer completes "the main thing this neuron does is find"; parse it with
    :func:`parse_oai_answer`.
    """
    if max_records < 1:
        raise ValueError("max_records must be at least 1")
    shown = _top_records(check_records(records), max_records)
    if not shown:
        raise ValueError("no records to show")
    example = check_records(_OAI_EXAMPLE)
    return [
        system_message(_OAI_SYSTEM),
        {"role": "user", "content": _oai_user_message(example)},
        {"role": "assistant", "content": _OAI_EXAMPLE_ANSWER},
        {"role": "user", "content": _oai_user_message(shown)},
    ]


OAI_ANSWER_SHAPE = (
    f'one line completing "{EXPLANATION_PREFIX} ...", a phrase (not a token<TAB>activation '
    "line of the excerpts)"
)
"""What an answer in this format must hold, as failure messages name it."""

_HEADERS = ("Neuron activations on ", "The same activations, listing only the non-zero tokens")


def is_oai_data_line(line: str) -> bool:
    """Whether a line of an answer is shaped like the prompt's data rather than like an
    explanation: a ``token<TAB>activation`` line (a number after the last tab: a model that
    continues the excerpts writes ``names of day\t0``), a ``<start>``/``<end>`` line, or a
    section header. Linear in the line."""
    line = line.strip()
    _, tab, value = line.rpartition("\t")
    if tab and _is_number(value.strip()):
        return True
    return line in (RECORD_START, RECORD_END) or line.startswith(_HEADERS)


def _is_number(text: str) -> bool:
    whole, _, fraction = text.partition(".")
    return whole.isdigit() and (not fraction or fraction.isdigit())


_RESTATEMENT_RE = re.compile(
    r"^[\s\"'`\u201c\u2018*.]*" + r"\s+".join(map(re.escape, EXPLANATION_PREFIX.split())) + r"s?\b"
    r"[ \t:,\-\u2013\u2014]*",
    re.IGNORECASE,
)


def parse_oai_answer(text: str) -> str:
    """The completion phrase of an OpenAI-style answer.

    Reasoning blocks are dropped, a restated "the main thing this neuron does is find" is
    removed (case-insensitive), then the first non-empty line is taken without surrounding
    quotes or a trailing period. ``ValueError`` when the phrase is empty, a refusal, or shaped
    like the prompt's data (:func:`is_oai_data_line`: the model continued the excerpts instead
    of explaining them).
    """
    answer = clean_phrase(strip_reasoning(text))
    answer = _RESTATEMENT_RE.sub("", answer, count=1)
    line = first_line(answer)
    phrase = clean_phrase(line)
    if not phrase or is_refusal(phrase):
        raise ValueError("the answer has no explanation phrase")
    if is_oai_data_line(line):
        raise ValueError("the answer copies the excerpts' lines instead of explaining them")
    return phrase
