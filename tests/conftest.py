"""Shared fixtures: the repo's fake LLM, and the real server started as its own process."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from autointerp_grpc.testing.fake_llm import FakeLLMServer

REPO = Path(__file__).resolve().parent.parent
TEST_SECRET = "test-secret-42"  # gRPC metadata values must be printable ASCII
TEST_API_KEY = "sk-test-provider-key-0123456789"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def fake_llm() -> Iterator[FakeLLMServer]:
    with FakeLLMServer() as server:
        yield server


@dataclass
class RunningServer:
    grpc_target: str
    http_base: str
    secret: str
    log_path: Path
    process: subprocess.Popen

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")


def start_server(
    command: list[str],
    env_overrides: dict[str, str],
    log_path: Path,
    http_port: int,
    grpc_port: int,
    timeout_s: float = 180.0,
) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "SECRET" and not k.startswith("AUTOINTERP_")}
    env.update(
        AUTOINTERP_HOST="127.0.0.1",
        AUTOINTERP_HTTP_PORT=str(http_port),
        AUTOINTERP_GRPC_PORT=str(grpc_port),
        HF_HUB_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
        **env_overrides,
    )
    log = log_path.open("wb")
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited early:\n{log_path.read_text(errors='replace')}")
        try:
            if httpx.get(f"http://127.0.0.1:{http_port}/health", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    process.kill()
    raise RuntimeError(
        f"server not SERVING in {timeout_s} s:\n{log_path.read_text(errors='replace')}"
    )


def stop_server(process: subprocess.Popen) -> int:
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()


@pytest.fixture(scope="session")
def server(
    fake_llm: FakeLLMServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    """`python server.py` with SECRET set, against the fake LLM, on free loopback ports."""
    grpc_port, http_port = free_port(), free_port()
    log_path = tmp_path_factory.mktemp("server") / "server.log"
    process = start_server(
        [sys.executable, "server.py"],
        {
            "SECRET": TEST_SECRET,
            "AUTOINTERP_LLM_BASE_URL": fake_llm.base_url,
            "AUTOINTERP_LLM_MAX_RETRIES": "0",
            # Everything is logged, so the no-secrets-in-logs tests see every line.
            "AUTOINTERP_LOG_LEVEL": "DEBUG",
        },
        log_path,
        http_port,
        grpc_port,
    )
    running = RunningServer(
        grpc_target=f"127.0.0.1:{grpc_port}",
        http_base=f"http://127.0.0.1:{http_port}",
        secret=TEST_SECRET,
        log_path=log_path,
        process=process,
    )
    yield running
    assert stop_server(process) == 0, running.log_text()
