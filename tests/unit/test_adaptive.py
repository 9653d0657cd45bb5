"""Adaptive concurrency (issue 21 item 5): the AIMD gate per provider and model, the 429s it
sees through the SDK's retries, its metrics, and the fake LLM's rate limit it is measured
against."""

from __future__ import annotations

import asyncio
import time

import httpx2
import pytest

from autointerp_grpc.backends.adaptive import (
    DECREASE,
    INITIAL,
    MAX_PAUSE_S,
    SLOW_START_DECREASE,
    AdaptiveGate,
    AdaptiveWaitExpired,
    retry_after_s,
)
from autointerp_grpc.backends.llm import LLMBackend
from autointerp_grpc.config import Settings
from autointerp_grpc.errors import ResourceExhausted
from autointerp_grpc.observability import Metrics
from autointerp_testing.fake_llm import FakeLLMServer, TokenBucket

KEY = "sk-adaptive-test"
MODEL = "openai/gpt-4o-mini"


async def _fill(gate: AdaptiveGate, owner: object, n: int) -> list[asyncio.Task[None]]:
    """``n`` tasks each holding one of ``gate``'s slots until cancelled."""
    held = asyncio.Event()

    async def hold() -> None:
        async with gate.slot(owner, 1.0):
            held.set()
            await asyncio.Event().wait()

    tasks = [asyncio.create_task(hold()) for _ in range(n)]
    await asyncio.sleep(0)
    await held.wait()
    return tasks


async def _release(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def test_slow_start_then_a_429_cuts_once_per_epoch() -> None:
    gate = AdaptiveGate(64)
    assert gate.capacity == INITIAL
    # Full, with more calls waiting: the limit is what holds calls back.
    tasks = await _fill(gate, "a", 3 * INITIAL)
    for _ in range(INITIAL):
        gate.answered()
    assert gate.capacity == 2 * INITIAL  # one more slot per answer before the first 429
    before = gate.limit
    sent_in = gate.epoch
    gate.refused(sent_in, None)
    # The 429 that ends slow start halves the limit (it doubled in the last round trip).
    assert gate.limit == pytest.approx(before * SLOW_START_DECREASE)
    gate.refused(sent_in, None)  # another call of the same round: no second cut
    assert gate.limit == pytest.approx(before * SLOW_START_DECREASE)
    assert gate.rate_limited == 2
    gate.refused(gate.epoch, None)  # a call sent after the cut: news, cut by DECREASE
    assert gate.limit == pytest.approx(before * SLOW_START_DECREASE * DECREASE)
    await _release(tasks)


async def test_the_limit_stays_between_1_and_the_ceiling() -> None:
    gate = AdaptiveGate(4)
    assert gate.capacity == 4
    tasks = await _fill(gate, "a", 4)
    for _ in range(100):
        gate.answered()
    assert gate.limit == 4
    for _ in range(50):
        gate.refused(gate.epoch, None)
    assert gate.limit == 1
    await _release(tasks)


async def test_an_idle_gate_does_not_grow() -> None:
    gate = AdaptiveGate(64)
    for _ in range(100):
        gate.answered()  # nobody waits and slots are free: no evidence the limit binds
    assert gate.capacity == INITIAL


async def test_a_lowered_limit_hands_no_slot_on_until_calls_are_under_it() -> None:
    gate = AdaptiveGate(8)
    tasks = await _fill(gate, "a", 8)
    gate.refused(gate.epoch, None)  # 8 -> 4 (the end of slow start) while 8 are held
    assert gate.capacity == 4
    waiter = asyncio.create_task(_fill(gate, "b", 1))
    await _release(tasks[:4])  # 4 held: at the limit, still nothing to hand on
    await asyncio.sleep(0.05)
    assert not waiter.done()
    await _release(tasks[4:5])  # 3 held: one slot free
    more = await asyncio.wait_for(waiter, 1.0)
    assert gate.in_use == 4
    await _release(tasks[3:] + more)


async def test_retry_after_holds_new_calls_back() -> None:
    gate = AdaptiveGate(8)
    gate.refused(gate.epoch, 0.3)
    began = time.monotonic()
    async with gate.slot("a", 5.0):
        pass
    assert 0.25 < time.monotonic() - began < 1.0
    gate.refused(gate.epoch, 30.0)
    with pytest.raises(AdaptiveWaitExpired) as info:
        async with gate.slot("a", 0.5):
            pass
    assert "AUTOINTERP_LLM__MAX_CONCURRENCY" in str(info.value)
    assert "HTTP 429" in str(info.value)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after-ms": "250"}, 0.25),
        ({"retry-after": "2"}, 2.0),
        ({"retry-after-ms": "80", "retry-after": "1"}, 0.08),
        ({"retry-after-ms": "soon", "retry-after": "3"}, 3.0),
        ({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, None),
        ({"retry-after": "nan"}, None),
        ({"retry-after": "-5"}, None),
        ({"retry-after": "1e300"}, MAX_PAUSE_S),
        ({}, None),
    ],
)
def test_retry_after_is_read_in_milliseconds_or_seconds(
    headers: dict[str, str], expected: float | None
) -> None:
    assert retry_after_s(httpx2.Headers(headers)) == expected


def test_the_fake_token_bucket_lets_its_rate_through() -> None:
    now = [0.0]
    bucket = TokenBucket(10, clock=lambda: now[0])
    assert [bucket.take() for _ in range(10)] == [0.0] * 10  # one second's worth at once
    assert bucket.take() == pytest.approx(0.1)  # then one every 1/rate
    now[0] += 0.25
    assert bucket.take() == 0.0
    assert bucket.take() == 0.0
    assert bucket.take() > 0
    with pytest.raises(ValueError, match="rate limit"):
        TokenBucket(0)


def _metric(metrics: Metrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


async def test_fixed_concurrency_has_no_adaptive_gate(fake_llm: FakeLLMServer) -> None:
    metrics = Metrics()
    llm = LLMBackend(
        Settings(llm={"base_url": fake_llm.base_url, "adaptive_concurrency": False}), metrics
    )
    try:
        assert llm.adaptive.gate("openrouter", MODEL) is None
        answer = await llm.client(MODEL, KEY).generate("Say something.")
        assert answer.text
    finally:
        await llm.aclose()
    assert (
        metrics.registry.get_sample_value(
            "autointerp_llm_concurrency_limit", {"provider": "openrouter", "model": MODEL}
        )
        is None
    )


async def test_a_call_held_back_by_the_adaptive_limit_says_so(fake_llm: FakeLLMServer) -> None:
    llm = LLMBackend(
        Settings(
            llm={"base_url": fake_llm.base_url, "max_retries": 0, "slot_wait_s": 0.3},
        )
    )
    gate = llm.adaptive.gate("openrouter", "m@fault=hang")
    assert gate is not None
    gate._set_limit(1)
    hog = asyncio.create_task(llm.client("m@fault=hang", KEY).generate("Say something."))
    try:
        await asyncio.sleep(0.2)
        client = llm.client("m@fault=hang", KEY)
        with pytest.raises(ResourceExhausted) as info:
            await client.generate("Say something else.")
        assert "rate limit holds this model to 1 calls in flight" in info.value.message
    finally:
        hog.cancel()
        await asyncio.gather(hog, return_exceptions=True)
        await llm.aclose()
