"""Never pay twice: the response store, the estimate and the price table, side by side in one
run against the fake LLM.

    .venv/bin/python bench/store.py [--features N]

Starts the fake LLM and ``server.py`` (SQLite store in a temporary directory, a price table
for the model), then runs ``autointerp run`` four ways on the same N features (made from
``examples/features.jsonl``, each with its own words so no two prompts are alike):
``--estimate`` (a dry run of a sample), the live run, the same run again into a new results
file, and the live run with ``--max-cost`` at a third of the live run's cost; then, on a second
server with an empty store of its own, the same run through the fake's Batch API (``--batch``).
Each row: upstream calls the fake LLM received (chat completions; batch requests for the batch
run), tokens, dollars, seconds. ``make bench-store`` runs it with 1,000 features.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "testing"))

from autointerp_testing.fake_llm import FakeLLMServer  # noqa: E402

MODEL = "openai/gpt-4o-mini"
# The fake LLM's own reported cost (1e-6 dollars a token), which wins over the table on live
# calls; the same price here makes the estimate's dollars comparable.
PRICES = {MODEL: {"input": 1.0, "output": 1.0}}
API_KEY = "sk-bench-store"


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _features(n: int, path: Path) -> None:
    examples = [json.loads(line) for line in (REPO / "examples" / "features.jsonl").open()]
    with path.open("w") as out:
        for i in range(n):
            feature = json.loads(json.dumps(examples[i % len(examples)]))
            feature["id"] = f"bench-{i}"
            for record in feature.get("activations", []):
                record["tokens"] = [f"{t}{i}" if t.strip() else t for t in record["tokens"]]
            out.write(json.dumps(feature) + "\n")


def _start(fake: FakeLLMServer, root: Path, store: str = "store") -> tuple[subprocess.Popen, str]:
    grpc_port, http_port = _port(), _port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTOINTERP_")}
    env.pop("SECRET", None)
    env.update(
        AUTOINTERP_HOST="127.0.0.1",
        AUTOINTERP_GRPC_PORT=str(grpc_port),
        AUTOINTERP_HTTP_PORT=str(http_port),
        AUTOINTERP_LLM_BASE_URL=fake.base_url,
        AUTOINTERP_STORE__DIR=str(root / store),
        AUTOINTERP_LLM__PRICES=json.dumps(PRICES),
        HF_HUB_OFFLINE="1",
    )
    log = (root / f"server-{store}.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "server.py"], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{http_port}/health", timeout=1).status_code == 200:
                return process, f"127.0.0.1:{grpc_port}"
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    process.kill()
    raise SystemExit("server did not start; see " + str(root / f"server-{store}.log"))


def _cli(target: str, features: Path, output: Path, *extra: str) -> tuple[int, str, float]:
    env = {**os.environ, "AUTOINTERP_API_KEY": API_KEY}
    env.pop("SECRET", None)
    began = time.perf_counter()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "autointerp_grpc.cli",
            "run",
            "--server",
            target,
            "--input",
            str(features),
            "--output",
            str(output),
            "--model",
            MODEL,
            "--no-progress",
            *extra,
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    return result.returncode, result.stdout + result.stderr, time.perf_counter() - began


def _totals(path: Path) -> tuple[int, float, int]:
    tokens, dollars, stored = 0, 0.0, 0
    for line in path.open():
        usage = json.loads(line).get("usage", {})
        tokens += int(usage.get("promptTokens", 0)) + int(usage.get("completionTokens", 0))
        dollars += float(usage.get("cost", 0.0))
        stored += int(usage.get("cachedResponses", 0))
    return tokens, dollars, stored


def _figure(text: str, label: str) -> float:
    found = re.search(rf"^{re.escape(label)}\s+\S+\s+([\d,.]+)$", text, re.MULTILINE)
    return float(found.group(1).replace(",", "")) if found else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description="Response store, estimate, budget")
    parser.add_argument("--features", type=int, default=40)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="autointerp-bench-store-"))
    features = root / "features.jsonl"
    _features(args.features, features)
    with FakeLLMServer() as fake:
        process, target = _start(fake, root)
        try:
            rows = []
            live_tokens, live_dollars = 0, 0.0
            fake.reset_stats()
            rc, text, seconds = _cli(target, features, root / "estimate.jsonl", "--estimate")
            estimated = _figure(text, "prompt tokens") + _figure(text, "completion tokens")
            rows.append(
                (
                    f"--estimate (rc {rc})",
                    fake.stats()["requests"],
                    f"{estimated:,.0f} (projected)",
                    f"{_figure(text, 'dollars, live'):.4f} (projected)",
                    "-",
                    seconds,
                )
            )
            for name, output, extra in (
                ("live run", "live.jsonl", ()),
                ("same run again", "again.jsonl", ()),
            ):
                fake.reset_stats()
                rc, text, seconds = _cli(target, features, root / output, *extra)
                tokens, dollars, stored = _totals(root / output)
                rows.append(
                    (
                        f"{name} (rc {rc})",
                        fake.stats()["requests"],
                        f"{tokens:,}",
                        f"{dollars:.4f}",
                        str(stored),
                        seconds,
                    )
                )
                if name == "live run":
                    live_tokens, live_dollars = tokens, dollars
            fake.reset_stats()
            budget = live_dollars / 3
            rc, text, seconds = _cli(
                target,
                features,
                root / "budget.jsonl",
                "--seed",
                "7",
                "--max-cost",
                f"{budget:.6f}",
            )
            tokens, dollars, stored = _totals(root / "budget.jsonl")
            kept = sum(1 for _ in (root / "budget.jsonl").open())
            rows.append(
                (
                    f"--max-cost {budget:.4f}, other seed (rc {rc}, {kept} kept)",
                    fake.stats()["requests"],
                    f"{tokens:,}",
                    f"{dollars:.4f}",
                    str(stored),
                    seconds,
                )
            )
            fake.reset_stats()
            rc, text, seconds = _cli(target, features, root / "budget.jsonl", "--seed", "7")
            tokens, dollars, stored = _totals(root / "budget.jsonl")
            rows.append(
                (
                    f"resumed after --max-cost (rc {rc})",
                    fake.stats()["requests"],
                    f"{tokens:,} (whole file)",
                    f"{dollars:.4f} (whole file)",
                    str(stored),
                    seconds,
                )
            )
        finally:
            process.terminate()
            process.wait(30)
        # The same run through the Batch API, on a server whose store has none of its answers.
        process, target = _start(fake, root, "batch-store")
        try:
            fake.reset_stats()
            fake.batches.configure(delay_s=0.5)
            before = fake.batches.requests
            rc, text, seconds = _cli(
                target,
                features,
                root / "batch.jsonl",
                "--batch",
                "--batch-poll",
                "1",
                "--batch-size",
                "1000",
            )
            # The results' usage is the last round's, answered from the store; the run's
            # summary line counts what the batches were billed.
            _, _, stored = _totals(root / "batch.jsonl")
            billed = re.search(
                r"^usage: \d+ LLM calls, ([\d,]+) prompt tokens, ([\d,]+) completion tokens, "
                r"cost ([\d.e-]+)",
                text,
                re.MULTILINE,
            )
            if billed is None:
                raise SystemExit("the batch run printed no usage line:\n" + text)
            tokens = sum(int(billed.group(i).replace(",", "")) for i in (1, 2))
            batch_dollars = float(billed.group(3))
            rounds = len(re.findall(r"^round \d+: ", text, re.MULTILINE))
            rows.append(
                (
                    f"--batch, empty store (rc {rc}, {rounds} rounds)",
                    f"{fake.stats()['requests']} + {fake.batches.requests - before} in batches",
                    f"{tokens:,}",
                    f"{batch_dollars:.4f}",
                    str(stored),
                    seconds,
                )
            )
        finally:
            fake.batches.configure()
            process.terminate()
            process.wait(30)
    print(f"{args.features} features, default explainer, detection + fuzz, fake LLM\n")
    header = ("run", "upstream calls", "tokens", "dollars", "store hits", "seconds")
    table = [header, *[(*r[:5], f"{r[5]:.1f}") for r in rows]]
    widths = [max(len(str(row[i])) for row in table) for i in range(len(header))]
    for row in table:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)))
    error = abs(estimated - live_tokens) / max(1, live_tokens)
    print(f"\nestimate vs live tokens: {error:.1%} apart")
    print(f"batch vs live dollars: {batch_dollars / max(live_dollars, 1e-12):.1%}")


if __name__ == "__main__":
    main()
