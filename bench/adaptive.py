"""Sit at the provider's limit: adaptive concurrency against fixed, side by side, against the
fake LLM with a request-rate limit.

    .venv/bin/python bench/adaptive.py [--rps 125] [--latency-ms 200] [--seconds 20]

The fake LLM answers each chat completion after ``--latency-ms`` and at most ``--rps`` of
them per second (a token bucket holding one second's worth; beyond it HTTP 429 with
``retry-after-ms``). The service's own LLM backend (:class:`LLMBackend`, the openai SDK, the
process-wide gate) sends ``--calls`` calls from more callers than
``AUTOINTERP_LLM__MAX_CONCURRENCY`` allows, for ``--seconds`` each, three ways: adaptive
concurrency (the default), fixed concurrency at the cap (64, over the limit) and fixed at
half of what the limit would allow (under it). Each row: calls answered per second against
the limit (the whole run, the start included), the share of HTTP requests the fake answered
429, calls that failed after the SDK's retries, and the final adaptive limit.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "testing"))

from autointerp_grpc.backends.llm import LLMBackend  # noqa: E402
from autointerp_grpc.config import Settings  # noqa: E402
from autointerp_grpc.errors import AutoInterpError  # noqa: E402
from autointerp_testing.fake_llm import FakeLLMServer  # noqa: E402

MODEL = "openai/gpt-4o-mini"
API_KEY = "sk-bench-adaptive"
CALLERS = 128
"""Callers sending calls at once: more than any cap, so the gates decide."""


async def _drive(settings: Settings, run_s: float) -> tuple[float, int, int, float | None]:
    """Send calls from :data:`CALLERS` callers for ``run_s`` seconds; (seconds until the last
    answer, answered, failed, the final adaptive limit)."""
    backend = LLMBackend(settings)
    numbers = itertools.count()
    answered = failed = 0
    began = time.perf_counter()

    async def caller() -> None:
        nonlocal answered, failed
        while time.perf_counter() - began < run_s:
            i = next(numbers)
            client = backend.client(MODEL, API_KEY)
            try:
                await client.generate(f"Say something about the number {i}.")
                answered += 1
            except AutoInterpError:  # a typed failure after the SDK's retries
                failed += 1

    await asyncio.gather(*(caller() for _ in range(CALLERS)))
    seconds = time.perf_counter() - began
    gate = backend.adaptive.gate(backend.default_provider, MODEL)
    await backend.aclose()
    return seconds, answered, failed, gate.limit if gate is not None else None


def _run(fake: FakeLLMServer, label: str, run_s: float, **llm: object) -> dict[str, Any]:
    fake.reset_stats()
    time.sleep(1.5)  # the bucket refills: each mode starts with the same burst
    settings = Settings(llm={"base_url": fake.base_url, "max_retries": 10, **llm})
    seconds, answered, failed, limit = asyncio.run(_drive(settings, run_s))
    stats = fake.stats()
    requests = stats["requests"]
    refused = stats["by_status"].get(429, 0)
    return {
        "mode": label,
        "seconds": seconds,
        "answered": answered,
        "failed": failed,
        "rate": answered / seconds,
        "requests": requests,
        "refused": refused,
        "limit": limit,
        "peak": stats["peak_in_flight"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--rps", type=float, default=125.0, help="the fake's rate limit")
    parser.add_argument("--latency-ms", type=float, default=200.0, help="the fake's latency")
    parser.add_argument("--seconds", type=float, default=20.0, help="how long each mode runs")
    args = parser.parse_args()
    fits = args.rps * args.latency_ms / 1000.0
    with FakeLLMServer(latency_s=args.latency_ms / 1000.0) as fake:
        fake.set_rate_limit(args.rps)
        rows = [
            _run(fake, "adaptive (cap 64)", args.seconds),
            _run(fake, "fixed 64", args.seconds, adaptive_concurrency=False),
            _run(
                fake,
                f"fixed {max(1, round(fits / 2))}",
                args.seconds,
                adaptive_concurrency=False,
                max_concurrency=max(1, round(fits / 2)),
            ),
        ]
    print(
        f"\nfake LLM: {args.rps:g} requests/s limit (burst {args.rps:g}), "
        f"{args.latency_ms:g} ms per answer (the limit fits {fits:g} calls in flight); "
        f"{args.seconds:g} s per mode from {CALLERS} callers, up to 10 retries a call\n"
    )
    header = (
        "| mode | answered/s | of the limit | HTTP 429 / requests | failed calls "
        "| peak in flight | final limit | seconds |"
    )
    print(header)
    print("|" + "---|" * header.count(" | ") + "---|")
    for row in rows:
        share = row["refused"] / row["requests"] if row["requests"] else 0.0
        limit = row["limit"]
        print(
            f"| {row['mode']} | {row['rate']:.1f} | {row['rate'] / args.rps:.1%} "
            f"| {row['refused']} / {row['requests']} ({share:.2%}) | {row['failed']} "
            f"| {row['peak']} | {'' if limit is None else f'{limit:.1f}'} "
            f"| {row['seconds']:.1f} |"
        )


if __name__ == "__main__":
    main()
