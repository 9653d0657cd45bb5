"""The fake LLM's answer to the expected-value simulation prompt [simulation_ev].

A literal model: for each token of the prompt's last ``token<TAB>\u0f17`` list it writes
``token<TAB>digit\u0f17`` and a newline, where the digit is 10 if the token (stripped,
lowercased) contains one of the explanation's keywords (the rule of the fake's JSON
simulation and detection judges) and 0 otherwise. Its log probabilities are shaped like
OpenAI's ``logprobs.content``: one entry per generated token with its UTF-8 ``bytes`` and
``top_logprobs``. The subject token's text comes in word pieces, the tab alone, the digit
alone, the \u0f17 mark as two byte-level tokens (``bytes:\\xe0\\xbc`` and ``bytes:\\x97``, as
a byte-level tokenizer splits it) and the newline alone. At each digit the top alternatives
are the digits of :data:`MATCH_DIGITS` where the explanation describes the token and of
:data:`OTHER_DIGITS` where it does not, with one non-digit alternative in each, so the
expected value is about 9.4 on a described token and about 0.2 elsewhere.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

__all__ = [
    "MATCH_DIGITS",
    "OTHER_DIGITS",
    "EvAnswer",
    "ev_answer",
]

MATCH_DIGITS: tuple[tuple[str, float], ...] = (
    ("10", 0.80),
    ("9", 0.08),
    ("8", 0.04),
    ("0", 0.03),
    ("7", 0.02),
    ("\t", 0.02),
    ("1", 0.01),
)
"""The digit's alternatives (token, probability) on a token the explanation describes."""
OTHER_DIGITS: tuple[tuple[str, float], ...] = (
    ("0", 0.90),
    ("1", 0.04),
    ("2", 0.02),
    (" ", 0.02),
    ("10", 0.01),
    ("3", 0.01),
)
"""The digit's alternatives on any other token."""

_LINE_END_PIECES: tuple[tuple[str, bytes], ...] = (
    ("bytes:\\xe0\\xbc", b"\xe0\xbc"),
    ("bytes:\\x97", b"\x97"),
)
"""The \u0f17 mark as a byte-level tokenizer writes it: two tokens, neither a whole character."""
_PIECE_RE = re.compile(r"\s*[\w']+|\s*[^\w\s]|\s+")


def _entry(
    token: str, logprob: float, top: list[dict[str, Any]], raw: bytes | None = None
) -> dict[str, Any]:
    data = token.encode() if raw is None else raw
    return {"token": token, "logprob": logprob, "bytes": list(data), "top_logprobs": top}


def _certain(token: str, raw: bytes | None = None) -> dict[str, Any]:
    data = token.encode() if raw is None else raw
    return _entry(token, 0.0, [{"token": token, "logprob": 0.0, "bytes": list(data)}], raw)


def _digit(matches: bool) -> dict[str, Any]:
    alternatives = MATCH_DIGITS if matches else OTHER_DIGITS
    top = [
        {"token": token, "logprob": math.log(p), "bytes": list(token.encode())}
        for token, p in sorted(alternatives, key=lambda a: -a[1])
    ]
    return _entry(top[0]["token"], top[0]["logprob"], top)


@dataclass(frozen=True)
class EvAnswer:
    """The answer's lines (text) and their ``logprobs.content`` entries, per line."""

    lines: tuple[str, ...]
    entries: tuple[tuple[dict[str, Any], ...], ...]

    def text(self, drop_last: bool = False) -> str:
        """The message content (one line fewer with ``drop_last``)."""
        return "".join(self.lines[:-1] if drop_last else self.lines)

    def logprobs(self, top_n: int | None, drop_last: bool = False) -> list[dict[str, Any]]:
        """``logprobs.content`` of :meth:`text`, each token keeping its ``top_n`` most likely
        alternatives (all when None)."""
        chosen = self.entries[:-1] if drop_last else self.entries
        keep = None if top_n is None else max(int(top_n), 0)
        return [
            {**entry, "top_logprobs": entry["top_logprobs"][:keep]}
            for line in chosen
            for entry in line
        ]


def ev_answer(sequences: list[list[str]], keywords: list[str]) -> EvAnswer:
    """The fake's ``token<TAB>digit`` lines for the tokens of each sequence asked for: the
    digit is 10 where a token (stripped, lowercased) contains one of ``keywords``, else 0 (see
    the module docstring). Each sequence after the first follows its heading line
    ("Sequence 2 Tokens with Activations:"), as the prompt asks."""
    lines, entries = [], []
    for number, tokens in enumerate(sequences, start=1):
        if number > 1:
            heading = f"\nSequence {number} Tokens with Activations:\n"
            lines.append(heading)
            entries.append(tuple(_certain(piece) for piece in _PIECE_RE.findall(heading)))
        for token in tokens:
            matches = any(keyword in token.strip().lower() for keyword in keywords)
            digit = _digit(matches)
            lines.append(f"{token}\t{digit['token']}\u0f17\n")
            line = [_certain(piece) for piece in _PIECE_RE.findall(token)]
            line += [_certain("\t"), digit]
            line += [_certain(text, raw) for text, raw in _LINE_END_PIECES]
            line.append(_certain("\n"))
            entries.append(tuple(line))
    return EvAnswer(tuple(lines), tuple(entries))
