"""``autointerp run`` on Neuronpedia's formats, end to end: the command as a subprocess against
the real server (the session ``server`` fixture) and the fake LLM, on the samples in
examples/neuronpedia/ (a feature object from its API, a dataset export)."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import REPO, cli_env, cli_run_args, jsonl_lines, run_cli

pytestmark = pytest.mark.slow

SAMPLES = REPO / "examples" / "neuronpedia"
EXPORT = SAMPLES / "export" / "gpt2-small" / "6-res-jb"


def _check_results(results: list[dict], ids: list[str], keyword: str) -> None:
    assert sorted(r["id"] for r in results) == sorted(ids)
    for result in results:
        assert "error" not in result, result
        assert [s["method"] for s in result["scores"]] == ["detection", "fuzz"]
        # Both classes reached the scorers: the zero records became nonActivating.
        assert all("score" in s for s in result["scores"]), result
    first = next(r for r in results if r["id"] == ids[0])
    assert keyword in first["explanation"]


def test_run_on_a_neuronpedia_feature_object(server, tmp_path: Path) -> None:
    args = cli_run_args(server.grpc_target, tmp_path, input_path=SAMPLES / "feature.json")
    result = run_cli(args, cli_env(server.secret))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "read as neuronpedia-feature, 1 features" in result.stderr
    assert "1 existing Neuronpedia explanation(s) ignored" in result.stderr
    _check_results(jsonl_lines(tmp_path / "results.jsonl"), ["gpt2-small/6-res-jb/1234"], "dog")
    assert "1 ok, 0 failed" in result.stdout


def test_run_on_a_neuronpedia_export_with_top_logits(server, tmp_path: Path) -> None:
    env = cli_env(server.secret)
    args = cli_run_args(
        server.grpc_target,
        tmp_path,
        "--explainer",
        "np_max_act_logits",
        "--input-format",
        "neuronpedia-export",
        input_path=EXPORT,
    )
    result = run_cli(args, env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "read as neuronpedia-export, 2 features" in result.stderr
    assert "explanations/ file(s) not read" in result.stderr
    ids = ["gpt2-small/6-res-jb/0", "gpt2-small/6-res-jb/1"]
    # np_max_act_logits fails a feature without top positive logits: these came from pos_str.
    _check_results(jsonl_lines(tmp_path / "results.jsonl"), ids, "dog")

    # One gzipped activations batch (its features/ batch joined in): resumes, nothing to do.
    again = run_cli(
        cli_run_args(
            server.grpc_target,
            tmp_path,
            "--explainer",
            "np_max_act_logits",
            input_path=EXPORT / "activations" / "batch-0.jsonl.gz",
        ),
        env,
    )
    assert again.returncode == 0, again.stdout + again.stderr
    assert "top positive logits read from" in again.stderr
    assert "2 of 2 features already done" in again.stderr


def test_a_bad_neuronpedia_file_is_a_usage_error(server, tmp_path: Path) -> None:
    bad = tmp_path / "feature.json"
    bad.write_text((SAMPLES / "feature.json").read_text().replace('"values": [', '"values": [[', 1))
    result = run_cli(
        cli_run_args(server.grpc_target, tmp_path, input_path=bad), cli_env(server.secret)
    )
    assert result.returncode == 2
    assert f"{bad}:" in result.stderr and "not valid JSON" in result.stderr
    assert not (tmp_path / "results.jsonl").exists()
