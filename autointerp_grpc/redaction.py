"""Keeping secrets out of logs: the values to hide, and a logging filter that hides them.

Errors and log lines are written so they never contain a secret in the first place; this is
the second line of defence for text we do not write ourselves (a library's log line, a
traceback quoting an upstream error). :class:`Secrets` holds the values to hide: the shared
``SECRET`` for the life of the process, and each request's secret fields (those marked
``debug_redact`` in the proto, i.e. provider API keys) while the request runs.
:class:`RedactingFilter`, installed on the log handlers, replaces any of them in a record's
message and traceback.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections import Counter
from collections.abc import Iterator

from google.protobuf.message import Message

REDACTED = "[redacted]"
# Shorter values could collide with ordinary text; real keys and secrets are far longer.
MIN_SECRET_LENGTH = 4


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
    """The set of values that must never appear in a log line (thread-safe)."""

    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def add(self, value: str) -> None:
        if len(value) >= MIN_SECRET_LENGTH:
            with self._lock:
                self._counts[value] += 1

    def discard(self, value: str) -> None:
        with self._lock:
            if self._counts[value] <= 1:
                self._counts.pop(value, None)
            else:
                self._counts[value] -= 1

    @contextlib.contextmanager
    def holding(self, values: list[str]) -> Iterator[None]:
        """Hide ``values`` while the block runs (a request's keys while it is served)."""
        for value in values:
            self.add(value)
        try:
            yield
        finally:
            for value in values:
                if len(value) >= MIN_SECRET_LENGTH:
                    self.discard(value)

    def redact(self, text: str) -> str:
        with self._lock:
            values = sorted(self._counts, key=len, reverse=True)
        for value in values:
            if value in text:
                text = text.replace(value, REDACTED)
        return text


class RedactingFilter(logging.Filter):
    """Replaces every held secret in a record's message and exception text."""

    def __init__(self, secrets: Secrets) -> None:
        super().__init__()
        self._secrets = secrets
        self._formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = self._secrets.redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
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
