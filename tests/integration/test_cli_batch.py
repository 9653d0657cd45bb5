"""`autointerp run --batch` and `--shard` as subprocesses against a real server with a
response store: a batch run goes round by round through the fake LLM's Batch API to the same
results as a live run, with no chat-completion call, at half the price table's cost; `batch
list` shows its batches; N shards together hold every input feature exactly once."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import (
    CLI_EXAMPLE,
    CLI_MODEL,
    cli_env,
    cli_run_args,
    jsonl_lines,
    launch_server,
    run_cli,
    stop_server,
)

from autointerp_testing.fake_llm import FakeLLMServer

pytestmark = pytest.mark.slow

PRICES = {CLI_MODEL: {"input": 0.15, "cached_input": 0.075, "output": 0.6}}


@pytest.fixture(scope="module")
def stores(fake_llm: FakeLLMServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    """Two servers: one for the live run, one for the batch run (separate stores)."""
    root = tmp_path_factory.mktemp("batch-servers")
    running = []
    for name in ("live", "batch"):
        running.append(
            launch_server(
                fake_llm.base_url,
                root / f"{name}.log",
                AUTOINTERP_STORE__DIR=str(root / name),
                AUTOINTERP_LLM__PRICES=json.dumps(PRICES),
            )
        )
    yield running[0], running[1], root / "batch"
    for server in running:
        assert stop_server(server.process) == 0, server.log_text()


def _without_usage(results: list[dict]) -> list[dict]:
    return sorted(
        ({k: v for k, v in r.items() if k not in ("usage", "seconds")} for r in results),
        key=lambda r: r["id"],
    )


def _dollars(stdout: str) -> float:
    found = re.search(r"^usage: .*?, cost ([\d.e-]+)", stdout, re.MULTILINE)
    assert found, stdout
    return float(found.group(1))


def test_batch_run_matches_the_live_run_at_half_the_cost(
    stores, clean_fake, tmp_path: Path
) -> None:
    live_server, batch_server, store_dir = stores
    env = cli_env(live_server.secret)
    (tmp_path / "live").mkdir()
    live = run_cli(cli_run_args(live_server.grpc_target, tmp_path / "live", "--no-progress"), env)
    assert live.returncode == 0, live.stderr
    live_calls = clean_fake.stats()["requests"]

    clean_fake.reset_stats()
    clean_fake.batches.configure(delay_s=0.2)
    try:
        args = cli_run_args(
            batch_server.grpc_target,
            tmp_path,
            "--no-progress",
            "--batch",
            "--batch-poll",
            "0.5",
            "--batch-size",
            "1000",
        )
        batch = run_cli(args, env)
    finally:
        clean_fake.batches.configure()
    assert batch.returncode == 0, batch.stderr
    assert clean_fake.stats()["requests"] == 0
    rounds = re.findall(r"^round \d+: .*$", batch.stderr, re.MULTILINE)
    assert len(rounds) >= 3, batch.stderr  # explain, score, and the last replay at least
    assert "requests submitted in 1 batch(es)" in rounds[0]
    assert "expected wait" in rounds[0]
    assert "0 pending" in rounds[-1]
    live_results = jsonl_lines(tmp_path / "live" / "results.jsonl")
    batch_results = jsonl_lines(tmp_path / "results.jsonl")
    assert _without_usage(batch_results) == _without_usage(live_results)
    assert not any(r.get("pending") for r in batch_results)
    submitted = sum(int(m) for m in re.findall(r"(\d+) requests submitted", batch.stderr))
    assert submitted == live_calls
    # The live run's dollars by the price table vs the batch run's: half.
    prompt = sum(int(r["usage"]["promptTokens"]) for r in live_results)
    completion = sum(int(r["usage"]["completionTokens"]) for r in live_results)
    by_table = (prompt * 0.15 + completion * 0.6) / 1e6
    assert _dollars(batch.stdout) == pytest.approx(by_table / 2, rel=0.01)

    listing = run_cli(["batch", "list", "--all"], {**env, "AUTOINTERP_STORE__DIR": str(store_dir)})
    assert listing.returncode == 0, listing.stderr
    assert "batch-fake-" in listing.stdout and "completed" in listing.stdout


def test_shards_cover_the_input_exactly_once(stores, clean_fake, tmp_path: Path) -> None:
    server = stores[0]
    env = cli_env(server.secret)
    count = 3
    seen: list[str] = []
    for index in range(count):
        out = tmp_path / f"shard-{index}"
        out.mkdir()
        # Shard 0 from the Indexed Job's environment; the others from --shard.
        if index == 0:
            args = cli_run_args(server.grpc_target, out, "--no-progress")
            shard_env = {**env, "JOB_COMPLETION_INDEX": "0", "AUTOINTERP_SHARD_COUNT": "3"}
        else:
            args = cli_run_args(server.grpc_target, out, "--no-progress", "--shard", f"{index}/3")
            shard_env = env
        result = run_cli(args, shard_env)
        assert result.returncode == 0, result.stderr
        assert f"shard {index}/{count}:" in result.stderr
        seen.extend(r["id"] for r in jsonl_lines(out / "results.jsonl"))
    expected = [json.loads(line)["id"] for line in CLI_EXAMPLE.read_text().splitlines() if line]
    assert sorted(seen) == sorted(expected)
    assert len(seen) == len(set(seen))


@pytest.mark.parametrize(
    ("extra", "env_extra", "message"),
    [
        (["--shard", "3/3"], {}, "0 <= I < N"),
        (["--shard", "x"], {}, "must be I/N"),
        ([], {"JOB_COMPLETION_INDEX": "1"}, "AUTOINTERP_SHARD_COUNT"),
        (["--batch", "--batch-rounds", "0"], {}, "--batch-rounds"),
    ],
)
def test_bad_shard_and_batch_flags_are_usage_errors(
    stores, tmp_path: Path, extra: list[str], env_extra: dict[str, str], message: str
) -> None:
    server = stores[0]
    env = {**cli_env(server.secret), **env_extra}
    result = run_cli(cli_run_args(server.grpc_target, tmp_path, "--no-progress", *extra), env)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
