"""Server CPU per request: the server process's own CPU time (user + system, from /proc) spent
per request, for ExplainDefault and Score(detection) on both doors, with a 0 ms fake LLM; and
ExplainDefault of 20 records of 64 tokens, where converting the records costs most.

    .venv/bin/python bench/cpu.py [--requests N] [--baseline-repo PATH]

``make bench`` prints these rows too. With ``--baseline-repo`` (a checkout of another commit,
e.g. ``git worktree add /tmp/before <commit>``) the same requests also go to that checkout's
``server.py``, running beside this one, each row measured in rounds that alternate between
the two servers, so a change's effect shows side by side and drift on a shared machine falls
on both columns. The fake LLM
runs in its own process, so its CPU is not counted; the clients run in this process.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import grpc
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness import REPO, start_fake_llm, start_server, table

from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2 as pb
from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2_grpc as pb_grpc

API_KEY = "sk-bench"
MODEL = "bench/model"
RECORDS = [
    {"tokens": ["The", " cat", " sat", " on", " the", " mat"], "values": [0, 0.8, 0, 0, 0, 0]},
    {"tokens": ["I", " like", " felines"], "values": [0, 0, 0.9]},
]
# Score(detection): 10 records, half activating, 5 per prompt: two LLM calls per request.
SCORE_RECORDS = [
    {"tokens": ["My", " cat", " sat", f" {i}"], "values": [0, 0.9, 0, 0]}
    if i % 2 == 0
    else {"tokens": ["The", " bank", " rose", f" {i}"], "values": [0, 0, 0, 0]}
    for i in range(10)
]
# ExplainDefault with 20 records of 64 tokens (about 30 KB of JSON): one LLM call, so the
# request's own conversion (JSON or protobuf) is most of what the server does.
WIDE_RECORDS = [
    {
        "tokens": [f" word{i}_{j}" for j in range(64)],
        "values": [round(((i * 7 + j) % 11) / 10, 1) for j in range(64)],
    }
    for i in range(20)
]
CONCURRENCY = 4


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (its threads included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


async def per_request_ms(pid: int, call: Callable[[], Awaitable[None]], total: int) -> float:
    """Server CPU ms per request over ``total`` calls, CONCURRENCY at a time (after a warm-up)."""
    for _ in range(20):
        await call()
    remaining = iter(range(total))

    async def worker() -> None:
        for _ in remaining:
            await call()

    before = cpu_seconds(pid)
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return (cpu_seconds(pid) - before) * 1000 / total


def calls(grpc_target: str, http_base: str) -> dict[str, Callable[[], Awaitable[None]]]:
    """The measured calls by name; each raises unless it succeeds."""
    channel = grpc.aio.insecure_channel(grpc_target)
    stub = pb_grpc.AutoInterpStub(channel)
    http = httpx.AsyncClient(base_url=http_base, timeout=60)
    explain = {"activations": RECORDS, "openrouterKey": API_KEY, "model": MODEL}
    score = {
        "method": "detection",
        "explanation": "the word cat",
        "activations": SCORE_RECORDS,
        "llm": {"model": MODEL, "apiKey": API_KEY},
    }
    wide = {"activations": WIDE_RECORDS, "openrouterKey": API_KEY, "model": MODEL}
    explain_pb = pb.ExplainDefaultRequest(
        activations=[pb.Activation(**r) for r in RECORDS], openrouter_key=API_KEY, model=MODEL
    )
    wide_pb = pb.ExplainDefaultRequest(
        activations=[pb.Activation(**r) for r in WIDE_RECORDS], openrouter_key=API_KEY, model=MODEL
    )
    score_pb = pb.ScoreRequest(
        method="detection",
        explanation="the word cat",
        activations=[pb.Activation(**r) for r in SCORE_RECORDS],
        llm=pb.LlmOptions(model=MODEL, api_key=API_KEY),
    )
    headers = {"Content-Type": "application/json"}

    async def rest(path: str, body: dict) -> None:
        response = await http.post(path, content=json.dumps(body), headers=headers)
        response.raise_for_status()

    async def explain_grpc() -> None:
        await stub.ExplainDefault(explain_pb, timeout=60)

    async def explain_rest() -> None:
        await rest("/v1/explain/default", explain)

    async def wide_grpc() -> None:
        await stub.ExplainDefault(wide_pb, timeout=60)

    async def wide_rest() -> None:
        await rest("/v1/explain/default", wide)

    async def score_grpc() -> None:
        await stub.Score(score_pb, timeout=60)

    async def score_rest() -> None:
        await rest("/v1/score", score)

    return {
        "ExplainDefault gRPC": explain_grpc,
        "ExplainDefault REST": explain_rest,
        "Score(detection) gRPC": score_grpc,
        "Score(detection) REST": score_rest,
        "ExplainDefault 20x64 gRPC": wide_grpc,
        "ExplainDefault 20x64 REST": wide_rest,
    }


async def measure(pid: int, grpc_target: str, http_base: str, total: int) -> dict[str, float]:
    return {
        name: await per_request_ms(pid, call, total)
        for name, call in calls(grpc_target, http_base).items()
    }


ROUNDS = 4
"""With a baseline, each row is measured in this many alternating rounds per server."""


async def main(total: int, baseline_repo: Path | None) -> None:
    fake, llm_base_url = start_fake_llm()
    results: dict[str, dict[str, float]] = {}
    checkouts = {"this checkout": REPO}
    if baseline_repo is not None:
        checkouts["baseline checkout"] = baseline_repo
    servers = {}
    try:
        for label, repo in checkouts.items():
            servers[label] = start_server(llm_base_url, coalesce=True, repo=repo)
        if len(servers) == 1:
            [server] = servers.values()
            results["this checkout"] = await measure(
                server.process.pid, server.grpc_target, server.http_base, total
            )
        else:
            # Both servers run side by side and each row alternates between them, round by
            # round: whatever else the machine does in the meantime (other processes, clock
            # changes) falls on both columns alike.
            by_server = {label: calls(s.grpc_target, s.http_base) for label, s in servers.items()}
            names = list(next(iter(by_server.values())))
            rounds = max(1, min(ROUNDS, total // 50))
            for label in servers:
                results[label] = dict.fromkeys(names, 0.0)
            for name in names:
                for _ in range(rounds):
                    for label, server in servers.items():
                        ms = await per_request_ms(
                            server.process.pid, by_server[label][name], total // rounds
                        )
                        results[label][name] += ms / rounds
    finally:
        for server in servers.values():
            server.stop()
        fake.terminate()
    labels = list(results)
    rows = [
        [name, *(f"{results[label][name]:.2f}" for label in labels)] for name in results[labels[0]]
    ]
    print(table(["server CPU ms per request", *labels], rows))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").partition("\n")[0])
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--baseline-repo", type=Path, default=None)
    args = parser.parse_args()
    asyncio.run(main(args.requests, args.baseline_repo))
