"""What a hostile provider can send, bounded in the LLM client itself (issue 17 items 1, 2, 3,
7, 10 and 13): answer and body sizes, a gzip bomb, a body nested too deeply, implausible
costs, a fair and bounded wait for the process-wide slots, and the key in any form.

Each call goes through the real ``LLMBackend`` (the openai SDK's HTTP path) to the repo's fake
LLM, which serves the fault named in the model (``model@fault=...``, ``model@answer=...``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from autointerp_grpc.backends.llm import LLMBackend
from autointerp_grpc.config import Settings
from autointerp_grpc.errors import AutoInterpError, ResourceExhausted, Unavailable
from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2 as pb
from autointerp_grpc.observability import RequestStats, current_request
from autointerp_grpc.redaction import RedactingFilter, Secrets
from autointerp_grpc.usage import Usage
from autointerp_testing.fake_llm import FakeLLMServer, warm_gzip_bomb
from autointerp_testing.fake_llm.faults import echo_key_message

KEY = "sk-or-v1-Limits0123456789abcdefXYZ"
PROMPT = "Say something."


@pytest.fixture
async def backend(fake_llm: FakeLLMServer) -> AsyncIterator[LLMBackend]:
    fake_llm.set_fault(None)
    fake_llm.set_latency(0)
    llm = LLMBackend(Settings(llm_base_url=fake_llm.base_url, llm_max_retries=0))
    yield llm
    await llm.aclose()


async def _fails(backend: LLMBackend, model: str) -> AutoInterpError:
    client = backend.client(model, KEY)
    with pytest.raises(AutoInterpError) as info:
        await client.generate(PROMPT)
    # Recorded like any other call error (delphi's scorers swallow the exception).
    assert client.errors and client.errors[-1] is info.value
    return info.value


# --- item 1: the answer's size --------------------------------------------------------------


async def test_an_answer_over_the_limit_is_unavailable_naming_it(backend) -> None:
    error = await _fails(backend, "m@answer=huge")  # 300 KiB of content
    assert isinstance(error, Unavailable)
    assert "262144 bytes" in error.message
    assert "AUTOINTERP_LLM_MAX_ANSWER_BYTES" in error.message


async def test_an_answer_under_the_limit_still_reads(backend) -> None:
    response = await backend.client("m@answer=think", KEY).generate(PROMPT)
    assert isinstance(response.text, str)  # "<think>" x 8000: 56 KB, read (cleaned off-loop)


# --- item 3: the body's size, decoded --------------------------------------------------------


def _rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


class _PeakRss:
    """The highest RSS seen (sampled every 5 ms on a thread) while the block runs."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, _rss_bytes())
            time.sleep(0.005)

    def __enter__(self) -> _PeakRss:
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@pytest.mark.parametrize("fault", ["gzip_bomb", "huge_body", "lying_length"])
async def test_a_body_over_the_limit_is_unavailable_and_memory_stays_bounded(
    backend, fault
) -> None:
    warm_gzip_bomb()  # the fake compresses its bomb once; not counted here
    before = _rss_bytes()
    with _PeakRss() as rss:
        began = time.monotonic()
        error = await _fails(backend, f"m@fault={fault}")
        elapsed = time.monotonic() - began
    assert isinstance(error, Unavailable), error
    assert "8388608 bytes" in error.message
    assert "AUTOINTERP_LLM_MAX_RESPONSE_BYTES" in error.message
    # 200 MB decoded (gzip_bomb) or 64 MB sent (the others): at most the 8 MiB limit is held,
    # plus one decoded piece and the copy joined from the pieces.
    growth = rss.peak - before
    assert growth < 64 * 1024 * 1024, f"RSS grew {growth / 2**20:.0f} MiB"
    assert elapsed < 10, elapsed


async def test_a_redirect_is_followed_without_reading_its_body(backend) -> None:
    warm_gzip_bomb()
    before = _rss_bytes()
    with _PeakRss() as rss:
        # A 307 whose body is the 200 MB gzip bomb; the redirected request gets the answer.
        response = await backend.client("m@fault=redirect_bomb", KEY).generate(PROMPT)
    assert response.text == "I am a fake model."
    growth = rss.peak - before
    assert growth < 64 * 1024 * 1024, f"RSS grew {growth / 2**20:.0f} MiB"


async def test_a_body_under_the_limit_reads_as_before(fake_llm) -> None:
    llm = LLMBackend(
        Settings(
            llm_base_url=fake_llm.base_url,
            llm_max_retries=0,
            llm_max_response_bytes=128 * 1024 * 1024,
        )
    )
    try:
        # 64 MB of whitespace, then the completion: JSON all the same.
        response = await llm.client("m@fault=huge_body", KEY).generate(PROMPT)
    finally:
        await llm.aclose()
    assert response.text == "I am a fake model."


async def test_a_big_body_is_parsed_off_the_loop_and_reads_as_before(backend) -> None:
    # About 7 MB (100,000 per-token log probabilities): decoded on a worker thread.
    response = await backend.client("m@fault=logprobs_flood", KEY).generate(PROMPT, logprobs=True)
    assert response.text == "I am a fake model."
    assert response.logprobs is not None
    assert len(response.logprobs) == 100_000


# --- item 7: a body nested too deeply ------------------------------------------------------


async def test_a_body_nested_too_deeply_is_unavailable(backend) -> None:
    error = await _fails(backend, "m@fault=nested_body")
    assert isinstance(error, Unavailable), error
    assert "not a chat completion" in error.message


# --- item 2: implausible costs -----------------------------------------------------------


async def test_a_cost_of_1e308_reads_as_unknown_and_never_overflows(backend) -> None:
    client = backend.client("m@fault=huge_cost", KEY)
    for _ in range(3):
        response = await client.generate(PROMPT)
        assert response.text == "I am a fake model."
    assert client.usage.llm_calls == 3
    assert client.usage.cost is None
    assert not client.usage.to_proto().HasField("cost")


@pytest.mark.parametrize(
    "cost", [1e308, math.inf, -math.inf, math.nan, -1.0, 10**400, "0.5", True, None, 2e6]
)
def test_implausible_costs_are_unknown(cost: Any) -> None:
    usage = Usage()
    usage.add_call(1, 1, 0.25)
    usage.add_call(1, 1, cost)
    assert usage.cost == 0.25
    total = Usage()
    total.add(usage)
    total.add(Usage(costs=[1e308, 1e308]))  # built directly: still never summed
    total.add(pb.Usage(llm_calls=1, cost=1e308))  # from another server's stream
    assert total.cost == 0.25
    assert math.isfinite(total.cost)
    assert "cost 0.25" in total.describe()


# --- item 10: a fair, bounded wait for the process-wide slots --------------------------------


async def test_a_request_that_gets_no_slot_in_time_fails_resource_exhausted(
    fake_llm,
) -> None:
    llm = LLMBackend(
        Settings(
            llm_base_url=fake_llm.base_url,
            llm_max_retries=0,
            llm_max_concurrency=2,
            llm_slot_wait_s=0.5,
            llm_timeout_s=30,
        )
    )
    hog = llm.client("m@fault=hang", KEY)
    hogging = [asyncio.create_task(hog.generate(PROMPT)) for _ in range(4)]
    try:
        await asyncio.sleep(0.3)  # the hog's first two calls hold both slots
        client = llm.client("m", KEY)
        began = time.monotonic()
        with pytest.raises(ResourceExhausted) as info:
            await client.generate(PROMPT)
        waited = time.monotonic() - began
        assert 0.4 < waited < 2, waited
        assert "AUTOINTERP_LLM_MAX_CONCURRENCY" in info.value.message
        assert "all 2" in info.value.message
        assert client.errors == [info.value]
    finally:
        for task in hogging:
            task.cancel()
        await asyncio.gather(*hogging, return_exceptions=True)
        await llm.aclose()


async def test_the_slot_wait_never_outlasts_the_request(fake_llm) -> None:
    llm = LLMBackend(
        Settings(
            llm_base_url=fake_llm.base_url,
            llm_max_retries=0,
            llm_max_concurrency=1,
            llm_slot_wait_s=60,
            request_timeout_s=1.0,
        )
    )
    hog = asyncio.create_task(llm.client("m@fault=hang", KEY).generate(PROMPT))
    try:
        await asyncio.sleep(0.2)
        began = time.monotonic()
        with pytest.raises(ResourceExhausted):
            await llm.client("m", KEY).generate(PROMPT)
        assert time.monotonic() - began < 1.0  # before the request's own limit
    finally:
        hog.cancel()
        await asyncio.gather(hog, return_exceptions=True)
        await llm.aclose()


async def _as_request(stats: RequestStats, coroutine: Any) -> Any:
    current_request.set(stats)  # this task's own context
    return await coroutine


async def test_a_free_slot_goes_to_the_request_with_the_fewest_calls(fake_llm) -> None:
    """Request A queues 6 calls on 2 slots, then request B asks for one: B's first call gets
    the next free slot, ahead of A's third."""
    fake_llm.reset_stats()
    llm = LLMBackend(
        Settings(
            llm_base_url=fake_llm.base_url,
            llm_max_retries=0,
            llm_max_concurrency=2,
        )
    )
    order: list[str] = []

    async def call(stats: RequestStats, name: str) -> None:
        client = llm.client("m@latency=300", KEY)
        await _as_request(stats, client.generate(PROMPT))
        order.append(name)

    a, b = RequestStats(request_id="a"), RequestStats(request_id="b")
    try:
        tasks = [asyncio.create_task(call(a, f"a{i}")) for i in range(6)]
        await asyncio.sleep(0.1)  # a0 and a1 hold the slots, a2..a5 wait
        tasks.append(asyncio.create_task(call(b, "b0")))
        await asyncio.gather(*tasks)
    finally:
        await llm.aclose()
    # b0 started with the third pair (right after a0/a1), so it ends among the first four.
    assert order.index("b0") <= 3, order


# --- item 13: the key in any form -------------------------------------------------------------


@pytest.fixture
def captured() -> Iterator[tuple[Secrets, list[str]]]:
    secrets = Secrets()
    lines: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))

    handler = Keep(logging.DEBUG)
    handler.addFilter(RedactingFilter(secrets))
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield secrets, lines
    root.removeHandler(handler)
    root.setLevel(level)


def _leaks(text: str, key: str) -> list[str]:
    half = len(key) // 2
    pieces = [key[:half], key[half:], "".join(f"\\u{ord(c):04x}" for c in key[:8])]
    folded = text.lower()
    return [p for p in pieces if p.lower() in folded]


async def test_an_echoed_key_in_any_form_is_redacted_in_details_and_logs(backend, captured) -> None:
    secrets, lines = captured
    with secrets.holding([KEY]):
        error = await _fails(backend, "m@fault=echo_key")
        logging.getLogger("test").warning("provider said: %s", echo_key_message(KEY))
    assert error.message.startswith("The LLM provider rejected the request (HTTP 400)")
    assert "[redacted]" in error.message
    assert not _leaks(error.message, KEY), error.message
    assert len(error.message) < 450  # a short excerpt, never the body
    text = "\n".join(lines)
    assert "provider said:" in text
    assert not _leaks(text, KEY), text


def test_redaction_finds_every_form_and_stays_linear() -> None:
    from autointerp_grpc.redaction import redact_value

    message = echo_key_message(KEY)
    cleaned = redact_value(message, KEY)
    assert not _leaks(cleaned, KEY), cleaned
    assert cleaned.count("[redacted]") == 5
    twice = json.dumps({"detail": json.dumps({"message": message})})  # escaped twice
    assert not _leaks(redact_value(twice, KEY), KEY)
    assert redact_value("nothing to hide here", KEY) == "nothing to hide here"
    for hostile in ("\\" * 300_000, " " * 300_000, "\\u0073" * 50_000, KEY[:-1] * 10_000):
        began = time.perf_counter()
        redact_value(hostile, KEY)
        assert time.perf_counter() - began < 1.0
