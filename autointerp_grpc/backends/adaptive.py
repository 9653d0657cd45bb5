"""Adaptive concurrency: upstream calls in flight per provider and model sit at what the
provider's rate limit lets through, without running into it.

Each (provider, model) pair gets an :class:`AdaptiveGate`, a :class:`FairGate` whose capacity
follows additive increase, multiplicative decrease (AIMD, as TCP's congestion window). It
starts at :data:`INITIAL` and doubles every round trip (slow start) until the first HTTP 429;
then every answer that arrives while the gate is full raises the limit by ``1/limit`` (about
one more call in flight per round trip; :data:`PROBE` times slower near the limit where the
last 429 came), and a 429 cuts it to :data:`DECREASE` of itself, once per round of calls (a
429 answering a call sent before the last cut is not news); the first 429, which ends slow
start, halves it (:data:`SLOW_START_DECREASE`), as TCP does. A 429's
``Retry-After`` (``retry-after-ms`` where sent) also holds back new calls until then. The
limit never exceeds ``AUTOINTERP_LLM__MAX_CONCURRENCY`` and never drops below 1.

The openai SDK retries a 429 inside one call (honouring ``Retry-After``), so the gate sees
every HTTP response through httpx event hooks on the provider's connection pool
(:meth:`AdaptiveLimits.event_hooks`): the call in flight is found through a context variable
that :meth:`AdaptiveLimits.slots` sets while the call holds its slots.

``/metrics`` carries each pair's limit (``autointerp_llm_concurrency_limit``), its calls in
flight (``autointerp_llm_concurrency_in_use``) and the 429s seen, retried ones included
(``autointerp_llm_rate_limited``).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import math
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx2

from autointerp_grpc.backends.llm_transport import FairGate, SlotWaitExpired
from autointerp_grpc.observability import Metrics

__all__ = [
    "DECREASE",
    "MAX_PAUSE_S",
    "SLOW_START_DECREASE",
    "AdaptiveGate",
    "AdaptiveLimits",
    "AdaptiveWaitExpired",
    "retry_after_s",
]

INITIAL = 8
"""The limit a gate starts at (slow start doubles it every round trip until the first 429,
up to the ceiling)."""
DECREASE = 0.75
"""What a 429 leaves of the limit (multiplicative decrease)."""
SLOW_START_DECREASE = 0.5
"""What the first 429 (the end of slow start) leaves of the limit."""
PROBE = 8
"""Near the limit of the last 429 (within one slot of it, and up to :data:`PROBE_SPAN`
past it) the limit grows this many times slower: the provider's limit is close."""
PROBE_SPAN = 0.1
"""How far past the limit of the last 429 (a fraction of it, at least 2 slots) slow probing
goes before the provider's limit is taken to have risen (growth one per round trip again)."""
MAX_PAUSE_S = 60.0
"""The longest a ``Retry-After`` holds back new calls (the SDK honours no longer ones)."""


class AdaptiveWaitExpired(SlotWaitExpired):
    """No slot under a provider's adaptive limit came free within the time a call could
    wait; the message says which limit and why it is where it is."""


def retry_after_s(headers: httpx2.Headers) -> float | None:
    """A 429's ``retry-after-ms``, else its ``retry-after`` (seconds; an HTTP date is not
    read), in seconds; None when neither is a plausible delay."""
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            seconds = float(value) * scale
        except ValueError:
            continue
        if math.isfinite(seconds) and seconds > 0:
            return min(seconds, MAX_PAUSE_S)
    return None


class AdaptiveGate(FairGate):
    """A :class:`FairGate` whose capacity is an AIMD limit between 1 and ``ceiling``."""

    def __init__(
        self,
        ceiling: int,
        *,
        decrease: float = DECREASE,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[AdaptiveGate], None] | None = None,
    ) -> None:
        super().__init__(min(ceiling, INITIAL))
        self.ceiling = ceiling
        self.limit = float(self.capacity)
        """The current limit (its whole part is the capacity)."""
        self.rate_limited = 0
        """429s seen (retried ones included)."""
        self.epoch = 0
        """Counts the cuts: a call remembers the epoch it was sent in."""
        self._decrease = decrease
        self._clock = clock
        self._resume_at = 0.0
        self._last_cut: float | None = None
        """The limit when the last 429 cut it (None: none yet, slow start)."""
        self._on_change = on_change
        self.labels: tuple[str, str] = ("", "")
        """The (provider, model label) it limits, for the metrics."""

    def _set_limit(self, limit: float) -> None:
        self.limit = min(float(self.ceiling), max(1.0, limit))
        capacity = int(self.limit)
        if capacity != self.capacity:
            # Slots held beyond a lowered capacity are simply not handed on when freed.
            self._free += capacity - self.capacity
            self.capacity = capacity
            self._wake()
        if self._on_change is not None:
            self._on_change(self)

    def answered(self) -> None:
        """A call was answered (not rate limited), while the limit is what holds calls back:
        one more slot per answer before the first 429 (slow start), then one more per round
        trip, slower near the limit of the last 429."""
        if self.waiting == 0 and self.in_use < self.capacity:
            return
        last = self._last_cut
        if last is None:
            step = 1.0
        elif last - 1 <= self.limit <= last + max(2.0, last * PROBE_SPAN):
            step = 1.0 / (PROBE * self.limit)
        else:
            step = 1.0 / self.limit
        self._set_limit(self.limit + step)

    def refused(self, sent_in_epoch: int, retry_after: float | None) -> None:
        """A 429 answered a call sent in epoch ``sent_in_epoch``: cut the limit unless it
        was cut since that call was sent; hold new calls back for ``retry_after`` seconds."""
        self.rate_limited += 1
        if retry_after is not None:
            self._resume_at = max(self._resume_at, self._clock() + retry_after)
        if sent_in_epoch == self.epoch:
            # The 429 that ends slow start halves the limit (slow start doubled it in the
            # last round trip, so the provider's limit lies between the two); later ones cut
            # it by DECREASE.
            factor = SLOW_START_DECREASE if self._last_cut is None else self._decrease
            self.epoch += 1
            self._last_cut = self.limit
            self._set_limit(self.limit * factor)
        elif self._on_change is not None:
            self._on_change(self)

    async def _acquire(self, owner: int, wait_s: float) -> None:
        pause = self._resume_at - self._clock()
        if pause > 0:
            if pause > wait_s:
                raise AdaptiveWaitExpired(self._expired_message(wait_s))
            await asyncio.sleep(pause)
            wait_s -= pause
        try:
            await super()._acquire(owner, wait_s)
        except SlotWaitExpired:
            raise AdaptiveWaitExpired(self._expired_message(wait_s)) from None

    def _expired_message(self, wait_s: float) -> str:
        return (
            f"No upstream LLM call slot came free within {max(0.0, wait_s):.3g} s: the "
            f"provider's rate limit holds this model to {self.capacity} calls in flight "
            f"(adaptive, at most AUTOINTERP_LLM__MAX_CONCURRENCY = {self.ceiling}; "
            f"{self.rate_limited} HTTP 429 answers so far); retry later"
        )


@dataclass
class _Call:
    """The call in flight in this context, and the epoch it took its slot in."""

    gate: AdaptiveGate
    epoch: int


_current_call: contextvars.ContextVar[_Call | None] = contextvars.ContextVar(
    "autointerp_adaptive_call", default=None
)


class AdaptiveLimits:
    """One :class:`AdaptiveGate` per (provider, model label), created on first use; or none
    at all when ``enabled`` is false (fixed concurrency: only the process-wide gate)."""

    def __init__(self, ceiling: int, metrics: Metrics, *, enabled: bool = True) -> None:
        self.ceiling = ceiling
        self.enabled = enabled
        self._metrics = metrics
        self._gates: dict[tuple[str, str], AdaptiveGate] = {}

    def gate(self, provider: str, model: str) -> AdaptiveGate | None:
        """The gate of ``provider`` and ``model`` (a model name past the metrics' label
        limits shares the "other" gate, so callers cannot grow this table without bound)."""
        if not self.enabled:
            return None
        key = (provider, self._metrics.model_label(model))
        gate = self._gates.get(key)
        if gate is None:
            gate = AdaptiveGate(self.ceiling, on_change=self._publish)
            gate.labels = key
            self._gates[key] = gate
            self._publish(gate)
        return gate

    def _publish(self, gate: AdaptiveGate) -> None:
        self._metrics.llm_concurrency_limit.labels(*gate.labels).set(gate.capacity)

    @contextlib.asynccontextmanager
    async def slots(
        self, gate: AdaptiveGate | None, shared: FairGate, owner: object, wait_s: float
    ) -> AsyncIterator[None]:
        """Hold a slot of ``gate`` (when there is one), then one of the process-wide
        ``shared`` gate, both for ``owner``, waiting ``wait_s`` at most in all."""
        if gate is None:
            async with shared.slot(owner, wait_s):
                yield
            return
        began = time.monotonic()
        async with gate.slot(owner, wait_s):
            left_s = max(0.0, wait_s - (time.monotonic() - began))
            async with shared.slot(owner, left_s):
                in_use = self._metrics.llm_concurrency_in_use.labels(*gate.labels)
                in_use.inc()
                token = _current_call.set(_Call(gate, gate.epoch))
                try:
                    yield
                finally:
                    _current_call.reset(token)
                    in_use.dec()

    def event_hooks(self) -> dict[str, list[Callable[[Any], Any]]]:
        """httpx event hooks for a provider's connection pool: each response tells its
        call's gate how it went. A call keeps the epoch it took its slot in through the SDK's
        retries: a retry refused again right after a cut is not news either."""
        return {"response": [self._on_response]}

    async def _on_response(self, response: httpx2.Response) -> None:
        call = _current_call.get()
        if call is None:
            return
        if response.status_code == 429:
            call.gate.refused(call.epoch, retry_after_s(response.headers))
            self._metrics.llm_rate_limited.labels(*call.gate.labels).inc()
        elif response.status_code < 400:
            call.gate.answered()
