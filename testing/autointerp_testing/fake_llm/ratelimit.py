"""A provider's request-rate limit for the fake LLM: a token bucket.

``rate`` requests per second refill the bucket, which holds at most ``burst`` requests (one
second's worth unless told). A chat completion that finds the bucket empty is answered at
once with HTTP 429 and ``retry-after-ms`` / ``retry-after`` saying when the next request
would be let through, as OpenAI's and OpenRouter's limits answer.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

__all__ = ["TokenBucket"]


class TokenBucket:
    """``rate`` requests per second, ``burst`` at most at once; thread-safe."""

    def __init__(
        self,
        rate: float,
        burst: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not (math.isfinite(rate) and rate > 0):
            raise ValueError("rate limit must be a positive number of requests per second")
        capacity = rate if burst is None else float(burst)
        if not (math.isfinite(capacity) and capacity >= 1):
            raise ValueError("rate limit burst must be at least 1 request")
        self.rate = float(rate)
        self.burst = capacity
        self._clock = clock
        self._tokens = capacity
        self._at = clock()
        self._lock = threading.Lock()

    def take(self) -> float:
        """Let one request through (0.0), or the seconds until one would be let through."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
            self._at = now
            if self._tokens >= 1:
                self._tokens -= 1
                return 0.0
            return (1 - self._tokens) / self.rate

    def config(self) -> dict[str, float]:
        return {"rate_limit_rps": self.rate, "rate_limit_burst": self.burst}
