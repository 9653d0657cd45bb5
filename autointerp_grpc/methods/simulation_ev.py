"""The expected-value simulation ("logprob_ev"): OpenAI's "all at once" simulator on a chat API.

The anchor is Neuronpedia's fork of OpenAI's neuron-explainer (PyPI
``automated-interpretability`` 0.0.24, ``neuron_explainer/explanations/``). Its
``ExplanationNeuronSimulator`` (simulator.py lines 319-415) sends one few-shot prompt to a
*completions* API with ``echo=True, max_tokens=0, logprobs=15``: the record's tokens are in
the prompt as ``token<TAB>unknown`` lines, and ``parse_simulation_response`` (lines 198-307)
reads, at the token after each tab, the top log probabilities of "0" to "10". The prediction
for a token is their expected value, ``compute_predicted_activation_stats_for_token`` (lines
88-116): the probabilities of the valid activation tokens, renormalised to sum to 1, times
their values. The score (scoring.py lines 25-29 and 98-126, ``ev_correlation_score``) is the
correlation of those expected values with the true activations, pooled over every token of
every record.

Chat APIs cannot echo a prompt, so here the model *writes* the lines:

* The prompt is the anchor's chat version of the same format
  (``LogprobFreeExplanationTokenSimulator._make_simulation_prompt``, simulator.py lines
  1065-1121; see :mod:`autointerp_grpc.prompts.oai_simulation`): the record's tokens as
  ``token<TAB>\u0f17`` lines, answered as ``token<TAB>digit\u0f17`` lines. The request asks for
  ``logprobs`` with ``top_logprobs=20`` (the most OpenAI allows; the anchor's completions
  call asked for 15) at temperature 0 (the anchor's chat simulator samples at 0 too).
* The answer's ``logprobs.content`` tokens are laid end to end as bytes (each token's
  ``bytes`` where the provider sends them, so a character split over tokens, such as the
  \u0f17 mark, stays whole) and split into lines at each \u0f17 mark (at each newline when the
  model dropped the marks, as the anchor's own parser falls back to, lines 783-789). In each
  line the text before its last tab is the token it answers, and the generated token that
  starts right after that tab is the activation digit: its ``top_logprobs`` give the expected
  value, as in the anchor. A token that holds the tab and the digit together (``"\\t4"``) is
  read the same way with the tab taken off every alternative. A reasoning trace before
  ``</think>`` is skipped.
* Lines are matched to the record's tokens in order (``difflib.SequenceMatcher`` on the
  whitespace-stripped texts, so a missing, extra or reworded line shifts nothing after it;
  ``<|not_endoftext|>`` matches ``<|endoftext|>``; a first line may carry a preamble before
  its last newline). The anchor instead asserts that the echoed tokens line up.

Differences from the anchor, on purpose: a line that matches no token, or a digit whose top
log probabilities hold no activation token, leaves that token unanswered, and a record with
an unanswered token is unanswered as a whole (never zeros, which the anchor substitutes for a
folded newline, lines 277-292); the coverage floor then applies to records as in JSON mode.
Alternatives are compared whitespace-stripped, so " 4" counts as 4 (probabilities of the same
value add up); the anchor compares them exactly. The expected value conditions on the
tokens the model wrote before the digit (the anchor's prompt fixes them), which at
temperature 0 are the record's own. A tokenizer that writes 10 as "1" then "0" leaves 10 out
of the alternatives (as with the anchor), so such a model's 10 reads as 1.
"""

from __future__ import annotations

import bisect
import difflib
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from autointerp_grpc.backends.llm import LLMClient
from autointerp_grpc.errors import AutoInterpError
from autointerp_grpc.offload import off_loop
from autointerp_grpc.prompts.oai_simulation import (
    END_OF_TEXT,
    END_OF_TEXT_REPLACEMENT,
    LINE_END,
    VALID_ACTIVATIONS,
    simulation_ev_batch_messages,
)

TOP_LOGPROBS = 20
"""Alternatives asked for at each generated token: the most OpenAI's chat API allows."""
_MIN_MAX_TOKENS = 1000
"""The anchor's chat simulator's answer budget (simulator.py line 962)."""
_TOKENS_PER_LINE = 8
"""Answer budget per record token: the token, a tab, a digit, the mark (often two tokens) and
a newline, with room for tokens the simulator model splits."""

_LINE_END = LINE_END.encode()
_HEADING_RE = re.compile(rb"Sequence (\d{1,6}) Tokens with Activations:")
"""An answer's heading for the record it answers next (prompts that ask for several)."""
_VALUES = {text: int(text) for text in VALID_ACTIVATIONS}
_THINK_END = b"</think>"


def expected_value(alternatives: Iterable[tuple[str, float]]) -> float | None:
    """The expected activation over the alternatives ``(token, logprob)`` that are activation
    values "0" to "10" (whitespace-stripped), their probabilities renormalised to sum to 1;
    None when none is (the token is unanswered)."""
    mass: dict[int, float] = {}
    for text, logprob in alternatives:
        value = _VALUES.get(text.strip())
        if value is None or not math.isfinite(logprob):
            continue
        mass[value] = mass.get(value, 0.0) + math.exp(min(logprob, 0.0))
    total = sum(mass.values())
    if total <= 0.0:
        return None
    return sum(value * p for value, p in mass.items()) / total


def _entry_bytes(entry: Any) -> bytes:
    raw = getattr(entry, "bytes", None)
    if isinstance(raw, list) and all(isinstance(b, int) and 0 <= b < 256 for b in raw):
        return bytes(raw)
    token = getattr(entry, "token", "")
    return token.encode("utf-8", "replace") if isinstance(token, str) else b""


def _alternatives(entry: Any, prefix: str) -> list[tuple[str, float]]:
    """The entry's top alternatives as ``(text, logprob)``, each with ``prefix`` (what the
    entry holds before the digit) taken off; alternatives without it are dropped."""
    tops = getattr(entry, "top_logprobs", None)
    found: list[tuple[str, float]] = []
    for top in tops if isinstance(tops, list) else []:
        token, logprob = getattr(top, "token", None), getattr(top, "logprob", None)
        if not isinstance(token, str) or isinstance(logprob, bool):
            continue
        if not isinstance(logprob, int | float) or not token.startswith(prefix):
            continue
        found.append((token[len(prefix) :], float(logprob)))
    return found


@dataclass(frozen=True)
class SimulatedLine:
    """One ``token<TAB>digit`` line of an answer: the token text the model wrote and the
    expected value at its digit (None when the digit had no usable top log probabilities)."""

    token: str
    value: float | None
    sequence: int = 1
    """The record it answers, by its "Sequence N Tokens with Activations:" heading (1 before
    any heading)."""


def simulated_lines(content: Sequence[Any]) -> list[SimulatedLine]:
    """The ``token<TAB>digit`` lines of an answer, from its ``logprobs.content`` entries
    (objects with ``token``, ``bytes`` and ``top_logprobs`` of ``token``/``logprob``)."""
    # The non-empty tokens as bytes, laid end to end: (start offset, bytes, entry).
    laid: list[tuple[int, bytes, Any]] = []
    offset = 0
    for entry in content:
        piece = _entry_bytes(entry)
        if piece:
            laid.append((offset, piece, entry))
            offset += len(piece)
    starts = [start for start, _, _ in laid]
    stream = b"".join(piece for _, piece, _ in laid)
    think = stream.rfind(_THINK_END)
    begin = think + len(_THINK_END) if think >= 0 else 0
    separator = _LINE_END if _LINE_END in stream[begin:] else b"\n"

    def value_at(position: int) -> float | None:
        # The token that holds the byte at ``position`` (the one right after a tab).
        start, piece, entry = laid[bisect.bisect_right(starts, position) - 1]
        prefix = piece[: position - start].decode("utf-8", "replace")
        return expected_value(_alternatives(entry, prefix))

    lines: list[SimulatedLine] = []
    position = begin
    sequence = 1
    while position < len(stream):
        end = stream.find(separator, position)
        end = len(stream) if end < 0 else end
        start = position
        if separator == _LINE_END and lines and stream[start : start + 1] == b"\n":
            start += 1  # the newline after the previous line's mark
        tab = stream.rfind(b"\t", start, end)
        # A heading before the line's token starts the next record's lines.
        heading = None
        for found in _HEADING_RE.finditer(stream, start, tab if tab >= 0 else end):
            heading = found
        if heading is not None:
            sequence = int(heading.group(1))
            start = heading.end()
            while start < end and stream[start : start + 1] in (b"\n", b"\r"):
                start += 1
        if tab >= start and tab + 1 < end:
            token = stream[start:tab].decode("utf-8", "replace")
            lines.append(SimulatedLine(token, value_at(tab + 1), sequence))
        position = end + len(separator)
    return lines


def _comparable(token: str) -> str:
    token = token.strip()
    return END_OF_TEXT if token == END_OF_TEXT_REPLACEMENT else token


_EXTRA_LINES = 32
"""Lines read beyond twice the token count: a well-formed answer has one line per token."""
DIFFLIB_MAX_TOKENS = 128
"""Records up to this many tokens are aligned by difflib; longer ones by :func:`_in_step`
(difflib's worst case grows with the cube of the size: 1,000 tokens against a hostile
answer took over a minute)."""
_LOOKAHEAD = 16
"""How far :func:`_in_step` looks past a mismatch for the line or token it lost."""


def _in_step(wanted: Sequence[str], written: Sequence[str]) -> list[tuple[int, int]]:
    """Pairs (token index, line index) of equal texts, matched in order in one pass: on a
    mismatch, the nearer of the line's text among the next tokens (tokens skipped by the
    model) and the token's text among the next lines (extra lines) is taken, else both move
    on (a reworded line). At most ``_LOOKAHEAD`` steps per item: linear."""
    pairs: list[tuple[int, int]] = []
    i = j = 0
    while i < len(wanted) and j < len(written):
        if wanted[i] == written[j]:
            pairs.append((i, j))
            i, j = i + 1, j + 1
            continue
        skip_tokens = next(
            (k for k in range(1, _LOOKAHEAD) if wanted[i + k : i + k + 1] == [written[j]]), None
        )
        skip_lines = next(
            (k for k in range(1, _LOOKAHEAD) if written[j + k : j + k + 1] == [wanted[i]]), None
        )
        if skip_tokens is not None and (skip_lines is None or skip_tokens <= skip_lines):
            i += skip_tokens
        elif skip_lines is not None:
            j += skip_lines
        else:
            i, j = i + 1, j + 1
    return pairs


def align(tokens: Sequence[str], lines: Sequence[SimulatedLine]) -> list[float | None]:
    """The expected value for each of ``tokens`` from the answer's lines, matched in order;
    None for a token no line matches. Only the first ``2 * len(tokens) + 32`` lines are read
    (a hostile answer of 200,000 lines took seconds); an answer whose lines are the tokens is
    matched as it is, a record of up to :data:`DIFFLIB_MAX_TOKENS` tokens by difflib, a
    longer one by :func:`_in_step` (linear)."""
    lines = lines[: 2 * len(tokens) + _EXTRA_LINES]
    if not lines:
        return [None] * len(tokens)
    wanted = [_comparable(token) for token in tokens]
    written = [_comparable(line.token) for line in lines]
    if wanted and written[0] != wanted[0]:
        # A preamble before the first line ("Here are the activations:\n\nThe\t0").
        written[0] = _comparable(lines[0].token.rsplit("\n", 1)[-1])
    if written == wanted:
        return [line.value for line in lines]
    values: list[float | None] = [None] * len(tokens)
    if len(tokens) > DIFFLIB_MAX_TOKENS:
        for a, b in _in_step(wanted, written):
            values[a] = lines[b].value
        return values
    matcher = difflib.SequenceMatcher(None, wanted, written, autojunk=False)
    for block in matcher.get_matching_blocks():
        for k in range(block.size):
            values[block.a + k] = lines[block.b + k].value
    return values


@dataclass(frozen=True)
class EvOutcome:
    """What one record's logprob_ev call came to."""

    predictions: list[float] | None
    """One expected value per token, or None when the record is unanswered."""
    answered: bool
    """The provider answered (a chat completion came back)."""
    logprobs: bool
    """The answer carried top log probabilities."""
    error: AutoInterpError | None = None


def has_top_logprobs(content: Sequence[Any] | None) -> bool:
    """Whether ``logprobs.content`` holds any token with top alternatives (a provider's
    answer is not validated: anything but lists of them holds none)."""
    if not isinstance(content, list):
        return False
    tops = (getattr(entry, "top_logprobs", None) for entry in content)
    return any(isinstance(top, list) and len(top) > 0 for top in tops)


def _read_and_align(
    records: Sequence[Sequence[str]], content: Sequence[Any]
) -> list[list[float | None]]:
    lines = simulated_lines(content)
    if len(records) == 1:
        return [align(records[0], lines)]
    return [
        align(tokens, [line for line in lines if line.sequence == number])
        for number, tokens in enumerate(records, start=1)
    ]


async def simulate_ev(client: LLMClient, explanation: str, tokens: Sequence[str]) -> EvOutcome:
    """:func:`simulate_ev_batch` of one record."""
    return (await simulate_ev_batch(client, explanation, [tokens]))[0]


async def simulate_ev_batch(
    client: LLMClient, explanation: str, records: Sequence[Sequence[str]]
) -> list[EvOutcome]:
    """Ask in one call for the ``token<TAB>digit`` lines of ``records`` (one prompt, the
    few-shot preamble sent once; each record after its "Sequence N" heading), with top log
    probabilities, and read an expected value per token of each; a failed call leaves every
    record unanswered, carrying its error."""
    total = sum(len(tokens) for tokens in records)
    max_tokens = max(_MIN_MAX_TOKENS, _TOKENS_PER_LINE * total + 64 * len(records))
    try:
        response = await client.generate(
            simulation_ev_batch_messages(explanation, records),
            max_tokens=max_tokens,
            temperature=0.0,
            logprobs=True,
            top_logprobs=TOP_LOGPROBS,
        )
    except AutoInterpError as error:
        return [EvOutcome(None, answered=False, logprobs=False, error=error) for _ in records]
    content: Sequence[Any] | None = response.logprobs  # pyright: ignore[reportAssignmentType]
    if not has_top_logprobs(content):
        return [EvOutcome(None, answered=True, logprobs=False) for _ in records]
    assert content is not None
    # Reading the lines is linear in the answer's tokens, and difflib's work grows with
    # tokens times lines: a big answer or record is read and aligned off the loop.
    # (Lines are at most the answer's tokens, and align reads at most 2n + _EXTRA_LINES.)
    aligned = sum(len(t) * min(len(content), 2 * len(t) + _EXTRA_LINES) for t in records)
    values = await off_loop(len(content) + aligned, _read_and_align, records, content)
    outcomes = []
    for tokens, found in zip(records, values, strict=True):
        complete = [v for v in found if v is not None]
        predictions = complete if len(complete) == len(tokens) else None
        outcomes.append(EvOutcome(predictions, answered=True, logprobs=True))
    return outcomes
