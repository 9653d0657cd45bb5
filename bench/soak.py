"""Soak and limits: what the largest request each RPC accepts under the default caps costs.

    make soak            (or: .venv/bin/python bench/soak.py [--quick] [--doors grpc,rest]
                          [--shapes text,empty] [--rpc NAME] [--baseline-repo PATH]
                          [--no-health])

For every RPC (ExplainDefault, ScoreEmbedding, ScoreFuzzDetection, Explain, Score(embedding),
Score(detection), ExplainAndScore with one feature) it sends the biggest request the default
caps allow, each to a FRESH server (``python server.py``, started with bench/run.py's helper,
against the repo's fake LLM at 0 ms), so the peak RSS (VmHWM) after it is that request's, and
reports the peak before and after, the RSS after, whether it was accepted, how long it took
and /health latency while it ran. Two shapes of "biggest":

* ``text``: 1,000 records of 250 four-character tokens (1,000,000 characters: the request
  budget), half activating; scorers get a 2,000-character explanation (the cap);
* ``empty``: records of 4,096 empty tokens (no characters, so the character budget does not
  bind) until the 16 MiB body cap or the 500,000-token cap does: the most numbers a request
  can carry.

Then /health latency (p50/p99/max, sampled every 20 ms by a probe in its own process, so the
client's own work does not skew it) on an idle server and while a ~15 MiB REST body of
numbers is read, parsed and refused (it breaks the record rules only after parsing).

Prints Markdown tables. Nothing here is a test: numbers depend on the machine. bench/run.py
(``make bench``) has throughput and latency; this has memory and event-loop health.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from google.protobuf import json_format
from google.protobuf.message import Message
from harness import REPO, Server, machine, start_fake_llm, start_server, table

from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2 as pb
from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2_grpc as pb_grpc

API_KEY = "sk-soak"
MODEL = "soak/model"
# The default caps (autointerp_grpc/config.py); the requests below are sized to them.
MAX_RECORDS = 1000
MAX_TOKENS_PER_RECORD = 4096
MAX_REQUEST_CHARS = 1_000_000
MAX_EXPLANATION_CHARS = 2000
MAX_REQUEST_BYTES = 16 * 1024 * 1024
MAX_REQUEST_TOKENS = 500_000
EXPLANATION = ("the word cat " * 200)[:MAX_EXPLANATION_CHARS]
PROBE_INTERVAL_S = 0.02
REQUEST_TIMEOUT_S = 900.0


# --- the requests ---------------------------------------------------------------------------


def text_record(i: int, activating: bool) -> dict[str, Any]:
    """250 tokens of 4 characters (1,000 in all); an activating record peaks on " cat". The
    first token is the record's number, so no two texts are equal (the embedding backend
    encodes each distinct text once)."""
    tokens = [f" {chr(97 + (i + j) % 26)}{chr(97 + j % 26)}{j % 10}" for j in range(250)]
    tokens[0] = f" {i % 1000:03d}"
    values = [0.0] * 250
    if activating:
        tokens[100] = " cat"
        values[100] = 0.9
        values[101] = 0.3
    return {"tokens": tokens, "values": values}


def empty_record(activating: bool) -> dict[str, Any]:
    """4,096 empty tokens (no characters); an activating one has one value of 1."""
    values = [0] * MAX_TOKENS_PER_RECORD
    if activating:
        values[0] = 1
    return {"tokens": [""] * MAX_TOKENS_PER_RECORD, "values": values}


@dataclass(frozen=True)
class Rpc:
    name: str
    method: str  # the gRPC method
    path: str  # the REST route
    request_cls: type[Message]
    streaming: bool
    build: Callable[[list[dict[str, Any]], list[dict[str, Any]]], dict[str, Any]]
    """The JSON request from activating and non-activating records."""
    one_class: bool = False
    """Only activating records (an explainer that reads no others)."""


def _llm() -> dict[str, str]:
    return {"model": MODEL, "apiKey": API_KEY}


RPCS = [
    Rpc(
        "ExplainDefault",
        "ExplainDefault",
        "/v1/explain/default",
        pb.ExplainDefaultRequest,
        False,
        lambda act, non: {"activations": act, "openrouterKey": API_KEY, "model": MODEL},
        one_class=True,
    ),
    Rpc(
        "ScoreEmbedding",
        "ScoreEmbedding",
        "/v1/score/embedding",
        pb.ScoreEmbeddingRequest,
        False,
        lambda act, non: {"activations": act + non, "explanation": EXPLANATION},
    ),
    Rpc(
        "ScoreFuzzDetection (fuzz)",
        "ScoreFuzzDetection",
        "/v1/score/fuzz-detection",
        pb.ScoreFuzzDetectionRequest,
        False,
        lambda act, non: {
            "activations": act + non,
            "explanation": EXPLANATION,
            "openrouterKey": API_KEY,
            "model": MODEL,
            "type": "FUZZ",
        },
    ),
    Rpc(
        "Explain (default)",
        "Explain",
        "/v1/explain",
        pb.ExplainRequest,
        False,
        lambda act, non: {"method": "default", "activations": act, "llm": _llm()},
        one_class=True,
    ),
    Rpc(
        "Score (embedding)",
        "Score",
        "/v1/score",
        pb.ScoreRequest,
        False,
        lambda act, non: {
            "method": "embedding",
            "explanation": EXPLANATION,
            "activations": act + non,
        },
    ),
    Rpc(
        "Score (detection)",
        "Score",
        "/v1/score",
        pb.ScoreRequest,
        False,
        lambda act, non: {
            "method": "detection",
            "explanation": EXPLANATION,
            "activations": act + non,
            "llm": _llm(),
        },
    ),
    Rpc(
        "ExplainAndScore (1 feature: default; detection, fuzz, embedding)",
        "ExplainAndScore",
        "/v1/explain-and-score",
        pb.ExplainAndScoreRequest,
        True,
        lambda act, non: {
            "features": [{"id": "feature-0", "activations": act, "nonActivating": non}],
            "explainer": {"method": "default"},
            "scorers": [{"method": "detection"}, {"method": "fuzz"}, {"method": "embedding"}],
            "llm": _llm(),
        },
    ),
]


def records(shape: str, n: int, one_class: bool) -> tuple[list[dict], list[dict]]:
    """``n`` records of ``shape``: all activating, or half and half."""
    n_act = n if one_class else n // 2
    if shape == "text":
        act = [text_record(i, True) for i in range(n_act)]
        non = [text_record(i, False) for i in range(n_act, n)]
    else:
        act = [empty_record(True) for _ in range(n_act)]
        non = [empty_record(False) for _ in range(n - n_act)]
    return act, non


def wire_size(rpc: Rpc, door: str, body: dict[str, Any]) -> int:
    if door == "REST":
        return len(json.dumps(body, separators=(",", ":")))
    return json_format.ParseDict(body, rpc.request_cls()).ByteSize()


def biggest(rpc: Rpc, shape: str, door: str) -> tuple[dict[str, Any], int]:
    """The largest request of ``shape`` within the default caps on this door, and its number
    of records."""
    if shape == "text":  # 1,000 records x 1,000 characters: both caps at once
        return rpc.build(*records(shape, MAX_RECORDS, rpc.one_class)), MAX_RECORDS
    # Empty tokens: as many 4,096-token records as the body and token caps leave room for.
    one = wire_size(rpc, door, rpc.build(*records(shape, 2, rpc.one_class))) / 2
    n = min(
        MAX_RECORDS,
        int((MAX_REQUEST_BYTES - 64 * 1024) / one),
        MAX_REQUEST_TOKENS // MAX_TOKENS_PER_RECORD,
    )
    while n > 2:
        body = rpc.build(*records(shape, n, rpc.one_class))
        if wire_size(rpc, door, body) <= MAX_REQUEST_BYTES - 4096:
            return body, n
        n -= max(1, n // 100)
    raise RuntimeError("no request fits")


# --- the /health probe, in its own process --------------------------------------------------


def probe_main(url: str, out: Path, max_s: float) -> None:
    """Poll ``url`` every 20 ms until SIGTERM (or ``max_s``); write [status, ms] pairs."""
    stop = False

    def on_term(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_term)
    samples: list[tuple[int, float]] = []
    ready = out.with_suffix(".ready")
    deadline = time.monotonic() + max_s
    with httpx.Client(timeout=30) as http:
        while not stop and time.monotonic() < deadline:
            began = time.perf_counter()
            try:
                status = http.get(url).status_code
            except httpx.HTTPError:
                status = 0
            samples.append((status, (time.perf_counter() - began) * 1000))
            if len(samples) == 1:
                ready.touch()
            time.sleep(PROBE_INTERVAL_S)
    out.write_text(json.dumps(samples))


class Probe:
    """``with Probe(server) as probe:`` samples /health meanwhile; then ``probe.samples``."""

    def __init__(self, server: Server, out: Path, max_s: float = REQUEST_TIMEOUT_S + 60) -> None:
        self.args = [sys.executable, __file__, "--probe", f"{server.http_base}/health"]
        self.args += ["--probe-out", str(out), "--probe-max-s", str(max_s)]
        self.out = out
        self.samples: list[tuple[int, float]] = []

    def __enter__(self) -> Probe:
        ready = self.out.with_suffix(".ready")
        self.out.unlink(missing_ok=True)
        ready.unlink(missing_ok=True)
        self.process = subprocess.Popen(self.args, cwd=REPO)
        for _ in range(600):  # until its first sample is in (at most 60 s)
            if ready.exists() or self.process.poll() is not None:
                break
            time.sleep(0.1)
        return self

    def __exit__(self, *exc: object) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(60)
        if self.out.exists():
            self.samples = [tuple(s) for s in json.loads(self.out.read_text())]

    def summary(self) -> str:
        ms = sorted(latency for _, latency in self.samples)
        if not ms:
            return "no samples"
        bad = sum(1 for status, _ in self.samples if status != 200)
        text = f"{pct(ms, 50):.1f} / {pct(ms, 99):.1f} / {ms[-1]:.0f} ms (n={len(ms)}"
        return text + (f", {bad} not 200)" if bad else ")")


# --- measuring ------------------------------------------------------------------------------


def pct(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def status_mib(pid: int) -> dict[str, float]:
    """VmHWM (peak RSS) and VmRSS of a process, MiB."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key = line.split(":", 1)[0]
        if key in ("VmHWM", "VmRSS"):
            out[key] = int(line.split()[1]) / 1024
    return out


async def send(rpc: Rpc, door: str, server: Server, body: dict[str, Any]) -> str:
    """Send the request; "OK" or why not (a code; for bulk, the feature's error if any)."""
    if door == "gRPC":
        request = json_format.ParseDict(body, rpc.request_cls())
        async with grpc.aio.insecure_channel(
            server.grpc_target,
            # The legacy fuzz/detection breakdown echoes every record's values: the response
            # can be as big as the request (the server sends up to 64 MiB).
            options=[
                ("grpc.max_send_message_length", MAX_REQUEST_BYTES + 1024 * 1024),
                ("grpc.max_receive_message_length", 64 * 1024 * 1024),
            ],
        ) as channel:
            call = getattr(pb_grpc.AutoInterpStub(channel), rpc.method)
            try:
                if not rpc.streaming:
                    await call(request, timeout=REQUEST_TIMEOUT_S)
                    return "OK"
                outcome = "no result"
                async for event in call(request, timeout=REQUEST_TIMEOUT_S):
                    if event.HasField("result"):
                        outcome = bulk_outcome(json_format.MessageToDict(event.result))
                return outcome
            except grpc.aio.AioRpcError as exc:
                return f"{exc.code().name}: {(exc.details() or '')[:80]}"
    content = json.dumps(body, separators=(",", ":")).encode()
    headers = {"Content-Type": "application/json"}
    async with httpx.AsyncClient(base_url=server.http_base, timeout=REQUEST_TIMEOUT_S) as http:
        if not rpc.streaming:
            response = await http.post(rpc.path, content=content, headers=headers)
            if response.status_code == 200:
                return "OK"
            return (
                f"{response.status_code} {response.json().get('code')}: "
                + response.json().get("detail", "")[:80]
            )
        outcome = "no result"
        async with http.stream("POST", rpc.path, content=content, headers=headers) as response:
            if response.status_code != 200:
                await response.aread()
                return f"{response.status_code}: {response.text[:80]}"
            async for line in response.aiter_lines():
                if not line.strip():
                    continue
                event = json.loads(line)
                if event.get("result"):
                    outcome = bulk_outcome(event["result"])
                elif "code" in event and "detail" in event:
                    outcome = f"stream error {event['code']}: {event['detail'][:80]}"
        return outcome


def bulk_outcome(result: dict[str, Any]) -> str:
    """A bulk feature result (JSON): "OK", or what failed (the REST door prints unset
    messages as null)."""
    error = result.get("error")
    if error:
        return f"feature {error.get('code')}: {(error.get('message') or '')[:80]}"
    failed = [s for s in result.get("scores") or [] if s.get("error")]
    if failed:
        return "scorer " + ", ".join(f"{s['method']} {s['error'].get('code')}" for s in failed)
    return "OK"


async def measure_case(
    rpc: Rpc, shape: str, door: str, llm_base_url: str, scratch: Path, repo: Path = REPO
) -> list[str]:
    body, n_records = biggest(rpc, shape, door)
    size = wire_size(rpc, door, body)
    server = start_server(llm_base_url, coalesce=True, repo=repo)
    try:
        before = status_mib(server.process.pid)
        with Probe(server, scratch / "probe.json") as probe:
            began = time.perf_counter()
            try:
                outcome = await send(rpc, door, server, body)
            except Exception as exc:  # a row saying so, not a lost run
                outcome = f"client error {type(exc).__name__}: {str(exc)[:80]}"
            seconds = time.perf_counter() - began
        after = status_mib(server.process.pid)
    finally:
        server.stop()
    return [
        rpc.name,
        door,
        shape,
        f"{n_records} rec, {size / 2**20:.1f} MiB",
        outcome,
        f"{seconds:.1f}",
        f"{before['VmHWM']:.0f}",
        f"{after['VmHWM']:.0f}",
        f"{after['VmHWM'] - before['VmHWM']:+.0f}",
        f"{after['VmRSS']:.0f}",
        probe.summary(),
    ]


def numbers_body(target_bytes: int = 15 * 1024 * 1024) -> bytes:
    """~15 MiB of JSON numbers in a ScoreEmbedding body: 1,000 records of values and no
    tokens, so it is refused (tokens must not be empty), but only once it is all parsed."""
    per_record = target_bytes // MAX_RECORDS // 2  # "0," per number
    record = '{"tokens":[],"values":[' + ",".join(["0"] * per_record) + "]}"
    return ('{"explanation":"x","activations":[' + ",".join([record] * MAX_RECORDS) + "]}").encode()


async def health_latency(
    llm_base_url: str, scratch: Path, idle_s: float, repo: Path = REPO
) -> list[list[str]]:
    body = numbers_body()
    server = start_server(llm_base_url, coalesce=True, repo=repo)
    rows = []
    try:
        with Probe(server, scratch / "idle.json") as idle:
            await asyncio.sleep(idle_s)
        rows.append(["idle", "", "", idle.summary()])
        before = status_mib(server.process.pid)["VmHWM"]
        async with httpx.AsyncClient(base_url=server.http_base, timeout=REQUEST_TIMEOUT_S) as http:
            with Probe(server, scratch / "busy.json") as busy:
                began = time.perf_counter()
                response = await http.post(
                    "/v1/score/embedding",
                    content=body,
                    headers={"Content-Type": "application/json"},
                )
                seconds = time.perf_counter() - began
                await asyncio.sleep(0.2)
        after = status_mib(server.process.pid)["VmHWM"]
        answer = f"{response.status_code} {response.json().get('code')}"
        rows.append(
            [
                f"during a {len(body) / 2**20:.1f} MiB REST body of numbers "
                f"(ScoreEmbedding; peak RSS {before:.0f} -> {after:.0f} MiB)",
                answer,
                f"{seconds:.1f}",
                busy.summary(),
            ]
        )
    finally:
        server.stop()
    return rows


async def main(
    quick: bool,
    doors: list[str],
    shapes: list[str],
    only: str | None,
    baseline_repo: Path | None = None,
    health: bool = True,
) -> None:
    # bench/run.py, beside this file: the fake LLM and server processes, the table printer.

    scratch = Path("/tmp") / f"autointerp-soak-{time.time_ns()}"
    scratch.mkdir(parents=True)
    fake, llm_base_url = start_fake_llm()
    # With a baseline, every case runs on both checkouts back to back (the same requests).
    checkouts = [("this", REPO)] + ([("baseline", baseline_repo)] if baseline_repo else [])
    rows: list[list[str]] = []
    health_rows: list[list[str]] = []
    try:
        for label, repo in checkouts if health else []:
            for row in await health_latency(llm_base_url, scratch, 3.0 if quick else 10.0, repo):
                health_rows.append([label, *row])
        for rpc in RPCS:
            if only and only.lower() not in rpc.name.lower():
                continue
            for shape in shapes:
                for door in doors:
                    for label, repo in checkouts:
                        row = [
                            label,
                            *await measure_case(rpc, shape, door, llm_base_url, scratch, repo),
                        ]
                        print(" | ".join(row), file=sys.stderr, flush=True)
                        rows.append(row)
    finally:
        fake.terminate()
    print(f"Machine: {machine()}\n")
    header = ["checkout", "RPC", "door", "shape", "request", "outcome", "s",
              "peak RSS before MiB", "peak RSS after MiB", "delta", "RSS after MiB",
              "/health p50 / p99 / max"]  # fmt: skip
    print(table(header, rows))
    for label, _ in checkouts:
        mine = [r for r in rows if r[0] == label]
        if mine:
            worst = max(mine, key=lambda r: float(r[8]))
            print(
                f"\nWorst peak RSS ({label}): {worst[8]} MiB ({worst[1]}, {worst[2]}, {worst[3]})"
            )
    print()
    header = ["checkout", "/health (every 20 ms)", "answer", "s", "p50 / p99 / max"]
    print(table(header, health_rows))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "soak").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="gRPC, text shape, short idle")
    parser.add_argument("--doors", default="gRPC,REST", help="comma-separated: gRPC,REST")
    parser.add_argument("--shapes", default="text,empty", help="comma-separated: text,empty")
    parser.add_argument("--rpc", help="only the RPCs whose row name contains this")
    parser.add_argument(
        "--baseline-repo",
        type=Path,
        help="a checkout of another commit: every case also runs there, right after this one",
    )
    parser.add_argument(
        "--no-health", action="store_true", help="skip the idle and body-of-numbers /health runs"
    )
    parser.add_argument("--probe", help=argparse.SUPPRESS)
    parser.add_argument("--probe-out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--probe-max-s", type=float, default=600.0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.probe:
        probe_main(args.probe, args.probe_out, args.probe_max_s)
    else:
        doors = ["gRPC"] if args.quick else [d.strip() for d in args.doors.split(",")]
        doors = ["REST" if d.lower() == "rest" else "gRPC" for d in doors]
        shapes = ["text"] if args.quick else [s.strip() for s in args.shapes.split(",")]
        asyncio.run(
            main(args.quick, doors, shapes, args.rpc, args.baseline_repo, not args.no_health)
        )
