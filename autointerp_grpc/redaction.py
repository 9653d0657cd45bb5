"""Keeping secrets out of logs: the values to hide, and a logging filter that hides them.

Errors and log lines are written so they never contain a secret in the first place; this is
the second line of defence for text we do not write ourselves (a library's log line, a
traceback quoting an upstream error). :class:`Secrets` holds the values to hide: the shared
``SECRET`` for the life of the process, and each request's secret fields (those marked
``debug_redact`` in the proto, i.e. provider API keys) while the request runs — including
its own log line. A request's keys are held in its own context (a context variable), so they
are hidden in the lines that request logs and never touch another request's lines: a caller
cannot make the redactor erase text from other lines by sending a key such as ``status=``.
:class:`RedactingFilter`, installed on the log handlers, replaces each held value in a
record's message, its arguments (kept as arguments, so formatters that read them, like
uvicorn's access formatter, still work), its request fields and its traceback.

A value is found in any of the forms text echoing it may take (:func:`redact_value`): exactly,
in another letter case, JSON-escaped (``\\u0073`` for ``s``, ``\\/`` for ``/``) and split
by whitespace or escaped line breaks anywhere inside.
"""

from __future__ import annotations

import bisect
import contextlib
import contextvars
import logging
import re
import threading
from collections.abc import Iterator

from google.protobuf.message import Message

REDACTED = "[redacted]"
# Shorter values could collide with ordinary text; real keys and secrets are far longer.
MIN_SECRET_LENGTH = 4
# Attributes of a record (set through ``extra``) that may carry a caller's text.
REDACTED_FIELDS = ("request_id", "rpc", "status", "detail")

# What may stand between or for a value's characters in text that echoes it: whitespace, a
# run of backslashes (one escape level or several) and what it escapes: a line break or tab
# (dropped), a character as \uXXXX, a slash or quote. Every token starts with a character
# no other token's repetition can take, so the scan is linear in the text.
_NOISE = re.compile(r"\s+|\\+(?:u[0-9a-fA-F]{4}|[nrt/\"])?")
_WHITESPACE = re.compile(r"\s+")
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


class _Canonical:
    """``text`` with whitespace and escaped line breaks dropped, JSON escapes decoded and
    ASCII letters lowered (:attr:`text`), and the map back: each piece of it is either plain
    text (one to one) or one decoded escape (one character for its whole token)."""

    def __init__(self, text: str) -> None:
        pieces: list[str] = []
        self._at: list[int] = []  # where each piece starts in the canonical text
        self._source: list[int] = []  # where it starts in the original text
        self._size: list[int] = []  # its length in the original text
        self._plain: list[bool] = []
        length = 0
        position = 0

        def keep(piece: str, start: int, size: int, plain: bool) -> None:
            nonlocal length
            pieces.append(piece)
            self._at.append(length)
            self._source.append(start)
            self._size.append(size)
            self._plain.append(plain)
            length += len(piece)

        for noise in _NOISE.finditer(text):
            if noise.start() > position:
                plain = text[position : noise.start()]
                keep(plain.translate(_ASCII_LOWER), position, len(plain), True)
            token = noise.group().lstrip("\\")
            if token.startswith("u"):
                decoded = chr(int(token[1:], 16)).translate(_ASCII_LOWER)
                keep(decoded, noise.start(), noise.end() - noise.start(), False)
            elif token in ("/", '"'):
                keep(token, noise.start(), noise.end() - noise.start(), False)
            position = noise.end()
        if position < len(text):
            plain = text[position:]
            keep(plain.translate(_ASCII_LOWER), position, len(plain), True)
        self.text = "".join(pieces)

    def span(self, start: int, end: int) -> tuple[int, int]:
        """The original text's span for the canonical span ``[start, end)`` (not empty)."""
        first = bisect.bisect_right(self._at, start) - 1
        last = bisect.bisect_right(self._at, end - 1) - 1
        begin = self._source[first] + (start - self._at[first] if self._plain[first] else 0)
        if self._plain[last]:
            finish = self._source[last] + (end - 1 - self._at[last]) + 1
        else:
            finish = self._source[last] + self._size[last]
        return begin, finish


def redact_values(text: str, values: list[str] | tuple[str, ...]) -> str:
    """``text`` with every occurrence of each of ``values`` replaced by :data:`REDACTED`:
    exactly, in any ASCII letter case, JSON-escaped (at any escape depth), or split by
    whitespace or escaped line breaks.

    Linear in ``len(text)`` for each value (one fixed-pattern scan of the text and
    ``str.find``); a value shorter than :data:`MIN_SECRET_LENGTH` (whitespace left out) is
    only replaced exactly."""
    needles: list[str] = []
    for value in sorted(values, key=len, reverse=True):
        if value:
            text = text.replace(value, REDACTED)
            needle = "".join(value.split()).translate(_ASCII_LOWER)
            if len(needle) >= MIN_SECRET_LENGTH:
                needles.append(needle)
    if not needles:
        return text
    if "\\" not in text:
        # No escapes: the canonical text is the text without whitespace, lowered (all in C);
        # only a text that holds a value needs the piece by piece map back.
        plain = _WHITESPACE.sub("", text).translate(_ASCII_LOWER)
        if not any(needle in plain for needle in needles):
            return text
    canonical = _Canonical(text)
    spans: list[tuple[int, int]] = []
    for needle in needles:
        found = canonical.text.find(needle)
        while found >= 0:
            spans.append(canonical.span(found, found + len(needle)))
            found = canonical.text.find(needle, found + len(needle))
    if not spans:
        return text
    kept: list[str] = []
    position = 0
    for start, end in sorted(spans):
        if end <= position:
            continue
        if start >= position:
            kept.append(text[position:start])
            kept.append(REDACTED)
        position = end
    kept.append(text[position:])
    return "".join(kept)


def redact_value(text: str, value: str) -> str:
    """``text`` with ``value`` redacted in every form :func:`redact_values` finds."""
    return redact_values(text, (value,))


_request_values: contextvars.ContextVar[tuple[str, ...]] = contextvars.ContextVar(
    "autointerp_request_secrets", default=()
)


def secret_fields(message: Message) -> list[str]:
    """Values of every ``debug_redact`` string field in ``message``, at any depth."""
    values: list[str] = []
    for field, value in message.ListFields():
        if field.message_type is not None:
            items = value if field.is_repeated else [value]
            for item in items:
                if isinstance(item, Message):
                    values.extend(secret_fields(item))
        elif field.GetOptions().debug_redact and isinstance(value, str):
            values.append(value)
    return values


class Secrets:
    """The values that must never appear in a log line: process-wide ones (thread-safe) and
    the current request's (per context)."""

    def __init__(self) -> None:
        self._values: set[str] = set()
        self._lock = threading.Lock()

    def add(self, value: str) -> None:
        """Hide ``value`` everywhere, for the life of the process (the shared SECRET)."""
        if len(value) >= MIN_SECRET_LENGTH:
            with self._lock:
                self._values.add(value)

    @contextlib.contextmanager
    def holding(self, values: list[str]) -> Iterator[None]:
        """Hide ``values`` in whatever this context logs while the block runs (a request's
        keys, while it is served and logged)."""
        kept = tuple(v for v in values if len(v) >= MIN_SECRET_LENGTH)
        token = _request_values.set(_request_values.get() + kept)
        try:
            yield
        finally:
            # A stream ends in another task than it began (its context is a copy that holds
            # the values too, and dies with it): nothing to reset there.
            with contextlib.suppress(ValueError):
                _request_values.reset(token)

    def redact(self, text: str) -> str:
        with self._lock:
            values = [*self._values, *_request_values.get()]
        return redact_values(text, values)


class RedactingFilter(logging.Filter):
    """Replaces every held secret in a record's message, arguments, request fields and
    exception text."""

    def __init__(self, secrets: Secrets) -> None:
        super().__init__()
        self._secrets = secrets
        self._formatter = logging.Formatter()

    def _clean(self, value: object) -> object:
        return self._secrets.redact(value) if isinstance(value, str) else value

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self._clean(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(self._clean(a) for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {k: self._clean(v) for k, v in record.args.items()}
        for name in REDACTED_FIELDS:
            if isinstance(getattr(record, name, None), str):
                setattr(record, name, self._clean(getattr(record, name)))
        if record.exc_info and not record.exc_text:
            record.exc_text = self._formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self._secrets.redact(record.exc_text)
        return True


def install(
    secrets: Secrets,
    logger_names: tuple[str, ...] = ("", "uvicorn", "uvicorn.error", "uvicorn.access"),
) -> None:
    """Put a RedactingFilter on every handler of the given loggers (once)."""
    for name in logger_names:
        for handler in logging.getLogger(name).handlers:
            if not any(isinstance(f, RedactingFilter) for f in handler.filters):
                handler.addFilter(RedactingFilter(secrets))
