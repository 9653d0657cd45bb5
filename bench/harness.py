"""What the benchmark scripts share: the fake LLM and server processes, and the report.

``run.py`` (``make bench``), ``cpu.py`` and ``soak.py`` each start the repo's fake LLM and one
or more real servers (``python server.py`` of a checkout) with these helpers, and print their
rows as Markdown tables under a line naming the machine. Nothing here imports the service.
"""

from __future__ import annotations

import os
import platform
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    process: subprocess.Popen
    grpc_target: str
    http_base: str
    start_to_serving_s: float

    def peak_rss_mib(self) -> float:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()


def wait_http(url: str, process: subprocess.Popen, timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args} exited early")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} not ready in {timeout_s} s")


def start_fake_llm() -> tuple[subprocess.Popen, str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "autointerp_testing.fake_llm", "--port", str(port)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_http(f"http://127.0.0.1:{port}/health", process)
    return process, f"http://127.0.0.1:{port}/v1"


def start_server(llm_base_url: str, coalesce: bool, repo: Path = REPO) -> Server:
    """``python server.py`` of ``repo`` (this checkout unless told otherwise)."""
    grpc_port, http_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if k != "SECRET" and not k.startswith("AUTOINTERP_")}
    env.update(
        AUTOINTERP_HOST="127.0.0.1",
        AUTOINTERP_GRPC_PORT=str(grpc_port),
        AUTOINTERP_HTTP_PORT=str(http_port),
        AUTOINTERP_LLM_BASE_URL=llm_base_url,
        AUTOINTERP_EMBEDDING_COALESCE=str(coalesce).lower(),
        AUTOINTERP_LOG_LEVEL="WARNING",
        HF_HUB_OFFLINE="1",
    )
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "server.py"],
        cwd=repo,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_http(f"http://127.0.0.1:{http_port}/health", process)
    return Server(
        process,
        f"127.0.0.1:{grpc_port}",
        f"http://127.0.0.1:{http_port}",
        time.monotonic() - started,
    )


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def machine() -> str:
    model = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    return (
        f"{os.cpu_count()} cores ({model}), Python {platform.python_version()}, {platform.system()}"
    )
