"""Faults, latency and per-request directives of the fake LLM.

Faults are set for the whole server (:meth:`FakeLLMServer.set_fault`, ``POST /_control``) or
for one request through ``@key=value`` suffixes of the model name
(``gpt-4o-mini@fault=429@latency=200``). The error bodies are shaped like OpenAI's and
OpenRouter's, so the ``openai`` SDK raises its own typed errors for them.

The modes (:data:`FAULT_MODES`):

* errors — "429" (with ``retry-after-ms``), "500", "bad_key" (401), "no_credits" (402);
* wrong answers, well formed — "garbage" (no parsable answer), "wrong_length" (one label
  short, a label far too long), "think" (a ``<think>`` block with a wrong answer first);
* no answer — "hang": holds the request until the client leaves (or 504 after ``MAX_HANG_S``);
* hostile HTTP 200s, answers that are not usable chat completions —
  "not_json" (``application/json`` whose body is a completion cut off half way, so not JSON),
  "choices_string" (``"choices": "oops"``), "no_message" (a choice without ``message``);
* log probabilities — "no_logprobs" (the right answer, without the log probabilities the
  request asked for, like a provider that does not return them; the ``@logprobs=0`` model
  directive does the same per request), "reject_logprobs" (HTTP 400 with
  :data:`LOGPROBS_REJECTED` for a request that asks for log probabilities, the right answer
  to one that does not, like a provider that refuses the parameters), "reject_json_schema"
  (HTTP 422 with :data:`JSON_SCHEMA_REJECTED` for a ``response_format`` of type
  ``json_schema``, the right answer to ``json_object`` or none, as llama-cpp-python's server
  answers);
* hostile but usable — "bad_usage" (the right answer; its ``usage`` counts are negative,
  huge (10**15) or strings, see :data:`BAD_USAGES`), "drip" (the right answer, its body sent
  ``DRIP_CHUNK_BYTES`` at a time every ``DRIP_INTERVAL_S`` seconds: no single read waits
  long, the whole answer takes minutes);
* a hostile provider (issue 17) — "huge_cost" (the right answer, ``usage.cost`` 1e308),
  "nested_body" (HTTP 200 whose body is ``[`` x 100000 + ``]`` x 100000), "huge_body" (the
  right completion after :data:`HUGE_BODY_BYTES` of JSON whitespace, chunked), "gzip_bomb" (the same
  with ``Content-Encoding: gzip``, :data:`BOMB_BYTES` decoded from about 200 KB sent),
  "lying_length" (a ``Content-Length`` of 1 TB over :data:`HUGE_BODY_BYTES` of whitespace,
  then the connection ends), "echo_key" (HTTP 400 whose message echoes the caller's API key
  exactly, JSON-escaped, upper-cased and split by whitespace, see :func:`echo_key_message`),
  "redirect_bomb" (HTTP 307 to the same path whose body is the "gzip_bomb"; the redirected
  request gets the right answer), "logprobs_flood" (the right answer with 100,000 per-token
  log probabilities, about 7 MB: under the body limit, heavy to decode).

The ``@answer=<name>`` directive replaces the content with one of :data:`HOSTILE_ANSWERS`.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "BAD_USAGES",
    "BODY_FAULTS",
    "BOMB_BYTES",
    "ERROR_FAULTS",
    "FAULT_MODES",
    "GARBAGE_ANSWER",
    "HOSTILE_ANSWERS",
    "HUGE_BODY_BYTES",
    "INVALID_KEY_ERROR",
    "JSON_SCHEMA_REJECTED",
    "LOGPROBS_REJECTED",
    "LONG_ANSWER",
    "MISSING_KEY_ERROR",
    "NO_CREDITS_ERROR",
    "RATE_LIMIT_ERROR",
    "SERVER_ERROR",
    "THINK_TRACE",
    "Directives",
    "auth_error",
    "bad_request",
    "echo_key_message",
    "error_body",
    "normalise_fault",
]

BODY_FAULTS: frozenset[str] = frozenset({"not_json", "choices_string", "no_message"})
"""The faults answered with HTTP 200 and a body that is not a usable chat completion."""

FAULT_MODES: frozenset[str] = frozenset(
    {
        "429",
        "500",
        "bad_key",
        "no_credits",
        "garbage",
        "wrong_length",
        "hang",
        "think",
        "bad_usage",
        "drip",
        "no_logprobs",
        "reject_logprobs",
        "reject_json_schema",
        "huge_cost",
        "nested_body",
        "huge_body",
        "gzip_bomb",
        "lying_length",
        "echo_key",
        "redirect_bomb",
        "logprobs_flood",
        *BODY_FAULTS,
    }
)
"""Fault modes accepted by :meth:`FakeLLMServer.set_fault`, ``/_control`` and ``@fault=``
(described in the module's docstring)."""

BAD_USAGES: tuple[dict[str, object], ...] = (
    {"prompt_tokens": -7, "completion_tokens": 10**15, "total_tokens": "n/a"},
    {"prompt_tokens": 10**15, "completion_tokens": "n/a", "total_tokens": -7},
    {"prompt_tokens": "n/a", "completion_tokens": -7, "total_tokens": 10**15},
)
"""The token counts of the "bad_usage" fault's answers, taken in turn (from the first each
time the server starts): every count is implausible, and each kind (negative, 10**15, a
string that is not a number) lands on every field over three answers."""

HUGE_BODY_BYTES = 64 * 1024 * 1024
"""Whitespace before the completion in a "huge_body" answer, and what "lying_length" sends."""
BOMB_BYTES = 200 * 1024 * 1024
"""Decoded size of a "gzip_bomb" answer (whitespace, then the completion)."""

HOSTILE_ANSWERS: dict[str, str] = {
    # An np_max_act-style label, an explanation line with a long run of spaces inside.
    "spaces": "Explanation: a" + " " * 2500 + "b",
    # A detection answer that opens 60,000 lists.
    "brackets": "[" * 60000,
    # A reasoning opener repeated, never closed.
    "think": "<think>" * 8000,
    # Lists nested 100,000 deep, closed again.
    "nested": "[" * 100000 + "]" * 100000,
    # An answer over the service's 256 KiB answer limit.
    "huge": "a" * (300 * 1024),
}
"""The answers of the ``@answer=<name>`` directive: model text built to stall or crash a
parser (issue 17 items 1 and 7)."""


def echo_key_message(key: str) -> str:
    """The "echo_key" fault's error message: the key exactly, JSON-escaped (``\\uXXXX`` for
    every character), upper-cased, split by a newline and by spaces."""
    escaped = "".join(f"\\u{ord(c):04x}" for c in key)
    half = len(key) // 2
    spaced = " ".join(key[i : i + 4] for i in range(0, len(key), 4))
    return (
        f'Incorrect API key provided: {key}. Request was {{"key": "{escaped}"}}; '
        f"KEY={key.upper()}; first half {key[:half]}\n{key[half:]}; spaced {spaced}"
    )


THINK_TRACE = (
    "Let me draft an answer before checking it against the examples.\n"
    "[EXPLANATION]: wrong trace explanation\n"
    "Draft labels: [0,1,0,1,0,1,0,1,0]\n"
    "That draft does not fit the examples, so the final answer is different."
)
"""The reasoning trace of the "think" fault and the ``@reasoning=1`` directive: its
explanation line and list are wrong on purpose, so parsing them shows up in tests."""

GARBAGE_ANSWER = "I'm not sure what you mean."
"""Every answer under the "garbage" fault."""
LONG_ANSWER = (
    "This feature seems to respond to many different things in these excerpts, and I would "
    "need far more context before I could say which of them matters most."
)
"""The np_max_act answer under the "wrong_length" fault: far longer than a short label."""

RATE_LIMIT_ERROR: dict[str, Any] = {
    "message": "Rate limit reached for requests. Please try again shortly.",
    "type": "requests",
    "param": None,
    "code": "rate_limit_exceeded",
}
SERVER_ERROR: dict[str, Any] = {
    "message": "The server had an error while processing your request.",
    "type": "server_error",
    "param": None,
    "code": None,
}
INVALID_KEY_ERROR: dict[str, Any] = {
    "message": "Invalid API key",
    "type": "invalid_request_error",
    "param": None,
    "code": "invalid_api_key",
}
MISSING_KEY_ERROR: dict[str, Any] = {
    "message": "Missing bearer authentication in header",
    "type": "invalid_request_error",
    "param": None,
    "code": "missing_api_key",
}
NO_CREDITS_ERROR: dict[str, Any] = {
    "message": "Insufficient credits: this account has no credits left",
    "type": "insufficient_quota",
    "param": None,
    "code": "insufficient_credits",
}

LOGPROBS_REJECTED: dict[str, Any] = {
    "message": "This model does not support logprobs or top_logprobs.",
    "type": "invalid_request_error",
    "param": "logprobs",
    "code": "unsupported_parameter",
}
"""The error of the "reject_logprobs" fault (HTTP 400)."""

JSON_SCHEMA_REJECTED: dict[str, Any] = {
    "message": "Input should be 'text' or 'json_object'",
    "type": "literal_error",
    "param": "response_format.type",
    "code": None,
}
"""The error of the "reject_json_schema" fault (HTTP 422), after llama-cpp-python's server's
validation error for ``response_format.type``."""

ERROR_FAULTS: dict[str, tuple[int, dict[str, Any]]] = {
    "429": (429, RATE_LIMIT_ERROR),
    "500": (500, SERVER_ERROR),
    "bad_key": (401, INVALID_KEY_ERROR),
    "no_credits": (402, NO_CREDITS_ERROR),
}
"""The faults answered with an error: HTTP status and error object."""


def error_body(error: dict[str, Any]) -> dict[str, Any]:
    """``{"error": {...}}``, the envelope OpenAI-compatible APIs put an error in."""
    return {"error": dict(error)}


def bad_request(message: str) -> dict[str, Any]:
    """The error object of a 400 answer."""
    return {"message": message, "type": "invalid_request_error", "param": None, "code": None}


def auth_error(authorization: str | None) -> tuple[int, dict[str, Any]] | None:
    """``(status, error)`` for an unacceptable ``Authorization`` header, else None.

    A missing bearer key is 401; keys starting with ``bad`` are invalid (401); keys starting
    with ``no-credits`` belong to an account without credits (402). The key is never echoed.
    """
    scheme, _, key = (authorization or "").partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key:
        return 401, MISSING_KEY_ERROR
    if key.startswith("bad"):
        return 401, INVALID_KEY_ERROR
    if key.startswith("no-credits"):
        return 402, NO_CREDITS_ERROR
    return None


def normalise_fault(mode: object) -> str | None:
    """A fault mode from :data:`FAULT_MODES`, or None for none/null/off/empty.

    ``ValueError`` for anything else.
    """
    if mode is None:
        return None
    text = str(mode).strip()
    if text.lower() in ("", "none", "null", "off"):
        return None
    if text not in FAULT_MODES:
        raise ValueError(f"unknown fault mode {text!r}; expected one of {sorted(FAULT_MODES)}")
    return text


def _flag(value: str, name: str) -> bool:
    text = value.strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"{name} directive {value!r} is not a boolean")


class Directives:
    """What the ``@key=value`` suffixes of a model name ask for.

    ``@fault=<mode>`` (``none`` clears a server-wide fault for this request),
    ``@latency=<ms>``, ``@reasoning=1`` (the trace in ``message.reasoning``) and
    ``@logprobs=0`` (ignore ``logprobs: true``, like a provider without log probabilities),
    ``@answer=<name>`` (the content is :data:`HOSTILE_ANSWERS` ``[name]``).
    ``ValueError`` for an unknown or malformed directive.
    """

    __slots__ = ("answer", "fault", "fault_set", "latency_s", "logprobs", "model", "reasoning")

    def __init__(self, model: str) -> None:
        bare, *parts = model.split("@")
        self.model = bare
        self.fault: str | None = None
        self.fault_set = False
        self.latency_s: float | None = None
        self.reasoning = False
        self.logprobs = True
        self.answer: str | None = None
        for part in parts:
            key, sep, value = part.partition("=")
            key = key.strip().lower()
            if not sep:
                raise ValueError(f"model directive {part!r} is not key=value")
            if key == "fault":
                self.fault = normalise_fault(value)
                self.fault_set = True
            elif key in ("latency", "latency_ms"):
                try:
                    self.latency_s = max(0.0, float(value) / 1000.0)
                except ValueError:
                    raise ValueError(f"latency directive {value!r} is not a number") from None
            elif key == "reasoning":
                self.reasoning = _flag(value, "reasoning")
            elif key == "logprobs":
                self.logprobs = _flag(value, "logprobs")
            elif key == "answer":
                if value not in HOSTILE_ANSWERS:
                    raise ValueError(
                        f"answer directive {value!r} is not one of {sorted(HOSTILE_ANSWERS)}"
                    )
                self.answer = HOSTILE_ANSWERS[value]
            else:
                raise ValueError(f"unknown model directive {key!r}")
