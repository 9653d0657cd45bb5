"""The fake LLM's settings (latency, fault, retry-after) and its request statistics.

Thread-safe: the server's event loop updates them while tests read and change them from
their own threads.
"""

from __future__ import annotations

import collections
import itertools
import json
import threading
import time
from typing import Any

from autointerp_testing.fake_llm.batches import FakeBatches
from autointerp_testing.fake_llm.faults import Directives, normalise_fault
from autointerp_testing.fake_llm.ratelimit import TokenBucket

__all__ = ["MAX_RECORDS", "Exchange", "FakeLLMState"]

MAX_RECORDS = 1000
"""How many per-request records :meth:`FakeLLMState.stats` keeps (the newest)."""


class FakeLLMState:
    """Settings and statistics of a fake LLM; :class:`FakeLLMServer` serves them over HTTP."""

    def __init__(
        self,
        latency_s: float = 0.0,
        fault: str | None = None,
        fault_count: int | None = None,
        retry_after_ms: int = 50,
    ) -> None:
        self._lock = threading.Lock()
        self._latency_s = max(0.0, float(latency_s))
        self._fault: str | None = None
        self._fault_remaining: int | None = None
        self.set_fault(fault, fault_count)
        self.retry_after_ms = int(retry_after_ms)
        """The ``retry-after-ms`` a 429 fault sends."""
        self.rate_limit: TokenBucket | None = None
        """The request-rate limit chat completions are held to (None: none)."""
        self.prompt_cache: set[str] | None = None
        """Prefixes seen so far, when the fake plays a provider's automatic prompt cache
        (:meth:`set_prompt_cache`); None: no cache, no ``cached_tokens`` reported."""
        self._ids = itertools.count(1)
        self.batches = FakeBatches()
        """The Batch API's files and batches (:mod:`.batches`)."""
        self._reset_stats_locked()

    # ---- settings --------------------------------------------------------------------------

    def set_latency(self, seconds: float) -> None:
        """Delay every chat completion by ``seconds`` before answering."""
        with self._lock:
            self._latency_s = max(0.0, float(seconds))

    def set_fault(self, mode: str | None, count: int | None = None) -> None:
        """Inject ``mode`` into the next ``count`` chat completions (None: all); None clears."""
        normalised = normalise_fault(mode)
        if count is not None and int(count) < 0:
            raise ValueError("fault count must be >= 0")
        with self._lock:
            self._fault = normalised
            self._fault_remaining = None if count is None or normalised is None else int(count)

    def set_rate_limit(self, rps: float | None, burst: float | None = None) -> None:
        """Answer chat completions over ``rps`` requests per second (a token bucket holding
        ``burst``, one second's worth unless told) with HTTP 429; None lifts the limit."""
        self.rate_limit = None if rps is None else TokenBucket(float(rps), burst)

    def clear_settings(self) -> None:
        """No fault, no latency, no rate limit and no prompt cache: the fake as it starts."""
        self.set_fault(None)
        self.set_latency(0)
        self.set_rate_limit(None)
        self.set_prompt_cache(False)

    def set_prompt_cache(self, on: bool) -> None:
        """Play a provider's automatic prompt cache: a chat completion whose messages before
        the last one were sent before reports their tokens as
        ``usage.prompt_tokens_details.cached_tokens``. Turning it on or off forgets them."""
        with self._lock:
            self.prompt_cache = set() if on else None

    def cached_prefix_tokens(self, messages: list[Any], tokens_of: Any) -> int:
        """The prompt tokens of ``messages`` the cache holds (0 with no cache), remembering
        their fixed part (every message but the last) for the calls after."""
        with self._lock:
            cache = self.prompt_cache
            if cache is None or len(messages) < 2:
                return 0
            key = json.dumps(messages[:-1], sort_keys=True, default=str)
            if key in cache:
                return tokens_of(messages[:-1])
            cache.add(key)
            return 0

    def config(self) -> dict[str, Any]:
        """Current latency, fault, remaining fault count, retry-after and rate-limit
        settings."""
        limit = self.rate_limit
        with self._lock:
            return {
                "latency_ms": self._latency_s * 1000.0,
                "fault": self._fault,
                "fault_count": self._fault_remaining,
                "retry_after_ms": self.retry_after_ms,
                "rate_limit_rps": limit.rate if limit is not None else None,
                "rate_limit_burst": limit.burst if limit is not None else None,
            }

    def apply_control(self, update: dict[str, Any]) -> None:
        """Apply a ``POST /_control`` body: ``latency_ms`` or ``latency_s``, ``fault`` and
        ``fault_count``, ``retry_after_ms``, ``rate_limit_rps`` (None lifts it) with
        ``rate_limit_burst``, ``reset_stats``. ``ValueError``/``TypeError`` for bad values."""
        if "latency_ms" in update:
            self.set_latency(float(update["latency_ms"] or 0) / 1000.0)
        if "latency_s" in update:
            self.set_latency(float(update["latency_s"] or 0))
        if "retry_after_ms" in update:
            self.retry_after_ms = int(update["retry_after_ms"])
        if "rate_limit_rps" in update:
            rps = update["rate_limit_rps"]
            burst = update.get("rate_limit_burst")
            self.set_rate_limit(
                None if rps is None else float(rps), None if burst is None else float(burst)
            )
        if "fault" in update or "fault_count" in update:
            fault = update["fault"] if "fault" in update else self.config()["fault"]
            count = update.get("fault_count")
            self.set_fault(fault, None if count is None else int(count))
        if update.get("reset_stats"):
            self.reset_stats()

    def take_fault_and_latency(self, directives: Directives) -> tuple[str | None, float]:
        """The fault and latency (seconds) for one request, using up one counted fault.

        A model-name directive wins over the server-wide setting.
        """
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
        self._records: collections.deque[dict[str, Any]] = collections.deque(maxlen=MAX_RECORDS)

    def reset_stats(self) -> None:
        """Zero all counters and records (in-flight requests still count as in flight)."""
        with self._lock:
            in_flight = self._in_flight
            self._reset_stats_locked()
            self._in_flight = in_flight
            self._peak_in_flight = in_flight

    def stats(self) -> dict[str, Any]:
        """Snapshot of chat-completion stats.

        ``requests``, ``in_flight``, ``peak_in_flight`` (the most chat completions open at
        once since the last reset), ``by_kind``, ``by_status`` (keyed by int HTTP status; 0:
        no answer, e.g. a hang, a client that left or a stop) and ``records``, one per request:
        kind (see :data:`REQUEST_KINDS`), model (bare), status, n_examples (examples of a
        detection, fuzz or intruder prompt, texts of a recall prompt, tokens of a simulation
        prompt; None otherwise), prompt (the last user message), response_format (its type,
        or None), fault, duration_ms.
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

    def jsonable_stats(self) -> dict[str, Any]:
        """:meth:`stats` with string ``by_status`` keys, as ``GET /_stats`` returns it."""
        stats = self.stats()
        stats["by_status"] = {str(code): count for code, count in stats["by_status"].items()}
        return stats

    def begin(self) -> Exchange:
        """Count a chat completion as started; settle the returned exchange when it ends."""
        with self._lock:
            self._requests += 1
            self._in_flight += 1
            self._peak_in_flight = max(self._peak_in_flight, self._in_flight)
        return Exchange(self)

    def _finish(self, record: dict[str, Any]) -> None:
        with self._lock:
            self._in_flight = max(0, self._in_flight - 1)
            self._by_kind[record["kind"]] += 1
            self._by_status[record["status"]] += 1
            self._records.append(record)

    def next_id(self) -> str:
        """A fresh ``chatcmpl-fake-N`` completion id."""
        with self._lock:
            return f"chatcmpl-fake-{next(self._ids)}"


class Exchange:
    """One chat completion in flight and the record it leaves in the stats."""

    __slots__ = ("_settled", "_started", "_state", "record")

    def __init__(self, state: FakeLLMState) -> None:
        self._state = state
        self._started = time.monotonic()
        self._settled = False
        self.record: dict[str, Any] = {
            "kind": "other",
            "model": None,
            "status": 0,
            "n_examples": None,
            "fault": None,
        }

    def settle(self, status: int) -> None:
        """Record the exchange with ``status`` (0: no answer); later calls do nothing.

        Settled before the reply is written, so a client that has its answer already sees it
        in the stats.
        """
        if self._settled:
            return
        self._settled = True
        self.record["status"] = status
        self.record["duration_ms"] = round((time.monotonic() - self._started) * 1000.0, 3)
        self._state._finish(self.record)
