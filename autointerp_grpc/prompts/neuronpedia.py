"""Neuronpedia's max-activation formats (np_max_act and np_max_act_logits)."""

from __future__ import annotations

import re
from collections.abc import Sequence

from autointerp_grpc.prompts.common import (
    MARK_CLOSE,
    MARK_OPEN,
    MAX_SHORT_EXPLANATION_WORDS,
    Record,
    check_records,
    clean_phrase,
    distinct_displays,
    escape_token,
    first_line,
    strip_reasoning,
    system_message,
    visible,
)

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
        marked = f"{escape_token(lead)}{MARK_OPEN}{escape_token(core)}{MARK_CLOSE}"
        marked += escape_token(trail)
    else:
        marked = f"{MARK_OPEN}{visible(token)}{MARK_CLOSE}"
    before = "".join(escape_token(t) for t in tokens[start:peak])
    after = "".join(escape_token(t) for t in tokens[peak + 1 : stop])
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
    for index, (tokens, values) in enumerate(check_records(records)):
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
    shown_tokens = distinct_displays(list(best_tokens)[:top_tokens])
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
        after = distinct_displays(list(following)[:next_tokens])
        sections.append(f"{_NP_NEXT_TOKENS}\n{_bullets(after) if after else '(none)'}")
        promoted = list(dict.fromkeys(str(token) for token in top_positive_logits or ()))
        if promoted:
            sections.append(f"{_NP_LOGITS}\n{_bullets(distinct_displays(promoted))}")
    return [
        system_message(f"{system}\n\n{_NP_ANSWER_RULES}"),
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
    line = first_line(strip_reasoning(text))
    label = clean_phrase(_LABEL_RE.sub("", line, count=1))
    if not label:
        raise ValueError("the answer has no explanation")
    words = len(label.split())
    if words > MAX_SHORT_EXPLANATION_WORDS:
        raise ValueError(
            f"the explanation has {words} words; at most {MAX_SHORT_EXPLANATION_WORDS} allowed"
        )
    return label
