"""A fake OpenAI-compatible chat-completions server for tests, benchmarks and client examples.

It is a real HTTP/1.1 server on localhost (standard library only, plus this package's pure
:mod:`autointerp_grpc.prompts`), so the real ``openai`` client path is exercised end to end.
It recognises every prompt the service sends and answers deterministically; the request kind
(in brackets) is what :meth:`FakeLLMServer.stats` counts:

* delphi's explanation prompt [explain] gets ``[EXPLANATION]: Mentions of "X", "Y"`` built
  from the most frequent ``<<highlighted>>`` spans of the last user message;
* delphi's detection and fuzzing prompts [detection, fuzz] get a list such as ``[1,0,1]``, one
  entry per ``Example N:``, decided by whether the explanation's keywords occur in the example
  (detection) or in every highlighted span (fuzzing); with ``logprobs: true`` per-token
  logprobs come back too;
* the OpenAI-style ``token<TAB>activation`` prompt [oai_token_act_pair] gets a phrase naming
  the most active tokens, e.g. ``the token "cat"``;
* the Neuronpedia-style prompts [np_max_act, np_max_act_logits] get a 1-6 word label built
  from the most frequent ``[[marked]]`` token;
* the recall judge [recall] gets ``{"answers": [...]}``, true where an explanation keyword
  occurs in the text;
* delphi's JSON simulation prompt [simulation] gets the same JSON back with each activation 10
  where the token contains a keyword of ``to_find``, else 0;
* delphi's intruder prompt [intruder] gets ``[RESPONSE]: i`` for the example whose
  highlighted spans share the fewest items with the other examples' spans;
* anything else [other] gets ``I am a fake model.``.

``response_format`` is accepted and ignored (the JSON answers are JSON anyway). ``usage``
carries an OpenRouter-style ``cost``.

Faults ("429", "500", "bad_key", "no_credits", "garbage", "wrong_length", "hang", "think")
and latency can be injected through the constructor and setters, per request through the
model name (``gpt-4o-mini@fault=429@latency=200``) or at runtime with ``POST /_control``.
"think" prepends a ``<think>`` block holding a wrong ``[EXPLANATION]:`` line and a wrong list
to the correct answer, as reasoning models do; the ``@reasoning=1`` model directive instead
returns that trace in ``choices[0].message.reasoning`` (as OpenRouter does) with a clean
content. ``@logprobs=0`` makes it ignore ``logprobs: true``, like a provider without log
probabilities. ``GET /_stats`` and :meth:`FakeLLMServer.stats` report request counts. API keys are
never logged or echoed.

Run standalone with ``python -m autointerp_grpc.fake_llm --port 8900``.
"""

from __future__ import annotations

import argparse
import collections
import itertools
import json
import logging
import math
import re
import select
import signal
import socket
import threading
import time
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from autointerp_grpc.prompts import (
    FORMAT_NP_MAX_ACT,
    FORMAT_NP_MAX_ACT_LOGITS,
    FORMAT_OAI_TOKEN_ACT_PAIR,
    FORMAT_RECALL_JUDGE,
    format_marker,
)

__all__ = [
    "FAULT_MODES",
    "REQUEST_KINDS",
    "THINK_TRACE",
    "FakeLLMServer",
    "classify_answer",
    "explain_answer",
    "intruder_answer",
    "main",
    "np_answer",
    "oai_answer",
    "parse_classification_prompt",
    "recall_answer",
    "request_kind",
    "simulation_answer",
]

logger = logging.getLogger(__name__)

FAULT_MODES: frozenset[str] = frozenset(
    {"429", "500", "bad_key", "no_credits", "garbage", "wrong_length", "hang", "think"}
)
"""Fault modes accepted by :meth:`FakeLLMServer.set_fault`, ``/_control`` and ``@fault=``."""

STOPWORDS: frozenset[str] = frozenset(
    (
        *("a", "an", "the", "of", "in", "on", "at", "by", "as", "and", "or", "to", "for"),
        *("with", "from", "into", "about", "is", "are", "was", "were", "be", "been"),
        *("that", "this", "these", "those", "it", "its", "word", "words", "token", "tokens"),
        *("mention", "mentions", "mentioned", "related", "text", "texts", "phrase", "phrases"),
    )
)
"""Words of an explanation that never count as keywords."""

REQUEST_KINDS: tuple[str, ...] = (
    "explain",
    "detection",
    "fuzz",
    "oai_token_act_pair",
    "np_max_act",
    "np_max_act_logits",
    "recall",
    "simulation",
    "intruder",
    "other",
)
"""Every kind :func:`request_kind` returns (the keys of ``stats()["by_kind"]``)."""

THINK_TRACE = (
    "Let me draft an answer before checking it against the examples.\n"
    "[EXPLANATION]: wrong trace explanation\n"
    "Draft labels: [0,1,0,1,0,1,0,1,0]\n"
    "That draft does not fit the examples, so the final answer is different."
)
"""The reasoning trace of the "think" fault and the ``@reasoning=1`` directive: its
explanation line and list are wrong on purpose, so parsing them shows up in tests."""

GARBAGE_ANSWER = "I'm not sure what you mean."
LONG_ANSWER = (
    "This feature seems to respond to many different things in these excerpts, and I would "
    "need far more context before I could say which of them matters most."
)
"""The np_max_act answer under the "wrong_length" fault: far longer than a short label."""
OTHER_ANSWER = "I am a fake model."
NO_PATTERN = "No clear pattern"
MAX_HANG_S = 600.0
_POLL_S = 0.05
_MAX_RECORDS = 1000
_MAX_LISTED_SPANS = 3
COST_PER_TOKEN = 1e-6
"""The fake price reported as ``usage.cost`` (USD per prompt or completion token)."""

_HIGHLIGHT_RE = re.compile(r"<<(.*?)>>", re.DOTALL)
_KEYWORD_RE = re.compile(r"[a-z0-9']+")
_CLASSIFICATION_RE = re.compile(
    r"Latent explanation:[ \t]*(?P<explanation>.*?)\s*\n\s*"
    r"Te(?:x|s)t examples:[ \t]*\n?(?P<examples>.*)",
    re.DOTALL,
)
_EXAMPLE_MARKER_RE = re.compile(r"^Example (\d+):", re.MULTILINE)
_TEXT_MARKER_RE = re.compile(r"^Text (\d+):", re.MULTILINE)
_TOKEN_ACT_LINE_RE = re.compile(r"^(.*)\t(-?\d+(?:\.\d+)?)[ \t]*$", re.MULTILINE)
_MARKED_RE = re.compile(r"\[\[(.*?)\]\]")
_RECALL_EXPLANATION_RE = re.compile(r"^Explanation:[ \t]*(.*)$", re.MULTILINE)
_MAX_NP_TOKEN_WORDS = 3
_ANSWER_TOKEN_RE = re.compile(r"\s*[\w']+|\s*[^\w\s]|\s+")

_RATE_LIMIT_ERROR = {
    "message": "Rate limit reached for requests. Please try again shortly.",
    "type": "requests",
    "param": None,
    "code": "rate_limit_exceeded",
}
_SERVER_ERROR = {
    "message": "The server had an error while processing your request.",
    "type": "server_error",
    "param": None,
    "code": None,
}
_INVALID_KEY_ERROR = {
    "message": "Invalid API key",
    "type": "invalid_request_error",
    "param": None,
    "code": "invalid_api_key",
}
_MISSING_KEY_ERROR = {
    "message": "Missing bearer authentication in header",
    "type": "invalid_request_error",
    "param": None,
    "code": "missing_api_key",
}
_NO_CREDITS_ERROR = {
    "message": "Insufficient credits: this account has no credits left",
    "type": "insufficient_quota",
    "param": None,
    "code": "insufficient_credits",
}


# --------------------------------------------------------------------------------------------
# Pure helpers: prompt recognition and answers
# --------------------------------------------------------------------------------------------


def _message_text(message: Any) -> str:
    """The text of one chat message; list-of-parts content is joined."""
    if not isinstance(message, dict):
        return ""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [
            part.get("text", "")
            for part in content
            if isinstance(part, dict) and isinstance(part.get("text"), str)
        ]
        return "".join(parts)
    return ""


def highlighted_spans(text: str) -> list[str]:
    """The ``<<...>>`` spans of ``text``, whitespace-stripped, empty ones dropped."""
    spans = (span.strip() for span in _HIGHLIGHT_RE.findall(text))
    return [span for span in spans if span]


def explain_answer(last_user_message: str) -> str:
    """The fake explainer's answer to delphi's explanation prompt.

    Lists up to three distinct highlighted spans, most frequent first (ties keep first
    occurrence), as ``[EXPLANATION]: Mentions of "X", "Y"``.
    """
    spans = highlighted_spans(last_user_message)
    if not spans:
        return f"[EXPLANATION]: {NO_PATTERN}"
    counts = collections.Counter(spans)  # keeps first-occurrence order; sorted() is stable
    ranked = sorted(counts, key=lambda span: -counts[span])
    listed = ", ".join(f'"{span}"' for span in ranked[:_MAX_LISTED_SPANS])
    return f"[EXPLANATION]: Mentions of {listed}"


def explanation_keywords(explanation: str) -> list[str]:
    """Lowercase words of ``explanation`` minus :data:`STOPWORDS`, deduplicated in order."""
    words = _KEYWORD_RE.findall(explanation.lower())
    seen: dict[str, None] = {}
    for word in words:
        stripped = word.strip("'")
        if stripped and stripped not in STOPWORDS:
            seen.setdefault(stripped, None)
    return list(seen)


def _split_examples(block: str, marker_re: re.Pattern[str] = _EXAMPLE_MARKER_RE) -> list[str]:
    """Split ``Example N:`` blocks; numbers must run consecutively so text can't fake a marker."""
    markers = list(marker_re.finditer(block))
    if not markers:
        return []
    accepted: list[re.Match[str]] = []
    expected = int(markers[0].group(1))
    for marker in markers:
        if int(marker.group(1)) == expected:
            accepted.append(marker)
            expected += 1
    texts = []
    for current, following in itertools.zip_longest(accepted, accepted[1:]):
        end = following.start() if following is not None else len(block)
        text = block[current.end() : end]
        texts.append(text.removesuffix("\n") if following is not None else text.rstrip("\n"))
    return texts


def parse_classification_prompt(last_user_message: str) -> tuple[str, list[str]] | None:
    """``(explanation, example texts)`` of a delphi classifier prompt, or None if it isn't one."""
    match = _CLASSIFICATION_RE.search(last_user_message)
    if match is None:
        return None
    return match.group("explanation").strip(), _split_examples(match.group("examples"))


def is_fuzz_system_prompt(system_prompt: str) -> bool:
    """Fuzzing's system prompt talks about ``<<``/``>>`` highlighting; detection's does not."""
    return "<<" in system_prompt and ">>" in system_prompt


def _detect(keywords: list[str], text: str) -> int:
    plain = text.replace("<<", "").replace(">>", "").lower()
    return int(any(keyword in plain for keyword in keywords))


def _fuzz(keywords: list[str], text: str) -> int:
    spans = [span.lower() for span in _HIGHLIGHT_RE.findall(text)]
    if not spans:
        return 0
    return int(all(any(keyword in span for keyword in keywords) for span in spans))


def classify_answer(system_prompt: str, last_user_message: str) -> list[int]:
    """The fake classifier's 0/1 labels, one per example; [] if the message isn't a classifier
    prompt. Fuzzing vs detection is decided from ``system_prompt``."""
    parsed = parse_classification_prompt(last_user_message)
    if parsed is None:
        return []
    explanation, examples = parsed
    keywords = explanation_keywords(explanation)
    if not keywords:
        return [0] * len(examples)
    judge = _fuzz if is_fuzz_system_prompt(system_prompt) else _detect
    return [judge(keywords, text) for text in examples]


def _ranked(counts: dict[str, float]) -> list[str]:
    """Keys by value, highest first; ties keep insertion (first occurrence) order."""
    return sorted(counts, key=lambda key: -counts[key])


def oai_answer(last_user_message: str) -> str:
    """The fake answer to the OpenAI-style ``token<TAB>activation`` prompt.

    Names up to three distinct stripped tokens whose best activation is at least half the
    largest one, highest first: ``the token "cat"`` or ``the tokens "cat", "dog"``.
    """
    best: dict[str, float] = {}
    for match in _TOKEN_ACT_LINE_RE.finditer(last_user_message):
        token, value = match.group(1).strip(), float(match.group(2))
        if token and value > 0:
            best[token] = max(best.get(token, 0.0), value)
    if not best:
        return NO_PATTERN.lower()
    top = max(best.values())
    chosen = [token for token in _ranked(best) if best[token] * 2 >= top][:_MAX_LISTED_SPANS]
    listed = ", ".join(f'"{token}"' for token in chosen)
    return f"the token {listed}" if len(chosen) == 1 else f"the tokens {listed}"


def _promoted_tokens(last_user_message: str) -> list[str]:
    """The bullet items of the np prompt's "promotes" section, quotes stripped."""
    items: list[str] = []
    in_section = False
    for line in last_user_message.splitlines():
        if "promotes" in line.lower() and line.rstrip().endswith(":"):
            in_section = True
        elif in_section and line.startswith("- "):
            item = line[2:].strip().strip('"').strip()
            if item:
                items.append(item)
        elif in_section:
            break
    return items


def np_answer(last_user_message: str, logits: bool = False) -> str:
    """The fake answer to the Neuronpedia-style prompts: at most six words containing the most
    frequent ``[[marked]]`` token (stripped), e.g. ``mentions of cat``; with ``logits`` and a
    promoted-token section, ``cat predicting dog``."""
    marked = [span.strip() for span in _MARKED_RE.findall(last_user_message)]
    counts = collections.Counter(span for span in marked if span)
    if not counts:
        return NO_PATTERN.lower()
    top = " ".join(_ranked(dict(counts))[0].split()[:_MAX_NP_TOKEN_WORDS])
    promoted = _promoted_tokens(last_user_message) if logits else []
    if promoted:
        return f"{top} predicting " + " ".join(promoted[0].split()[:_MAX_NP_TOKEN_WORDS])
    return f"mentions of {top}"


def parse_recall_prompt(last_user_message: str) -> tuple[str, list[str]] | None:
    """``(explanation, texts)`` of a recall-judge prompt, or None if it isn't one."""
    explanation = _RECALL_EXPLANATION_RE.search(last_user_message)
    if explanation is None:
        return None
    texts = _split_examples(last_user_message[explanation.end() :], _TEXT_MARKER_RE)
    # Each text is one line; the last one is followed by the closing instruction.
    return explanation.group(1).strip(), [text.split("\n", 1)[0].strip() for text in texts]


def recall_answer(last_user_message: str) -> list[bool] | None:
    """The fake judge's booleans: true where one of the explanation's keywords occurs in the
    text (case-insensitive); None if the message isn't a recall prompt."""
    parsed = parse_recall_prompt(last_user_message)
    if parsed is None:
        return None
    explanation, texts = parsed
    keywords = explanation_keywords(explanation)
    return [any(keyword in text.lower() for keyword in keywords) for text in texts]


def _simulation_request(last_user_message: str) -> dict[str, Any] | None:
    """The JSON object of delphi's simulation prompt (``to_find``, ``document``,
    ``activations``), or None if the message isn't one."""
    text = last_user_message.strip()
    if not text.startswith("{"):
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("to_find"), str):
        return None
    entries = data.get("activations")
    if not isinstance(entries, list) or not all(
        isinstance(entry, dict) and isinstance(entry.get("token"), str) for entry in entries
    ):
        return None
    return data


def simulation_answer(last_user_message: str, drop_last: bool = False) -> str | None:
    """delphi's simulation JSON with each activation filled in: 10 where the token (stripped,
    lowercased) contains a keyword of ``to_find``, else 0; tokens verbatim, one entry per
    token (one fewer with ``drop_last``). None if the message isn't a simulation prompt."""
    data = _simulation_request(last_user_message)
    if data is None:
        return None
    keywords = explanation_keywords(data["to_find"])
    activations = []
    for entry in data["activations"]:
        token = entry["token"].strip().lower()
        hit = any(keyword in token for keyword in keywords)
        activations.append({"token": entry["token"], "activation": 10 if hit else 0})
    if drop_last:
        activations = activations[:-1]
    answer = {
        "to_find": data["to_find"],
        "document": data.get("document", ""),
        "activations": activations,
    }
    return json.dumps(answer, ensure_ascii=False)


def is_intruder_system_prompt(system_prompt: str) -> bool:
    """delphi's intruder prompt asks for ``[RESPONSE]:`` and talks about an intruder."""
    return "[RESPONSE]:" in system_prompt and "intruder" in system_prompt.lower()


def intruder_examples(last_user_message: str) -> list[str]:
    """The ``Example N:`` texts of delphi's intruder prompt (numbered from 0, no space)."""
    return _split_examples(last_user_message)


def intruder_answer(last_user_message: str) -> int:
    """Index of the example whose highlighted spans (stripped, lowercased) share the fewest
    items with the other examples' spans; ties go to the lowest index, no examples give 0."""
    span_sets = [
        {span.lower() for span in highlighted_spans(text)}
        for text in intruder_examples(last_user_message)
    ]
    best_index, best_shared = 0, None
    for index, spans in enumerate(span_sets):
        others: set[str] = set()
        for other_index, other in enumerate(span_sets):
            if other_index != index:
                others |= other
        shared = len(spans & others)
        if best_shared is None or shared < best_shared:
            best_index, best_shared = index, shared
    return best_index


_SYSTEM_ROLES = ("system", "developer")


def _last_user_message(messages: list[Any]) -> str:
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            return _message_text(message)
    return ""


def _system_prompt(messages: list[Any]) -> str:
    return "\n".join(
        _message_text(m) for m in messages if isinstance(m, dict) and m.get("role") in _SYSTEM_ROLES
    )


_MARKER_KINDS = {
    FORMAT_OAI_TOKEN_ACT_PAIR: "oai_token_act_pair",
    FORMAT_NP_MAX_ACT: "np_max_act",
    FORMAT_NP_MAX_ACT_LOGITS: "np_max_act_logits",
    FORMAT_RECALL_JUDGE: "recall",
}


def request_kind(messages: list[Any]) -> str:
    """One of :data:`REQUEST_KINDS` for a chat request's messages.

    Our own prompts are recognised by their ``FORMAT: <name>`` system line, delphi's by their
    shapes: ``[EXPLANATION]`` in the system prompt (explain), a ``Latent explanation:`` block
    (detection/fuzz), ``[RESPONSE]:`` and "intruder" in the system prompt (intruder), a last
    user message that is the simulation JSON (simulation).
    """
    system = _system_prompt(messages)
    marker = format_marker(system)
    if marker is not None:
        return _MARKER_KINDS[marker]
    if "[EXPLANATION]" in system:
        return "explain"
    last_user = _last_user_message(messages)
    if parse_classification_prompt(last_user) is not None:
        return "fuzz" if is_fuzz_system_prompt(system) else "detection"
    if is_intruder_system_prompt(system):
        return "intruder"
    if _simulation_request(last_user) is not None:
        return "simulation"
    if not system and any(
        "[EXPLANATION]:" in _message_text(m)
        for m in messages
        if isinstance(m, dict) and m.get("role") == "assistant"
    ):
        return "explain"
    return "other"


def format_labels(labels: Iterable[int]) -> str:
    """``[1,0,1]``: the list format delphi's few-shot answers use."""
    return "[" + ",".join(str(label) for label in labels) + "]"


def _top_entry(token: str, logprob: float) -> dict[str, Any]:
    return {"token": token, "logprob": logprob, "bytes": None}


def answer_logprobs(answer: str, top_n: int | None = None) -> list[dict[str, Any]]:
    """OpenAI-style ``logprobs.content`` for ``answer``.

    A ``0``/``1`` label token gets probability 0.9 with the other label at 0.1 among its
    top logprobs; every other token gets logprob 0.0 and only itself as top logprob.
    """
    p_chosen, p_other = math.log(0.9), math.log(0.1)
    entries = []
    for piece in _ANSWER_TOKEN_RE.findall(answer):
        if piece in ("0", "1"):
            other = "0" if piece == "1" else "1"
            top = [_top_entry(piece, p_chosen), _top_entry(other, p_other)]
            logprob = p_chosen
        else:
            top = [_top_entry(piece, 0.0)]
            logprob = 0.0
        if top_n is not None:
            top = top[: max(top_n, 0)]
        entries.append({"token": piece, "logprob": logprob, "bytes": None, "top_logprobs": top})
    return entries


def _approx_tokens(text: str) -> int:
    return max(1, len(text) // 4)


# --------------------------------------------------------------------------------------------
# Server state
# --------------------------------------------------------------------------------------------


def _normalise_fault(mode: object) -> str | None:
    if mode is None:
        return None
    text = str(mode).strip()
    if text.lower() in ("", "none", "null", "off"):
        return None
    if text not in FAULT_MODES:
        raise ValueError(f"unknown fault mode {text!r}; expected one of {sorted(FAULT_MODES)}")
    return text


def _flag(value: str) -> bool:
    text = value.strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"reasoning directive {value!r} is not a boolean")


class _Directives:
    """What the ``@key=value`` suffixes of a model name ask for."""

    __slots__ = ("fault", "fault_set", "latency_s", "logprobs", "model", "reasoning")

    def __init__(self, model: str) -> None:
        bare, *parts = model.split("@")
        self.model = bare
        self.fault: str | None = None
        self.fault_set = False
        self.latency_s: float | None = None
        self.reasoning = False
        self.logprobs = True
        for part in parts:
            key, sep, value = part.partition("=")
            key = key.strip().lower()
            if not sep:
                raise ValueError(f"model directive {part!r} is not key=value")
            if key == "fault":
                self.fault = _normalise_fault(value)
                self.fault_set = True
            elif key in ("latency", "latency_ms"):
                try:
                    self.latency_s = max(0.0, float(value) / 1000.0)
                except ValueError:
                    raise ValueError(f"latency directive {value!r} is not a number") from None
            elif key == "reasoning":
                self.reasoning = _flag(value)
            elif key == "logprobs":
                # @logprobs=0: behave like a provider that ignores logprobs requests.
                self.logprobs = _flag(value)
            else:
                raise ValueError(f"unknown model directive {key!r}")


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 256
    owner: FakeLLMServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Quiet about clients that went away; log anything else without request details."""
        logger.debug("fake LLM handler error", exc_info=True)


class FakeLLMServer:
    """A fake OpenAI chat-completions server running on a daemon thread."""

    def __init__(  # noqa: PLR0917 (positional signature is the documented API)
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        latency_s: float = 0.0,
        fault: str | None = None,
        fault_count: int | None = None,
        retry_after_ms: int = 50,
    ) -> None:
        self._host = host
        self._port = port
        self._lock = threading.Lock()
        self._latency_s = max(0.0, float(latency_s))
        self._fault: str | None = None
        self._fault_remaining: int | None = None
        self.set_fault(fault, fault_count)
        self.retry_after_ms = int(retry_after_ms)
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._stop_event = threading.Event()
        self._connections: set[socket.socket] = set()
        self._ids = itertools.count(1)
        self._reset_stats_locked()

    # ---- lifecycle -------------------------------------------------------------------------

    def start(self) -> FakeLLMServer:
        """Bind and serve on a daemon thread; port 0 picks a free port."""
        if self._httpd is not None:
            raise RuntimeError("FakeLLMServer is already running")
        self._stop_event = threading.Event()
        httpd = _HTTPServer((self._host, self._port), _Handler)
        httpd.owner = self
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": _POLL_S},
            name=f"fake-llm-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and drop open connections; idempotent and prompt even if requests hang."""
        httpd, thread = self._httpd, self._thread
        if httpd is None:
            return
        self._httpd = None
        self._thread = None
        self._stop_event.set()
        httpd.shutdown()
        httpd.server_close()
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                logger.debug("connection already closed")
        if thread is not None:
            thread.join(timeout=2.0)

    def __enter__(self) -> FakeLLMServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The bound port once started, else the configured one."""
        if self._httpd is not None:
            return int(self._httpd.server_address[1])
        return self._port

    @property
    def base_url(self) -> str:
        """``http://host:port/v1``, what ``AsyncOpenAI(base_url=...)`` takes."""
        return f"http://{self._host}:{self.port}/v1"

    # ---- configuration ---------------------------------------------------------------------

    def set_latency(self, seconds: float) -> None:
        """Delay every chat completion by ``seconds`` before answering."""
        with self._lock:
            self._latency_s = max(0.0, float(seconds))

    def set_fault(self, mode: str | None, count: int | None = None) -> None:
        """Inject ``mode`` into the next ``count`` chat completions (None: all); None clears."""
        normalised = _normalise_fault(mode)
        if count is not None and int(count) < 0:
            raise ValueError("fault count must be >= 0")
        with self._lock:
            self._fault = normalised
            self._fault_remaining = None if count is None or normalised is None else int(count)

    def config(self) -> dict[str, Any]:
        """Current latency, fault, remaining fault count and retry-after setting."""
        with self._lock:
            return {
                "latency_ms": self._latency_s * 1000.0,
                "fault": self._fault,
                "fault_count": self._fault_remaining,
                "retry_after_ms": self.retry_after_ms,
            }

    def _take_fault_and_latency(self, directives: _Directives) -> tuple[str | None, float]:
        with self._lock:
            latency = self._latency_s if directives.latency_s is None else directives.latency_s
            if directives.fault_set:
                return directives.fault, latency
            fault = self._fault
            if fault is not None and self._fault_remaining is not None:
                if self._fault_remaining <= 0:
                    fault = None
                else:
                    self._fault_remaining -= 1
                    if self._fault_remaining == 0:
                        self._fault = None
                        self._fault_remaining = None
            return fault, latency

    # ---- stats -----------------------------------------------------------------------------

    def _reset_stats_locked(self) -> None:
        self._requests = 0
        self._in_flight = 0
        self._peak_in_flight = 0
        self._by_kind: collections.Counter[str] = collections.Counter()
        self._by_status: collections.Counter[int] = collections.Counter()
        self._records: collections.deque[dict[str, Any]] = collections.deque(maxlen=_MAX_RECORDS)

    def reset_stats(self) -> None:
        """Zero all counters and records (in-flight requests still count as in flight)."""
        with self._lock:
            in_flight = self._in_flight
            self._reset_stats_locked()
            self._in_flight = in_flight
            self._peak_in_flight = in_flight

    def stats(self) -> dict[str, Any]:
        """Snapshot of chat-completion stats.

        ``by_status`` is keyed by int HTTP status (0: no answer, e.g. a hang or stop).
        Each record: kind (see :data:`REQUEST_KINDS`), model (bare), status, n_examples (examples
        of a detection, fuzz or intruder prompt, texts of a recall prompt, tokens of a
        simulation prompt; None otherwise), fault, duration_ms.
        """
        with self._lock:
            return {
                "requests": self._requests,
                "in_flight": self._in_flight,
                "peak_in_flight": self._peak_in_flight,
                "by_kind": dict(self._by_kind),
                "by_status": dict(self._by_status),
                "records": [dict(record) for record in self._records],
            }

    def _begin(self) -> None:
        with self._lock:
            self._requests += 1
            self._in_flight += 1
            self._peak_in_flight = max(self._peak_in_flight, self._in_flight)

    def _finish(self, record: dict[str, Any]) -> None:
        with self._lock:
            self._in_flight = max(0, self._in_flight - 1)
            self._by_kind[record["kind"]] += 1
            self._by_status[record["status"]] += 1
            self._records.append(record)

    def _track(self, conn: socket.socket, add: bool) -> None:
        with self._lock:
            if add:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    def _next_id(self) -> str:
        with self._lock:
            return f"chatcmpl-fake-{next(self._ids)}"


# --------------------------------------------------------------------------------------------
# HTTP handler
# --------------------------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "FakeLLM/1.0"
    disable_nagle_algorithm = True
    server: _HTTPServer
    _record: dict[str, Any] | None = None
    _started = 0.0

    # ---- plumbing --------------------------------------------------------------------------

    def version_string(self) -> str:
        return self.server_version

    @property
    def owner(self) -> FakeLLMServer:
        return self.server.owner

    def setup(self) -> None:
        super().setup()
        self.owner._track(self.connection, add=True)

    def finish(self) -> None:
        self.owner._track(self.connection, add=False)
        try:
            super().finish()
        except OSError:
            logger.debug("connection closed while finishing")

    def log_message(self, format: str, *args: Any) -> None:
        """Silenced: the base class would log request lines; headers (keys) are never logged."""

    def _path(self) -> str:
        path = self.path.split("?", 1)[0].rstrip("/")
        return path or "/"

    def _read_body(self) -> bytes:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = 0
        return self.rfile.read(length) if length > 0 else b""

    def _send_json(
        self, status: int, payload: object, headers: dict[str, str] | None = None
    ) -> None:
        body = json.dumps(payload).encode("utf-8")
        self._settle(status)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _send_error_json(
        self, status: int, error: dict[str, Any], headers: dict[str, str] | None = None
    ) -> None:
        self._send_json(status, {"error": dict(error)}, headers)

    def _bad_request(self, message: str) -> int:
        error = {"message": message, "type": "invalid_request_error", "param": None, "code": None}
        self._send_error_json(400, error)
        return 400

    def _client_gone(self) -> bool:
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            if not readable:
                return False
            return self.connection.recv(1, socket.MSG_PEEK) == b""
        except (OSError, ValueError):
            return True

    # ---- routing ---------------------------------------------------------------------------

    def do_GET(self) -> None:
        path = self._path()
        if path == "/health":
            self._send_json(200, {"status": "ok"})
        elif path in ("/v1/models", "/models"):
            if self._auth_error() is None:
                self._send_json(200, _model_list())
        elif path == "/_stats":
            self._send_json(200, _jsonable_stats(self.owner.stats()))
        elif path == "/_control":
            self._send_json(200, self.owner.config())
        else:
            self._not_found()

    def do_POST(self) -> None:
        path = self._path()
        if path in ("/v1/chat/completions", "/chat/completions"):
            self._chat_completions()
            return
        body = self._read_body()
        if path == "/_control":
            self._control(body)
        elif path == "/_stats/reset":
            self.owner.reset_stats()
            self._send_json(200, _jsonable_stats(self.owner.stats()))
        else:
            self._not_found()

    def do_DELETE(self) -> None:
        self._read_body()
        if self._path() == "/_stats":
            self.owner.reset_stats()
            self._send_json(200, _jsonable_stats(self.owner.stats()))
        else:
            self._not_found()

    def _not_found(self) -> None:
        error = {
            "message": f"Unknown path {self._path()!r}",
            "type": "invalid_request_error",
            "param": None,
            "code": "not_found",
        }
        self._send_error_json(404, error)

    def _control(self, body: bytes) -> None:
        try:
            update = json.loads(body or b"{}")
            if not isinstance(update, dict):
                raise ValueError("control body must be a JSON object")
            _apply_control(self.owner, update)
        except (ValueError, TypeError) as exc:
            self._bad_request(str(exc))
            return
        self._send_json(200, self.owner.config())

    # ---- auth ------------------------------------------------------------------------------

    def _auth_error(self) -> int | None:
        """Send the auth error (if any) and return its status; the key is never echoed."""
        header = self.headers.get("Authorization") or ""
        scheme, _, key = header.partition(" ")
        key = key.strip()
        if scheme.lower() != "bearer" or not key:
            self._send_error_json(401, _MISSING_KEY_ERROR)
            return 401
        if key.startswith("bad"):
            self._send_error_json(401, _INVALID_KEY_ERROR)
            return 401
        if key.startswith("no-credits"):
            self._send_error_json(402, _NO_CREDITS_ERROR)
            return 402
        return None

    # ---- chat completions ------------------------------------------------------------------

    def _chat_completions(self) -> None:
        self.owner._begin()
        self._started = time.monotonic()
        record: dict[str, Any] = {
            "kind": "other",
            "model": None,
            "status": 0,
            "n_examples": None,
            "fault": None,
        }
        self._record = record
        try:
            self._chat_completions_inner(record)
        finally:
            self._settle(0)  # no-op unless nothing was sent (hang, stop, broken connection)

    def _settle(self, status: int) -> None:
        """Record the pending chat request with ``status``; called before the reply is written
        so a client that has its answer already sees it in the stats."""
        record, self._record = self._record, None
        if record is None:
            return
        record["status"] = status
        record["duration_ms"] = round((time.monotonic() - self._started) * 1000.0, 3)
        self.owner._finish(record)

    def _chat_completions_inner(self, record: dict[str, Any]) -> int:
        body = self._read_body()
        try:
            request, messages, directives = _parse_chat_request(body)
        except ValueError as exc:
            return self._auth_error() or self._bad_request(str(exc))
        # Classify before the auth check so rejected requests still count under their kind.
        record["model"] = directives.model
        kind = request_kind(messages)
        record["kind"] = kind
        answer = _Answer(kind, _system_prompt(messages), _last_user_message(messages))
        record["n_examples"] = answer.n_examples
        status = self._auth_error()
        if status is not None:
            return status

        fault, latency = self.owner._take_fault_and_latency(directives)
        record["fault"] = fault
        if latency > 0 and self.owner._stop_event.wait(latency):
            self.close_connection = True
            return 0
        if fault is not None:
            status = self._send_fault(fault)
            if status is not None:
                return status

        content = answer.content(fault)
        reasoning = None
        if directives.reasoning:
            reasoning = THINK_TRACE
        elif fault == "think":
            content = f"<think>\n{THINK_TRACE}\n</think>\n\n{content}"
        if not directives.logprobs:
            request = {**request, "logprobs": False}
        self._send_json(200, self._completion(request, directives.model, content, reasoning))
        return 200

    def _send_fault(self, fault: str) -> int | None:
        """Send an error fault and return its status; None for faults that answer 200."""
        if fault == "429":
            retry_ms = self.owner.retry_after_ms
            headers = {
                "retry-after-ms": str(retry_ms),
                "retry-after": str(max(1, math.ceil(retry_ms / 1000))),
            }
            self._send_error_json(429, _RATE_LIMIT_ERROR, headers)
            return 429
        if fault == "500":
            self._send_error_json(500, _SERVER_ERROR)
            return 500
        if fault == "bad_key":
            self._send_error_json(401, _INVALID_KEY_ERROR)
            return 401
        if fault == "no_credits":
            self._send_error_json(402, _NO_CREDITS_ERROR)
            return 402
        if fault == "hang":
            self._hang()
            return 0
        return None

    def _hang(self) -> None:
        """Never answer: wait for the client to leave, the server to stop, or the cap."""
        deadline = time.monotonic() + MAX_HANG_S
        stopping = self.owner._stop_event
        while time.monotonic() < deadline and not self._client_gone():
            if stopping.wait(_POLL_S):
                break
        self.close_connection = True

    def _completion(
        self, request: dict[str, Any], model: str, content: str, reasoning: str | None = None
    ) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": None}
        if reasoning is not None:
            message["reasoning"] = reasoning
        choice: dict[str, Any] = {
            "index": 0,
            "message": message,
            "finish_reason": "stop",
            "logprobs": None,
        }
        if request.get("logprobs"):
            top_n = request.get("top_logprobs")
            top = int(top_n) if isinstance(top_n, (int, float)) else None
            choice["logprobs"] = {"content": answer_logprobs(content, top), "refusal": None}
        prompt_chars = sum(len(_message_text(m)) for m in request["messages"])
        prompt_tokens = max(1, prompt_chars // 4)
        completion_tokens = _approx_tokens(content) + (
            _approx_tokens(reasoning) if reasoning else 0
        )
        total_tokens = prompt_tokens + completion_tokens
        return {
            "id": self.owner._next_id(),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [choice],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": total_tokens,
                "cost": round(total_tokens * COST_PER_TOKEN, 12),
            },
            "system_fingerprint": "fake-llm",
        }


def _parse_chat_request(body: bytes) -> tuple[dict[str, Any], list[Any], _Directives]:
    """Validate a chat request; ValueError carries the 400 message."""
    try:
        request = json.loads(body)
    except ValueError:
        raise ValueError("Request body is not valid JSON") from None
    if not isinstance(request, dict):
        raise ValueError("Request body must be a JSON object")
    messages = request.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ValueError("'messages' must be a non-empty list")
    if request.get("stream"):
        raise ValueError("The fake LLM does not support streaming")
    return request, messages, _Directives(str(request.get("model") or "fake-model"))


class _Answer:
    """The correct answer to one request, and what each answering fault makes of it."""

    __slots__ = ("_correct", "_wrong_length", "n_examples")

    def __init__(self, kind: str, system: str, last_user: str) -> None:
        self.n_examples: int | None = None
        correct: str = OTHER_ANSWER
        wrong_length: str = OTHER_ANSWER
        if kind == "explain":
            correct, wrong_length = explain_answer(last_user), GARBAGE_ANSWER
        elif kind in ("detection", "fuzz"):
            labels = classify_answer(system, last_user)
            self.n_examples = len(labels)
            correct, wrong_length = format_labels(labels), format_labels(labels[:-1])
        elif kind == "oai_token_act_pair":
            correct, wrong_length = oai_answer(last_user), ""
        elif kind in ("np_max_act", "np_max_act_logits"):
            correct = np_answer(last_user, logits=kind == "np_max_act_logits")
            wrong_length = LONG_ANSWER
        elif kind == "recall":
            answers = recall_answer(last_user) or []
            self.n_examples = len(answers)
            correct = json.dumps({"answers": answers})
            wrong_length = json.dumps({"answers": answers[:-1]})
        elif kind == "simulation":
            correct = simulation_answer(last_user) or OTHER_ANSWER
            wrong_length = simulation_answer(last_user, drop_last=True) or OTHER_ANSWER
            self.n_examples = len((_simulation_request(last_user) or {}).get("activations", []))
        elif kind == "intruder":
            self.n_examples = len(intruder_examples(last_user))
            correct = f"[RESPONSE]: {intruder_answer(last_user)}"
            wrong_length = f"[RESPONSE]: {self.n_examples}"  # one past the last example
        self._correct = correct
        self._wrong_length = wrong_length

    def content(self, fault: str | None) -> str:
        if fault == "garbage":
            return GARBAGE_ANSWER
        if fault == "wrong_length":
            return self._wrong_length
        return self._correct


def _apply_control(owner: FakeLLMServer, update: dict[str, Any]) -> None:
    if "latency_ms" in update:
        owner.set_latency(float(update["latency_ms"] or 0) / 1000.0)
    if "latency_s" in update:
        owner.set_latency(float(update["latency_s"] or 0))
    if "retry_after_ms" in update:
        owner.retry_after_ms = int(update["retry_after_ms"])
    if "fault" in update or "fault_count" in update:
        fault = update["fault"] if "fault" in update else owner.config()["fault"]
        count = update.get("fault_count")
        owner.set_fault(fault, None if count is None else int(count))
    if update.get("reset_stats"):
        owner.reset_stats()


def _jsonable_stats(stats: dict[str, Any]) -> dict[str, Any]:
    out = dict(stats)
    out["by_status"] = {str(code): count for code, count in stats["by_status"].items()}
    return out


def _model_list() -> dict[str, Any]:
    names = ("fake-model", "openai/gpt-4o-mini", "gpt-4o-mini")
    return {
        "object": "list",
        "data": [
            {"id": name, "object": "model", "created": 0, "owned_by": "fake-llm"} for name in names
        ],
    }


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """Serve until SIGINT/SIGTERM, printing the base URL first."""
    parser = argparse.ArgumentParser(description="Fake OpenAI-compatible chat-completions server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8900)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--fault", choices=sorted(FAULT_MODES), default=None)
    parser.add_argument("--fault-count", type=int, default=None)
    parser.add_argument("--retry-after-ms", type=int, default=50)
    args = parser.parse_args(argv)

    done = threading.Event()

    def _on_signal(signum: int, frame: object) -> None:
        done.set()

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    server = FakeLLMServer(
        host=args.host,
        port=args.port,
        latency_s=args.latency_ms / 1000.0,
        fault=args.fault,
        fault_count=args.fault_count,
        retry_after_ms=args.retry_after_ms,
    )
    with server:
        print(f"fake LLM serving at {server.base_url}", flush=True)
        while not done.wait(0.5):
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
