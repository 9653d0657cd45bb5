"""`autointerp run` (a real process) against a server whose answers go wrong (issue 17): a
scorer that fails transiently fails its feature (retried, counted, exit 1, redone on resume;
item 8), costs whose total overflows never crash the command (item 2), and Ctrl-C exits
quietly with 130 (item 18). The server runs in this process, so its handlers can be made to
fail; the command is a subprocess, started without blocking the server's event loop."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import pytest
from support import TEST_SECRET

from autointerp_grpc.backends.llm import LLMClient
from autointerp_grpc.errors import Unavailable
from autointerp_grpc.handlers import bulk as bulk_handler
from autointerp_grpc.usage import Usage
from autointerp_testing.fake_llm.recognise import request_kind

# Each test runs the real `autointerp` command as a process (as test_cli.py does).
pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "features.jsonl"
API_KEY = "sk-cli-hostile-key-271828"
MODEL = "openai/gpt-4o-mini"
CLI_DEADLINE_S = 120.0


def _env() -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("SECRET", "OPENROUTER_API_KEY") and not k.startswith("AUTOINTERP_")
    }
    env.update(AUTOINTERP_API_KEY=API_KEY, SECRET=TEST_SECRET)
    return env


async def _start_cli(*args: str) -> asyncio.subprocess.Process:
    """The ``autointerp`` command started as a process, its output piped."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "autointerp_grpc.cli",
        *args,
        cwd=REPO,
        env=_env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def _cli(*args: str) -> tuple[int, str, str]:
    """The command's exit status, stdout and stderr (the server keeps serving meanwhile)."""
    process = await _start_cli(*args)
    try:
        out, err = await asyncio.wait_for(process.communicate(), CLI_DEADLINE_S)
    except TimeoutError:
        process.kill()
        out, err = await process.communicate()
        pytest.fail(f"the command hung; stderr so far: {err.decode()[-2000:]}")
    stdout, stderr = out.decode(), err.decode()
    assert API_KEY not in stdout + stderr and TEST_SECRET not in stdout + stderr
    assert process.returncode is not None
    return process.returncode, stdout, stderr


def _input(tmp_path: Path, n: int) -> Path:
    path = tmp_path / "features.jsonl"
    path.write_text("\n".join(EXAMPLE.read_text().splitlines()[:n]) + "\n")
    return path


def _run_args(app, tmp_path: Path, input_path: Path, *extra: str) -> list[str]:
    return [
        "run",
        "--server",
        app.grpc_target,
        "--input",
        str(input_path),
        "--output",
        str(tmp_path / "results.jsonl"),
        "--model",
        MODEL,
        "--scorers",
        "detection",
        "--no-progress",
        *extra,
    ]


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _failing_scorer(monkeypatch: pytest.MonkeyPatch, failures: int | None) -> list[int]:
    """Make the bulk handler's scoring fail as a provider's 503 does (``failures`` times, or
    always); returns the count of scoring attempts."""
    original = bulk_handler.run_score
    attempts = [0]

    async def run_score(*args: Any, **kwargs: Any) -> Any:
        attempts[0] += 1
        if failures is None or attempts[0] <= failures:
            raise Unavailable("The LLM provider is unavailable (HTTP 503)")
        return await original(*args, **kwargs)

    monkeypatch.setattr(bulk_handler, "run_score", run_score)
    return attempts


async def test_a_failed_scorer_fails_its_feature(
    app, clean_fake, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Before: "3 ok, 0 failed", exit 0, every score UNAVAILABLE, nothing retried, and a rerun
    said "3 of 3 already done"."""
    attempts = _failing_scorer(monkeypatch, failures=None)
    args = _run_args(app, tmp_path, _input(tmp_path, 3), "--retries", "1")
    status, out, err = await _cli(*args)
    assert status == 1, out + err
    assert "0 ok, 3 failed (3 re-submissions)" in out
    assert attempts[0] == 6  # each feature tried twice
    assert "UNAVAILABLE: scorer 'detection': The LLM provider is unavailable" in out
    results = _lines(tmp_path / "results.jsonl")
    assert len(results) == 3
    # The file keeps what the server sent (the explanation, the scorer's error).
    assert all(r["scores"][0]["error"]["code"] == "UNAVAILABLE" for r in results)
    # A rerun does them again, and this time the provider answers.
    monkeypatch.undo()
    status, out, err = await _cli(*args)
    assert status == 0, out + err
    assert "0 of 3 features already done" not in err
    assert "3 ok, 0 failed" in out
    last = {r["id"]: r for r in _lines(tmp_path / "results.jsonl")}
    assert all("score" in r["scores"][0] for r in last.values())


async def test_a_provider_failing_only_on_scoring_prompts(
    app, clean_fake, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Item 8 as reported: the provider answers the explainer's prompts and fails every
    detection prompt (as a 503 does: the LLM client's Unavailable); delphi's scorer leaves
    them unanswered and the coverage floor fails the scorer."""
    original = LLMClient.generate
    scoring_calls = [0]

    async def generate(self: LLMClient, prompt: Any, **kwargs: Any) -> Any:
        messages = prompt if isinstance(prompt, list) else [{"role": "user", "content": prompt}]
        if request_kind(messages) != "explain":
            scoring_calls[0] += 1
            raise Unavailable("The LLM provider is unavailable (HTTP 503)")
        return await original(self, prompt, **kwargs)

    monkeypatch.setattr(LLMClient, "generate", generate)
    args = _run_args(app, tmp_path, _input(tmp_path, 3), "--retries", "1")
    status, out, err = await _cli(*args)
    assert status == 1, out + err
    assert "0 ok, 3 failed (3 re-submissions)" in out
    assert scoring_calls[0] > 0
    results = _lines(tmp_path / "results.jsonl")
    assert [r["scores"][0]["error"]["code"] for r in results] == ["UNAVAILABLE"] * 3
    assert all(r["explanation"] for r in results)
    monkeypatch.undo()
    status, out, err = await _cli(*args)
    assert status == 0, out + err
    assert "3 ok, 0 failed" in out


async def test_a_transient_scorer_failure_is_retried(
    app, clean_fake, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    attempts = _failing_scorer(monkeypatch, failures=2)
    args = _run_args(app, tmp_path, _input(tmp_path, 3), "--concurrency", "1")
    status, out, err = await _cli(*args)
    assert status == 0, out + err
    assert "3 ok, 0 failed (2 re-submissions)" in out
    assert attempts[0] == 5
    assert all("score" in r["scores"][0] for r in _lines(tmp_path / "results.jsonl")[-3:])


async def test_costs_whose_total_overflows_do_not_crash_the_run(
    app, clean_fake, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Each feature's cost is 1.2e308, as if nothing checked a provider's 6e307 per
    explanation and per scoring: the command's total overflows a float (math.fsum raised
    OverflowError: a traceback after two results)."""
    original = Usage.add_call

    def add_call(self: Usage, prompt_tokens: int = 0, completion_tokens: int = 0, cost=None):
        first = self.llm_calls == 0
        original(self, prompt_tokens, completion_tokens, None)
        if first:
            self.costs.append(6e307)

    monkeypatch.setattr(Usage, "add_call", add_call)
    args = _run_args(app, tmp_path, _input(tmp_path, 3), "--concurrency", "1", "--batch-size", "1")
    status, out, err = await _cli(*args)
    assert status == 0, out + err
    assert "Traceback" not in err
    assert "3 ok, 0 failed" in out
    assert "cost not reported" in out
    assert len(_lines(tmp_path / "results.jsonl")) == 3


@pytest.mark.parametrize("when", ["starting", "running"])
async def test_ctrl_c_exits_quietly_with_130(app, clean_fake, tmp_path: Path, when: str) -> None:
    """SIGINT while the command imports its modules, or while streams are open: no traceback,
    exit status 130, and (running) the results so far are kept. Before: a KeyboardInterrupt
    traceback while starting."""
    path = tmp_path / "features.jsonl"
    path.write_text(EXAMPLE.read_text())
    args = _run_args(app, tmp_path, path, "--batch-size", "1", "--streams", "2")
    args[args.index(MODEL)] = f"{MODEL}@latency=300"
    process = await _start_cli(*args)
    output = tmp_path / "results.jsonl"
    if when == "starting":
        await asyncio.sleep(0.15)
    else:
        for _ in range(300):  # until a result is written
            if output.exists() and output.read_text().strip():
                break
            await asyncio.sleep(0.1)
        else:
            process.kill()
            pytest.fail("no result was written")
    process.send_signal(signal.SIGINT)
    _, err = await asyncio.wait_for(process.communicate(), 30)
    stderr = err.decode()
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr and "Exception ignored" not in stderr, stderr
    if when == "running":
        assert "interrupted; results so far are kept" in stderr
        kept = _lines(output)
        assert 1 <= len(kept) < 8
        assert all(r["id"] for r in kept)


async def test_a_silent_stream_is_given_up(
    app, clean_fake, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A server whose stream goes quiet (as one whose worker died did: ``progress 0/N``, then
    nothing): the command gives the stream up after ``--idle-timeout`` seconds without an
    event, retries its features, then fails them. Before: it waited forever."""

    async def feature(self: bulk_handler._Run, feature: Any) -> Any:
        await asyncio.Event().wait()  # never finishes, never fails

    monkeypatch.setattr(bulk_handler._Run, "feature", feature)
    args = _run_args(app, tmp_path, _input(tmp_path, 2), "--idle-timeout", "1", "--retries", "1")
    status, out, err = await _cli(*args)
    assert status == 1, out + err
    assert "0 ok, 2 failed (2 re-submissions)" in out
    assert "DEADLINE_EXCEEDED: the stream to" in out and "sent nothing for 1 s" in out
    assert len(_lines(tmp_path / "results.jsonl")) == 2
