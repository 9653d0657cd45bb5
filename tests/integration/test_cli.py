"""The `autointerp` command as a subprocess against real servers: methods, run (resume,
failing features, retries), and a run spread over two servers."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from support import (
    CLI_API_KEY,
    CLI_EXAMPLE,
    CLI_MODEL,
    TEST_SECRET,
    cli_env,
    cli_run_args,
    free_port,
    jsonl_lines,
    run_cli,
    start_server,
    stop_server,
)

from autointerp_grpc.client import AutoInterpClient
from autointerp_testing.fake_llm import FakeLLMServer

pytestmark = pytest.mark.slow


def _example_ids() -> list[str]:
    return [json.loads(line)["id"] for line in CLI_EXAMPLE.read_text().splitlines() if line.strip()]


# ---- one server (the session fixture) ------------------------------------------------------


def test_methods_lists_every_method(server) -> None:
    with AutoInterpClient(server.grpc_target, secret=server.secret, timeout=60) as client:
        names = [m.name for m in client.list_methods().methods]
    result = run_cli(["methods", "--server", server.grpc_target], cli_env(server.secret))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split()[:2] == ["name", "kind"]
    listed = [line.split()[0] for line in lines[1:] if line.strip() and ":" not in line]
    assert listed == names
    assert "balanced_accuracy (0 to 1, chance 0.5)" in result.stdout
    assert "providers: " in result.stdout

    as_json = run_cli(["methods", "--server", server.grpc_target, "--json"], cli_env(server.secret))
    assert [m["name"] for m in json.loads(as_json.stdout)["methods"]] == names


def test_methods_with_the_wrong_secret(server) -> None:
    result = run_cli(["methods", "--server", server.grpc_target, "--secret", "nope"], cli_env(None))
    assert result.returncode == 1
    assert "UNAUTHENTICATED" in result.stderr


def test_run_then_resume(server, tmp_path: Path) -> None:
    env = cli_env(server.secret)
    args = cli_run_args(server.grpc_target, tmp_path, "--scorers", "detection,fuzz,embedding")
    first = run_cli(args, env)
    assert first.returncode == 0, first.stdout + first.stderr
    results = jsonl_lines(tmp_path / "results.jsonl")
    assert sorted(r["id"] for r in results) == sorted(_example_ids())
    for result in results:
        assert "error" not in result, result
        assert result["explanation"]
        assert [s["method"] for s in result["scores"]] == ["detection", "fuzz", "embedding"]
        assert all(0.0 <= s["score"] <= 1.0 for s in result["scores"]), result
        assert result["usage"]["llmCalls"] > 0
    by_id = {r["id"]: r for r in results}
    assert by_id["layer6/cat"]["explanation"] == 'Mentions of "cat"'
    assert by_id["layer6/cat"]["scores"][0]["score"] == 1.0
    # tqdm's bar on stderr, the summary table on stdout.
    assert "explain+score" in first.stderr
    assert f"{len(results)}/{len(results)}" in first.stderr
    assert "tokens=" in first.stderr and "cost=$" in first.stderr
    out = first.stdout
    assert "== summary" in out
    assert f"{len(results)} ok, 0 failed" in out
    for header in ("scorer", "mean", "median", "p10", "p90"):
        assert header in out
    assert "detection  balanced_accuracy  8" in out
    assert "embedding  roc_auc" in out
    assert "prompt tokens" in out and "features/min" in out
    output_text = (tmp_path / "results.jsonl").read_text()
    assert CLI_API_KEY not in output_text and TEST_SECRET not in output_text

    again = run_cli(args, env)
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"{len(results)} of {len(results)} features already done" in again.stderr
    assert "0 finished now" in again.stdout
    assert len(jsonl_lines(tmp_path / "results.jsonl")) == len(results)


def test_failing_features_are_reported_and_the_run_goes_on(server, tmp_path: Path) -> None:
    good = CLI_EXAMPLE.read_text().splitlines()[:3]
    bad = [
        # one value for two tokens: the server fails this feature alone
        {"id": "bad-lengths", "activations": [{"tokens": ["a", " cat"], "values": [0.9]}]},
        # an empty record: failed by the command (the server would reject the whole batch)
        {"id": "empty-tokens", "activations": [{"tokens": [], "values": []}]},
        # no non-activating records: the feature is explained, its scorers report errors
        {"id": "only-activating", "activations": [{"tokens": ["a", " cat"], "values": [0, 1]}]},
    ]
    path = tmp_path / "features.jsonl"
    path.write_text("\n".join([*good, *(json.dumps(b) for b in bad)]) + "\n")
    env = cli_env(server.secret)
    args = cli_run_args(server.grpc_target, tmp_path, "--batch-size", "3", input_path=path)
    result = run_cli(args, env)
    assert result.returncode == 1, result.stdout + result.stderr
    by_id = {r["id"]: r for r in jsonl_lines(tmp_path / "results.jsonl")}
    assert len(by_id) == 6
    assert by_id["bad-lengths"]["error"]["code"] == "INVALID_ARGUMENT"
    assert "one value per token" in by_id["bad-lengths"]["error"]["message"]
    assert by_id["empty-tokens"]["error"]["code"] == "INVALID_ARGUMENT"
    assert "tokens" in by_id["empty-tokens"]["error"]["message"]
    only = by_id["only-activating"]
    assert "error" not in only and only["explanation"]
    assert all(s["error"]["code"] == "INVALID_ARGUMENT" for s in only["scores"])
    for feature_id in ("layer6/cat", "layer6/numbers", "layer6/the"):
        assert "error" not in by_id[feature_id]
        assert all("score" in s for s in by_id[feature_id]["scores"])
    # A feature whose scorers failed is a failed feature (issue 17 item 8).
    assert "3 ok, 3 failed" in result.stdout
    assert "failed features: 3" in result.stdout
    assert "bad-lengths  INVALID_ARGUMENT" in result.stdout
    assert "only-activating  INVALID_ARGUMENT: scorer 'detection'" in result.stdout
    # No retries for errors that would only repeat.
    assert "(0 re-submissions)" in result.stdout

    # Resuming runs the failed features again (and only those).
    again = run_cli(args, env)
    assert again.returncode == 1
    assert "3 of 6 features already done" in again.stderr
    assert len(jsonl_lines(tmp_path / "results.jsonl")) == 9


@pytest.mark.parametrize(
    ("lines", "extra", "message"),
    [
        (['{"id": "a", "activations": []}', "{oops"], [], "features.jsonl:2: not valid JSON"),
        (['{"id": "a", "activations": [], "colour": 1}'], [], "features.jsonl:1: "),
        (['{"id": "a", "activations": []}'], ["--scorers", "fuz"], "unknown scorer 'fuz'"),
        (['{"id": "a", "activations": []}'], ["--explainer-params", "{x"], "--explainer-params"),
        (
            ['{"id": "a", "activations": [{"tokens": ["a"], "values": [1]}]}'],
            ["--scorer-params", '{"fuzz": {"examplesPerPrompt": 50}}', "--scorers", "fuzz"],
            "examplesPerPrompt must be at most 20",
        ),
    ],
)
def test_usage_errors_exit_2(
    server, tmp_path: Path, lines: list[str], extra: list[str], message: str
) -> None:
    path = tmp_path / "features.jsonl"
    path.write_text("\n".join(lines) + "\n")
    result = run_cli(
        cli_run_args(server.grpc_target, tmp_path, *extra, input_path=path), cli_env(server.secret)
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr
    assert not (tmp_path / "results.jsonl").exists()


def test_run_needs_an_api_key(server, tmp_path: Path) -> None:
    env = cli_env(server.secret)
    env.pop("AUTOINTERP_API_KEY")
    result = run_cli(cli_run_args(server.grpc_target, tmp_path), env)
    assert result.returncode == 2
    assert "AUTOINTERP_API_KEY" in result.stderr


def test_explain_and_score_commands(server, tmp_path: Path) -> None:
    from samples import cat_records

    records = tmp_path / "records.json"
    records.write_text(json.dumps(cat_records()))
    env = cli_env(server.secret)
    explained = run_cli(
        ["explain", "--server", server.grpc_target, "--input", str(records), "--model", CLI_MODEL],
        env,
    )
    assert explained.returncode == 0, explained.stderr
    assert explained.stdout.strip() == 'Mentions of "cat"'
    assert "LLM calls" in explained.stderr
    scored = run_cli(
        [
            "score",
            "--server",
            server.grpc_target,
            "--method",
            "fuzz",
            "--explanation",
            "the word cat",
            "--input",
            str(records),
            "--model",
            CLI_MODEL,
        ],
        env,
    )
    assert scored.returncode == 0, scored.stderr
    assert "score: 1.0000  (balanced_accuracy)" in scored.stdout
    assert "95% CI: [" in scored.stdout


def test_issue_13_methods_from_the_command_line(server, tmp_path: Path) -> None:
    """oai_attention_head from an input file's attention records, np_acts_logits_general
    with its logits, and the simulation scorer's mode, through `autointerp explain/score`."""
    from samples import cat_records

    activating = [r for r in cat_records() if sum(r["values"]) > 0]
    attention = []
    for record in activating:
        weights = [0.0] * len(record["tokens"])
        weights[record["values"].index(max(record["values"]))] = 0.9
        attention.append(
            {"tokens": record["tokens"], "fromIndex": len(weights) - 1, "weights": weights}
        )
    path = tmp_path / "head.json"
    path.write_text(json.dumps({"attention": attention}))
    env = cli_env(server.secret)
    common = ["--server", server.grpc_target, "--model", CLI_MODEL]
    head = run_cli(
        ["explain", *common, "--method", "oai_attention_head", "--input", str(path)], env
    )
    assert head.returncode == 0, head.stderr
    assert "cat" in head.stdout
    path.write_text(json.dumps({"activations": activating, "topPositiveLogits": [" cats"]}))
    general = run_cli(
        ["explain", *common, "--method", "np_acts_logits_general", "--input", str(path)], env
    )
    assert general.returncode == 0, general.stderr
    assert general.stdout.strip()
    path.write_text(json.dumps(cat_records()))
    args = ["score", *common, "--method", "simulation", "--explanation", "the word cat"]
    simulated = run_cli(
        [*args, "--input", str(path), "--params", '{"mode": "logprob_ev"}', "--json"], env
    )
    assert simulated.returncode == 0, simulated.stderr
    answer = json.loads(simulated.stdout)
    assert answer["score"] > 0.9
    assert any("logprob_ev" in note for note in answer["notes"])


# ---- two servers, each with its own fake LLM -----------------------------------------------


@dataclass
class Replica:
    grpc_target: str
    fake: FakeLLMServer


@pytest.fixture(scope="module")
def replicas(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Replica]]:
    started: list[tuple[subprocess.Popen, FakeLLMServer]] = []
    replicas: list[Replica] = []
    try:
        for n in range(2):
            fake = FakeLLMServer().start()
            grpc_port, http_port = free_port(), free_port()
            process = start_server(
                [sys.executable, "server.py"],
                {
                    "SECRET": TEST_SECRET,
                    "AUTOINTERP_LLM_BASE_URL": fake.base_url,
                    "AUTOINTERP_LLM_MAX_RETRIES": "0",
                },
                tmp_path_factory.mktemp(f"replica{n}") / "server.log",
                http_port,
                grpc_port,
            )
            started.append((process, fake))
            replicas.append(Replica(f"127.0.0.1:{grpc_port}", fake))
        yield replicas
    finally:
        for process, fake in started:
            assert stop_server(process) == 0
            fake.stop()


def test_run_spreads_batches_over_two_servers(replicas: list[Replica], tmp_path: Path) -> None:
    for replica in replicas:
        replica.fake.reset_stats()
    servers = ",".join(r.grpc_target for r in replicas)
    args = cli_run_args(servers, tmp_path, "--batch-size", "2", "--no-progress")
    result = run_cli(args, cli_env(TEST_SECRET))
    assert result.returncode == 0, result.stdout + result.stderr
    results = jsonl_lines(tmp_path / "results.jsonl")
    assert sorted(r["id"] for r in results) == sorted(_example_ids())
    assert not any("error" in r for r in results)
    for replica in replicas:
        assert replica.fake.stats()["by_kind"].get("explain", 0) >= 2, replica.grpc_target


def test_client_round_robins_over_two_servers(replicas: list[Replica]) -> None:
    from samples import cat_records

    for replica in replicas:
        replica.fake.reset_stats()
    servers = [r.grpc_target for r in replicas]
    body = {"activations": cat_records(), "openrouterKey": CLI_API_KEY, "model": CLI_MODEL}
    with AutoInterpClient(servers, secret=TEST_SECRET, timeout=60) as client:
        assert client.target.startswith("ipv4:")
        for _ in range(6):
            assert client.explain_default(body).explanation == 'Mentions of "cat"'
    counts = [r.fake.stats()["by_kind"].get("explain", 0) for r in replicas]
    assert sum(counts) == 6
    assert all(count >= 1 for count in counts), counts


def test_transient_feature_errors_are_retried(replicas: list[Replica], tmp_path: Path) -> None:
    replica = replicas[0]
    replica.fake.set_fault("500", 3)  # the first three LLM calls (explanations) fail
    try:
        args = cli_run_args(replica.grpc_target, tmp_path, "--batch-size", "8", "--no-progress")
        result = run_cli(args, cli_env(TEST_SECRET))
    finally:
        replica.fake.set_fault(None)
    assert result.returncode == 0, result.stdout + result.stderr
    results = jsonl_lines(tmp_path / "results.jsonl")
    assert len(results) == len(_example_ids())
    assert not any("error" in r for r in results)
    assert "(3 re-submissions)" in result.stdout


def test_unreachable_server_is_left_out(replicas: list[Replica], tmp_path: Path) -> None:
    servers = f"{replicas[1].grpc_target},127.0.0.1:{free_port()}"
    result = run_cli(cli_run_args(servers, tmp_path, "--no-progress"), cli_env(TEST_SECRET))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "not using this server" in result.stderr
    assert len(jsonl_lines(tmp_path / "results.jsonl")) == len(_example_ids())
