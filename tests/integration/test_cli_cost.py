"""`autointerp run --estimate` and `--max-cost` as a subprocess against a real server with a
response store and a price table: the estimate sends nothing upstream and lands within 10% of
the live run's tokens; a budget stops the run with exit status 3, keeping its results, and the
resumed run pays nothing twice."""

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
def stored_server(fake_llm: FakeLLMServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    root = tmp_path_factory.mktemp("stored-server")
    running = launch_server(
        fake_llm.base_url,
        root / "server.log",
        AUTOINTERP_STORE__DIR=str(root / "store"),
        AUTOINTERP_LLM__PRICES=json.dumps(PRICES),
    )
    yield running
    assert stop_server(running.process) == 0, running.log_text()


def _figure(text: str, label: str) -> float:
    found = re.search(rf"^{re.escape(label)}\s+\S+\s+([\d,.]+)$", text, re.MULTILINE)
    assert found, text
    return float(found.group(1).replace(",", ""))


def test_estimate_then_run_then_rerun(stored_server, clean_fake, tmp_path: Path) -> None:
    env = cli_env(stored_server.secret)
    target = stored_server.grpc_target
    estimate = run_cli(cli_run_args(target, tmp_path, "--estimate", "--no-progress"), env)
    assert estimate.returncode == 0, estimate.stderr
    assert clean_fake.stats()["requests"] == 0
    assert not (tmp_path / "results.jsonl").exists()
    calls = _figure(estimate.stdout, "LLM calls")
    tokens = _figure(estimate.stdout, "prompt tokens") + _figure(
        estimate.stdout, "completion tokens"
    )
    dollars = _figure(estimate.stdout, "dollars, live")
    assert _figure(estimate.stdout, "dollars, batch (-50%)") == pytest.approx(dollars / 2, abs=0.01)

    live = run_cli(cli_run_args(target, tmp_path, "--no-progress"), env)
    assert live.returncode == 0, live.stderr
    results = jsonl_lines(tmp_path / "results.jsonl")
    measured_calls = sum(int(r["usage"]["llmCalls"]) for r in results)
    measured_tokens = sum(
        int(r["usage"]["promptTokens"]) + int(r["usage"]["completionTokens"]) for r in results
    )
    assert measured_calls == clean_fake.stats()["requests"] == calls
    assert abs(tokens - measured_tokens) <= 0.1 * measured_tokens, (tokens, measured_tokens)
    assert "per feature: " in live.stdout

    # The same input again, into a new results file: everything comes from the store.
    clean_fake.reset_stats()
    (tmp_path / "again").mkdir()
    again = run_cli(cli_run_args(target, tmp_path / "again", "--no-progress"), env)
    assert again.returncode == 0, again.stderr
    assert clean_fake.stats()["requests"] == 0
    assert f"{measured_calls} answered by the response store" in again.stdout


def test_max_cost_stops_cleanly_and_the_rerun_resumes(
    stored_server, clean_fake, tmp_path: Path
) -> None:
    env = cli_env(stored_server.secret)
    target = stored_server.grpc_target
    # A different seed makes different prompts: nothing of the other test's run is stored.
    args = ["--no-progress", "--seed", "7", "--batch-size", "1", "--streams", "1"]
    stopped = run_cli(cli_run_args(target, tmp_path, *args, "--max-cost", "0.000001"), env)
    assert stopped.returncode == 3, stopped.stderr
    assert "--max-cost reached" in stopped.stderr
    kept = jsonl_lines(tmp_path / "results.jsonl")
    total = len([line for line in CLI_EXAMPLE.read_text().splitlines() if line.strip()])
    assert 1 <= len(kept) < total
    paid = clean_fake.stats()["requests"]

    clean_fake.reset_stats()
    resumed = run_cli(cli_run_args(target, tmp_path, *args), env)
    assert resumed.returncode == 0, resumed.stderr
    assert len(jsonl_lines(tmp_path / "results.jsonl")) == total
    # One stream of one feature: the stop came with the first result, nothing else was in
    # flight, and what was paid is exactly what the kept results report.
    assert sum(int(r["usage"]["llmCalls"]) for r in kept) == paid


def test_bad_budget_is_a_usage_error(stored_server, tmp_path: Path) -> None:
    env = cli_env(stored_server.secret)
    for value in ("0", "-1", "nan", "inf"):
        result = run_cli(
            cli_run_args(stored_server.grpc_target, tmp_path, "--max-cost", value), env
        )
        assert result.returncode == 2, (value, result.stderr)
        assert "--max-cost" in result.stderr
