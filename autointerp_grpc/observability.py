"""Metrics, per-request accounting, and log formatting.

:class:`Metrics` owns a Prometheus registry (one per process, created in the Runtime and passed
down, so tests get their own); ``GET /metrics`` serves it. Labels never carry keys or secrets,
and caller-chosen values (model names) are capped so a caller cannot blow up cardinality.

:class:`RequestStats` accumulates one request's upstream LLM calls and tokens; the service
sets it in a context variable for the duration of the request, the LLM client adds to it, and
the service writes one log line per request with it.
"""

from __future__ import annotations

import contextvars
import json
import logging
import threading
import time
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from autointerp_grpc.usage import Usage

# More distinct model names than this are counted under "other", and so are longer ones.
MAX_MODEL_LABELS = 100
MAX_MODEL_LABEL_LENGTH = 100
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


class Metrics:
    """The service's Prometheus metrics."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "autointerp_requests", "Requests by RPC and status.", ["rpc", "code"], registry=r
        )
        self.request_seconds = Histogram(
            "autointerp_request_duration_seconds",
            "Request latency by RPC and status.",
            ["rpc", "code"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.in_flight = Gauge(
            "autointerp_in_flight_requests", "Requests being served now.", registry=r
        )
        self.llm_calls = Counter(
            "autointerp_llm_calls",
            "Upstream LLM calls by provider, model and outcome (ok or the error's status).",
            ["provider", "model", "outcome"],
            registry=r,
        )
        self.llm_seconds = Histogram(
            "autointerp_llm_call_duration_seconds",
            "Upstream LLM call latency by provider and model.",
            ["provider", "model"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.llm_tokens = Counter(
            "autointerp_llm_tokens",
            "Tokens reported by the provider, by provider, model and kind (prompt/completion).",
            ["provider", "model", "kind"],
            registry=r,
        )
        self.llm_concurrency_limit = Gauge(
            "autointerp_llm_concurrency_limit",
            "Adaptive limit on upstream LLM calls in flight, by provider and model.",
            ["provider", "model"],
            registry=r,
        )
        self.llm_concurrency_in_use = Gauge(
            "autointerp_llm_concurrency_in_use",
            "Upstream LLM calls in flight under the adaptive limit, by provider and model.",
            ["provider", "model"],
            registry=r,
        )
        self.llm_rate_limited = Counter(
            "autointerp_llm_rate_limited",
            "HTTP 429 answers from the provider (retried ones included), by provider and model.",
            ["provider", "model"],
            registry=r,
        )
        self.embedding_batch = Histogram(
            "autointerp_embedding_batch_size",
            "Texts per embedding-model call.",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
            registry=r,
        )
        self._models: set[str] = set()
        self._lock = threading.Lock()

    def model_label(self, model: str) -> str:
        """``model`` as a label value, or "other": for a name longer than
        MAX_MODEL_LABEL_LENGTH or not printable ASCII, and once MAX_MODEL_LABELS names are in
        use (callers choose model names; a scrape must stay small)."""
        if len(model) > MAX_MODEL_LABEL_LENGTH or not (model.isascii() and model.isprintable()):
            return "other"
        with self._lock:
            if model in self._models:
                return model
            if len(self._models) < MAX_MODEL_LABELS:
                self._models.add(model)
                return model
        return "other"

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


ANSWER_MARGIN_MAX_S = 5.0
"""Most of a request's time kept back, after a scorer's upstream calls are cut, to score what
they answered and send the response (a tenth of the time left when that is less)."""


@dataclass
class RequestStats:
    """One request's id and upstream LLM usage, for its log line and error messages."""

    request_id: str = ""
    usage: Usage = field(default_factory=Usage)
    deadline: float | None = None
    """The ``time.monotonic()`` at which a unary request's time runs out: the server's request
    limit or the client's deadline, whichever comes first (None for a stream)."""
    answer_by: float | None = None
    """The ``time.monotonic()`` by which this request's upstream LLM calls must have answered:
    calls still running then are closed and count as unanswered. Set by a scorer
    (:meth:`cut_calls_before_deadline`), which scores what was answered; None: no such cut."""

    def cut_calls_before_deadline(self) -> None:
        """Have this request's upstream calls end before its deadline, leaving a tenth of the
        time left (at most :data:`ANSWER_MARGIN_MAX_S`) to score what they answered."""
        if self.deadline is not None:
            left = self.deadline - time.monotonic()
            self.answer_by = self.deadline - min(ANSWER_MARGIN_MAX_S, max(0.0, left) / 10)


current_request: contextvars.ContextVar[RequestStats | None] = contextvars.ContextVar(
    "autointerp_request_stats", default=None
)

# Attributes of a request's log record that JSON lines carry as fields.
REQUEST_FIELDS = (
    "rpc",
    "status",
    "duration_ms",
    "llm_calls",
    "prompt_tokens",
    "completion_tokens",
    "request_id",
)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request fields, traceback."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in REQUEST_FIELDS:
            if hasattr(record, name):
                entry[name] = getattr(record, name)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(level: str, log_format: str = "text") -> None:
    """Root logging: text lines, or one JSON object per line; uvicorn's own handlers get the
    same formatter so every line of the process has one shape."""
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if log_format == "json":
        formatter = JsonFormatter()
        for name in ("", "uvicorn", "uvicorn.error", "uvicorn.access"):
            for handler in logging.getLogger(name).handlers:
                handler.setFormatter(formatter)
    # sentence-transformers draws a progress bar per encode() at INFO; keep the log readable.
    logging.getLogger("sentence_transformers").setLevel(logging.WARNING)
