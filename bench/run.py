"""Benchmark: the service against stock delphi called the way the legacy server did.

    make bench            (or: .venv/bin/python bench/run.py [--quick])

Starts the repo's fake LLM (its own process, a fixed injected latency per request through the
model name) and the real server (`python server.py`, twice: embedding coalescing on and off),
then measures, each row side by side in this one run:

* fuzz and detection latency for 10, 40 and 100 examples at 200 ms LLM latency: ours
  (ScoreFuzzDetection over gRPC) vs the baseline (stock delphi scorers, sequential batches,
  a new delphi OpenRouter client per request, in this process: no server hop at all);
* ExplainDefault over gRPC and over REST at concurrency 1, 16 and 64 with a 0 ms and a 200 ms
  LLM: requests/s, p50 and p99 latency, and the overhead (p50 minus the injected LLM time;
  it includes the fake LLM's own handling and loopback, measured separately as a reference),
  next to the baseline's p50 (stock delphi DefaultExplainer, new client per request);
* ScoreEmbedding throughput (examples/s) at concurrency 1 and 16, coalescing on vs off;
* bulk ExplainAndScore (1,000 features, default explainer + detection + fuzz, 200 ms LLM):
  features per minute against a sequential stock-delphi loop (timed on 20 features);
* the server's own CPU time per request (ExplainDefault and Score(detection), both doors,
  0 ms LLM; ``bench/cpu.py``, which can also measure another checkout beside this one);
* each server's peak RSS and time from process start to SERVING.

Prints a Markdown table. Nothing here is a test: numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import cpu  # bench/cpu.py, beside this file
from harness import Server, machine, start_fake_llm, start_server, table

from autointerp_grpc import delphi_compat  # registers the vLLM shim first
from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2 as pb
from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2_grpc as pb_grpc
from autointerp_grpc.records import activating_example, split_records

from delphi.clients.openrouter import OpenRouter  # isort: skip  (after delphi_compat)

API_KEY = "sk-bench"
MODEL = "bench/model"
EXPLAIN_RECORDS = [
    {"tokens": ["The", " cat", " sat", " on", " the", " mat"], "values": [0, 0.8, 0, 0, 0, 0]},
    {"tokens": ["I", " like", " felines"], "values": [0, 0, 0.9]},
]


def records(n: int) -> list[dict[str, Any]]:
    """n records, half activating on a cat token, half not."""
    out = []
    for i in range(n):
        if i % 2 == 0:
            out.append({"tokens": ["My", " cat", " sat", f" {i}"], "values": [0, 0.9, 0, 0]})
        else:
            out.append({"tokens": ["The", " bank", " rose", f" {i}"], "values": [0, 0, 0, 0]})
    return out


# --- measuring ------------------------------------------------------------------------------


@dataclass
class Run:
    latencies_s: list[float]
    wall_s: float

    @property
    def rps(self) -> float:
        return len(self.latencies_s) / self.wall_s

    def pct_ms(self, q: float) -> float:
        ordered = sorted(self.latencies_s)
        index = min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))
        return ordered[index] * 1000


async def load(call: Callable[[], Awaitable[Any]], concurrency: int, total: int) -> Run:
    """``total`` calls, ``concurrency`` at a time; every call must succeed."""
    latencies: list[float] = []
    remaining = iter(range(total))

    async def worker() -> None:
        for _ in remaining:
            began = time.perf_counter()
            await call()
            latencies.append(time.perf_counter() - began)

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return Run(latencies, time.perf_counter() - began)


def model_with_latency(ms: int) -> str:
    return f"{MODEL}@latency={ms}"


# --- the baseline: stock delphi as the legacy server called it ------------------------------


def _delphi_record(recs: list[dict[str, Any]], explanation: str) -> Any:
    record = delphi_compat.LatentRecord(delphi_compat.Latent("feature", 0))
    # The same delphi examples the service builds, so both sides score identical inputs.
    parts = split_records([pb.Activation(**r) for r in recs])
    record.test = parts.activating
    record.not_active = parts.non_activating
    record.explanation = explanation
    return record


async def baseline_classifier(
    llm_base_url: str, recs: list[dict[str, Any]], fuzz: bool, latency_ms: int
) -> None:
    client = OpenRouter(
        model_with_latency(latency_ms), api_key=API_KEY, base_url=f"{llm_base_url}/chat/completions"
    )
    scorer_cls = delphi_compat.FuzzingScorer if fuzz else delphi_compat.DetectionScorer
    scorer = scorer_cls(client, verbose=False, n_examples_shown=5, log_prob=False)
    await scorer(_delphi_record(recs, "the word cat"))
    await client.client.aclose()


async def baseline_explain(llm_base_url: str, latency_ms: int) -> None:
    client = OpenRouter(
        model_with_latency(latency_ms), api_key=API_KEY, base_url=f"{llm_base_url}/chat/completions"
    )
    record = delphi_compat.LatentRecord(delphi_compat.Latent("feature", 0))
    record.train = [activating_example(pb.Activation(**r)) for r in EXPLAIN_RECORDS]
    explainer = delphi_compat.DefaultExplainer(client, threshold=0.6, activations=False)
    result = await explainer(record)
    assert result.explanation.startswith("Mentions of"), result.explanation
    await client.client.aclose()


# --- the rows -------------------------------------------------------------------------------


async def bench_classifiers(server: Server, llm_base_url: str, reps: int) -> list[list[str]]:
    rows = []
    async with grpc.aio.insecure_channel(server.grpc_target) as channel:
        stub = pb_grpc.AutoInterpStub(channel)
        for kind, fuzz in (("fuzz", True), ("detection", False)):
            for n in (10, 40, 100):
                recs = records(n)
                request = pb.ScoreFuzzDetectionRequest(
                    activations=[pb.Activation(**r) for r in recs],
                    explanation="the word cat",
                    openrouter_key=API_KEY,
                    model=model_with_latency(200),
                    type=pb.FUZZ if fuzz else pb.DETECTION,
                )
                ours, base = [], []
                for _ in range(reps):
                    began = time.perf_counter()
                    await stub.ScoreFuzzDetection(request, timeout=120)
                    ours.append(time.perf_counter() - began)
                    began = time.perf_counter()
                    await baseline_classifier(llm_base_url, recs, fuzz, 200)
                    base.append(time.perf_counter() - began)
                o, b = statistics.median(ours), statistics.median(base)
                rows.append([f"{kind}, {n} examples, 200 ms LLM", f"{o * 1000:.0f} ms",
                             f"{b * 1000:.0f} ms", f"{o / b:.2f}x"])  # fmt: skip
    return rows


async def bench_explain(server: Server, llm_base_url: str, quick: bool) -> list[list[str]]:
    rows = []
    grpc_request = pb.ExplainDefaultRequest(
        activations=[pb.Activation(**r) for r in EXPLAIN_RECORDS], openrouter_key=API_KEY
    )
    async with (
        grpc.aio.insecure_channel(server.grpc_target) as channel,
        httpx.AsyncClient(
            base_url=server.http_base, limits=httpx.Limits(max_connections=128), timeout=60
        ) as http,
    ):
        stub = pb_grpc.AutoInterpStub(channel)
        for latency in (0, 200):
            model = model_with_latency(latency)
            grpc_request.model = model
            body = json.dumps(
                {"activations": EXPLAIN_RECORDS, "openrouter_key": API_KEY, "model": model}
            )

            async def over_grpc() -> None:
                await stub.ExplainDefault(grpc_request, timeout=60)

            async def over_rest(body: str = body) -> None:
                response = await http.post(
                    "/v1/explain/default",
                    content=body,
                    headers={"Content-Type": "application/json"},
                )
                response.raise_for_status()

            async def baseline(latency: int = latency) -> None:
                await baseline_explain(llm_base_url, latency)

            for concurrency in (1, 16, 64):
                total = max(20 if quick else 40, concurrency * (2 if quick else 4))
                await load(over_grpc, min(concurrency, 8), 16)  # warm-up
                base = await load(baseline, concurrency, total)
                for door, call in (("gRPC", over_grpc), ("REST", over_rest)):
                    run = await load(call, concurrency, total)
                    rows.append([
                        f"ExplainDefault {door}, {latency} ms LLM, concurrency {concurrency}",
                        f"{run.rps:.1f}", f"{run.pct_ms(50):.1f}", f"{run.pct_ms(99):.1f}",
                        f"{run.pct_ms(50) - latency:.1f}", f"{base.pct_ms(50):.1f}",
                    ])  # fmt: skip
    return rows


async def bench_embedding(servers: dict[str, Server], quick: bool) -> list[list[str]]:
    rows = []
    recs = records(20)
    request = pb.ScoreEmbeddingRequest(
        activations=[pb.Activation(**r) for r in recs], explanation="the word cat"
    )
    for concurrency in (1, 16):
        result = {}
        for label, server in servers.items():
            async with grpc.aio.insecure_channel(server.grpc_target) as channel:
                stub = pb_grpc.AutoInterpStub(channel)

                async def call(stub: pb_grpc.AutoInterpStub = stub) -> None:
                    await stub.ScoreEmbedding(request, timeout=120)

                await load(call, concurrency, concurrency)  # warm-up
                total = concurrency * (4 if quick else 10)
                run = await load(call, concurrency, total)
                result[label] = total * len(recs) / run.wall_s
        on, off = result["coalescing on"], result["coalescing off"]
        rows.append([f"ScoreEmbedding (gRPC), 20 examples/request, concurrency {concurrency}",
                     f"{on:.0f}", f"{off:.0f}", f"{on / off:.2f}x"])  # fmt: skip
    return rows


def bulk_feature(i: int) -> dict[str, Any]:
    recs = records(10)
    return {
        "id": f"feature-{i}",
        "activations": [r for r in recs if sum(r["values"]) > 0],
        "non_activating": [r for r in recs if sum(r["values"]) <= 0],
    }


async def bench_bulk(
    server: Server, llm_base_url: str, n_features: int, n_baseline: int
) -> list[str]:
    """Features per minute: ExplainAndScore (default explainer + detection + fuzz) against a
    sequential loop of stock delphi (explain, detect, fuzz, one feature after another, a new
    client per call as the legacy server made them)."""
    request = pb.ExplainAndScoreRequest(
        features=[
            pb.Feature(
                id=f["id"],
                activations=[pb.Activation(**r) for r in f["activations"]],
                non_activating=[pb.Activation(**r) for r in f["non_activating"]],
            )
            for f in (bulk_feature(i) for i in range(n_features))
        ],
        explainer=pb.ExplainerChoice(method="default"),
        scorers=[pb.ScorerChoice(method="detection"), pb.ScorerChoice(method="fuzz")],
        llm=pb.LlmOptions(model=model_with_latency(200), api_key=API_KEY),
        options=pb.BulkOptions(concurrency=64),
    )
    began = time.perf_counter()
    done = failed = 0
    async with grpc.aio.insecure_channel(server.grpc_target) as channel:
        stream = pb_grpc.AutoInterpStub(channel).ExplainAndScore(request, timeout=3600)
        async for event in stream:
            if event.HasField("result"):
                done += 1
                failed += event.result.HasField("error")
    ours = done / (time.perf_counter() - began) * 60
    began = time.perf_counter()
    for i in range(n_baseline):
        feature = bulk_feature(i)
        await baseline_explain(llm_base_url, 200)
        recs = feature["activations"] + feature["non_activating"]
        await baseline_classifier(llm_base_url, recs, fuzz=False, latency_ms=200)
        await baseline_classifier(llm_base_url, recs, fuzz=True, latency_ms=200)
    baseline = n_baseline / (time.perf_counter() - began) * 60
    return [
        f"{n_features} features, explain + detection + fuzz, 200 ms LLM "
        f"(baseline timed on {n_baseline} features)",
        f"{ours:.0f}",
        f"{baseline:.1f}",
        f"{ours / baseline:.0f}x",
        f"{failed}",
    ]


async def fake_round_trip_ms(llm_base_url: str) -> float:
    async with httpx.AsyncClient(timeout=10) as http:
        body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
        headers = {"Authorization": f"Bearer {API_KEY}"}

        async def call() -> None:
            (
                await http.post(f"{llm_base_url}/chat/completions", json=body, headers=headers)
            ).raise_for_status()

        await load(call, 1, 10)
        return (await load(call, 1, 50)).pct_ms(50)


async def main(quick: bool) -> None:
    # delphi's OpenRouter client warns about logprobs on every construction.
    logging.getLogger("delphi").setLevel(logging.ERROR)
    fake, llm_base_url = start_fake_llm()
    servers: dict[str, Server] = {}
    try:
        servers["coalescing on"] = start_server(llm_base_url, coalesce=True)
        servers["coalescing off"] = start_server(llm_base_url, coalesce=False)
        ours = servers["coalescing on"]
        reps = 1 if quick else 3
        classifier_rows = await bench_classifiers(ours, llm_base_url, reps)
        explain_rows = await bench_explain(ours, llm_base_url, quick)
        embedding_rows = await bench_embedding(servers, quick)
        bulk_row = await bench_bulk(ours, llm_base_url, 200 if quick else 1000, 5 if quick else 20)
        cpu_rows = [
            [name, f"{ms:.2f}"]
            for name, ms in (
                await cpu.measure(
                    ours.process.pid, ours.grpc_target, ours.http_base, 100 if quick else 400
                )
            ).items()
        ]
        round_trip = await fake_round_trip_ms(llm_base_url)
        process_rows = [
            [label, f"{s.start_to_serving_s:.1f} s", f"{s.peak_rss_mib():.0f} MiB"]
            for label, s in servers.items()
        ]
    finally:
        for server in servers.values():
            server.stop()
        fake.terminate()
    print(f"Machine: {machine()}\n")
    print(table([f"fuzz/detection latency (median of {reps})", "ours", "baseline", "ratio"],
                classifier_rows))  # fmt: skip
    print()
    print(table(["ExplainDefault", "req/s", "p50 ms", "p99 ms", "overhead p50 ms",
                 "baseline p50 ms"], explain_rows))  # fmt: skip
    print(
        f"\n(fake LLM round trip from a client, p50: {round_trip:.1f} ms; part of every overhead)\n"
    )
    print(table(["ScoreEmbedding", "examples/s coalescing on", "off", "ratio"], embedding_rows))
    print()
    print(table(["bulk ExplainAndScore", "features/min", "sequential delphi features/min",
                 "ratio", "failed"], [bulk_row]))  # fmt: skip
    print()
    print(table(["server CPU per request, 0 ms LLM", "ms"], cpu_rows))
    print()
    print(table(["server", "start to SERVING", "peak RSS"], process_rows))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").partition("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (a smoke run)")
    asyncio.run(main(parser.parse_args().quick))
