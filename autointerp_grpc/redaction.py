"""Keeping secrets out of logs: the values to hide, and a logging filter that hides them.

Errors and log lines are written so they never contain a secret in the first place; this is
the second line of defence for text we do not write ourselves (a library's log line, a
traceback quoting an upstream error). :class:`Secrets` holds the values to hide: the shared
``SECRET`` for the life of the process, and each request's secret fields (those marked
``debug_redact`` in the proto, i.e. provider API keys) while the request runs — including
its own log line. A request's keys are held in its own context (a context variable), so they
are hidden in the lines that request logs and never touch another request's lines: a caller
cannot make the redactor erase text from other lines by sending a key such as ``status=``.
:class:`RedactingFilter`, installed on the log handlers, replaces each held value, exactly,
in a record's message, its arguments (kept as arguments, so formatters that read them, like
uvicorn's access formatter, still work), its request fields and its traceback.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import threading
from collections.abc import Iterator

from google.protobuf.message import Message

REDACTED = "[redacted]"
# Shorter values could collide with ordinary text; real keys and secrets are far longer.
MIN_SECRET_LENGTH = 4
# Attributes of a record (set through ``extra``) that may carry a caller's text.
REDACTED_FIELDS = ("request_id", "rpc", "status", "detail")

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
        for value in sorted(values, key=len, reverse=True):
            if value in text:
                text = text.replace(value, REDACTED)
        return text


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
