"""What the tests share: constants, the in-process app harness, and the real-process server.

* :class:`InProcessApp` — the whole service in the test's own process and event loop: the
  real :class:`~autointerp_grpc.runtime.Runtime` with its gRPC server on a free loopback port,
  the REST door through ``httpx.ASGITransport`` (no socket), the real LLM backend pointed at
  the fake LLM, and an injected embedding backend (a deterministic bag-of-words model, so no
  model is loaded). The fast tier runs both doors through it.
* :func:`start_server` / :func:`stop_server` — ``python server.py`` as its own process, for
  the few tests that need one (launch line, signals, CLI).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import httpx
import numpy as np
import torch
from google.protobuf import json_format

from autointerp_grpc.backends.embedding import EmbeddingBackend
from autointerp_grpc.config import Settings
from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2 as pb
from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2_grpc as pb_grpc
from autointerp_grpc.redaction import RedactingFilter
from autointerp_grpc.runtime import Runtime, create_app

REPO = Path(__file__).resolve().parent.parent
TEST_SECRET = "test-secret-42"  # gRPC metadata values must be printable ASCII
TEST_API_KEY = "sk-test-provider-key-0123456789"
REST_BASE = "http://autointerp.test"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- a deterministic embedding model --------------------------------------------------------

_WORD = re.compile(r"[a-z0-9]+")
_STOP_WORDS = frozenset(
    "a an the of on in to at by for and or is it its this that with as be are was from".split()  # noqa: SIM905
)
DIMENSIONS = 256


class BagOfWordsModel:
    """A stand-in for a sentence-transformers model: each lowercase word (stop words
    skipped, a plural's trailing s dropped) hashes to one of 256 dimensions; a text's
    embedding is its normalised word count. Texts that share words are similar, others are
    orthogonal, so a right explanation beats a wrong one."""

    def encode(self, sentences: str | Sequence[str], **_: Any) -> np.ndarray:
        single = isinstance(sentences, str)
        texts = [sentences] if single else list(sentences)
        rows = np.zeros((len(texts), DIMENSIONS), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in _WORD.findall(text.lower()):
                if word in _STOP_WORDS:
                    continue
                word = word[:-1] if len(word) > 3 and word.endswith("s") else word  # noqa: PLW2901
                digest = hashlib.blake2b(word.encode(), digest_size=4).digest()
                rows[i, int.from_bytes(digest, "little") % DIMENSIONS] += 1.0
            norm = np.linalg.norm(rows[i])
            if norm > 0:
                rows[i] /= norm
        return rows[0] if single else rows

    def similarity(self, a: Any, b: Any) -> torch.Tensor:
        left = torch.as_tensor(np.atleast_2d(np.asarray(a)), dtype=torch.float32)
        right = torch.as_tensor(np.atleast_2d(np.asarray(b)), dtype=torch.float32)
        return left @ right.T


def fake_embedding_backend() -> EmbeddingBackend:
    return EmbeddingBackend(BagOfWordsModel(), "bag-of-words (tests)", window_s=0.001)


# --- the whole app, in process --------------------------------------------------------------


class _Capture(logging.Handler):
    """Keeps the formatted log lines, through the same redacting filter as production."""

    def __init__(self, runtime: Runtime) -> None:
        super().__init__(logging.DEBUG)
        self.stream = io.StringIO()
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        self.addFilter(RedactingFilter(runtime.secrets))

    def emit(self, record: logging.LogRecord) -> None:
        self.stream.write(self.format(record) + "\n")


@dataclass
class InProcessApp:
    runtime: Runtime
    grpc_target: str
    rest: httpx.AsyncClient
    secret: str | None
    capture: _Capture

    def log_text(self) -> str:
        return self.capture.stream.getvalue()

    @property
    def auth(self) -> tuple[tuple[str, str], ...]:
        """gRPC metadata with the secret."""
        return (("x-secret-key", self.secret),) if self.secret else ()

    @property
    def headers(self) -> dict[str, str]:
        """REST headers with the secret."""
        return {"X-SECRET-KEY": self.secret} if self.secret else {}


def app_settings(llm_base_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "host": "127.0.0.1",
        "grpc_port": 0,
        "http_port": 0,
        "secret": TEST_SECRET,
        "llm_base_url": llm_base_url,
        "llm_max_retries": 0,
        "shutdown_grace_s": 2.0,
        **overrides,
    }
    return Settings(**values)


@contextlib.asynccontextmanager
async def in_process_app(settings: Settings) -> AsyncIterator[InProcessApp]:
    """The service in this process: gRPC on a free port, REST through ASGITransport."""
    runtime = Runtime(settings, embedding=fake_embedding_backend())
    capture = _Capture(runtime)
    root = logging.getLogger()
    previous_level = root.level
    root.addHandler(capture)
    root.setLevel(logging.DEBUG)
    await runtime.start()
    await runtime.ready.wait()
    transport = httpx.ASGITransport(app=create_app(runtime=runtime))
    rest = httpx.AsyncClient(transport=transport, base_url=REST_BASE, timeout=30)
    secret = settings.secret.get_secret_value() if settings.secret else None
    try:
        yield InProcessApp(runtime, f"127.0.0.1:{runtime.grpc_port}", rest, secret, capture)
    finally:
        await rest.aclose()
        await runtime.stop()
        root.removeHandler(capture)
        root.setLevel(previous_level)


# --- the real process -----------------------------------------------------------------------


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


def launch_server(llm_base_url: str, log_path: Path, **env: str) -> RunningServer:
    """`python server.py` on free loopback ports with SECRET set, against ``llm_base_url``,
    no LLM retries, plus the settings in ``env`` (e.g. ``AUTOINTERP_SHUTDOWN_GRACE_S``)."""
    grpc_port, http_port = free_port(), free_port()
    settings = {
        "SECRET": TEST_SECRET,
        "AUTOINTERP_LLM_BASE_URL": llm_base_url,
        "AUTOINTERP_LLM_MAX_RETRIES": "0",
        **env,
    }
    process = start_server([sys.executable, "server.py"], settings, log_path, http_port, grpc_port)
    return RunningServer(
        grpc_target=f"127.0.0.1:{grpc_port}",
        http_base=f"http://127.0.0.1:{http_port}",
        secret=TEST_SECRET,
        log_path=log_path,
        process=process,
    )


def stop_server(process: subprocess.Popen) -> int:
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()


# --- helpers for the in-process door tests --------------------------------------------------


@dataclass
class AsgiExchange:
    """What a raw ASGI call of the REST door sent back (see :func:`asgi_call`)."""

    status: int | None
    headers: dict[str, str]
    body: bytes
    finished: bool
    """Whether the app returned within the call's time limit."""


async def asgi_call(
    asgi_app: Any,
    method: str,
    path: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    *,
    disconnect_after_s: float | None = None,
    timeout_s: float = 10.0,
) -> AsgiExchange:
    """One HTTP request straight into an ASGI app, as a server would deliver it.

    Unlike ``httpx.ASGITransport`` (which runs the app in the caller's task and never reports a
    disconnect before the response ends), this can play a client that goes away:
    ``disconnect_after_s`` seconds after the call starts, ``receive`` answers
    ``http.disconnect``, as uvicorn does when the connection drops. Without it, ``receive``
    answers ``http.disconnect`` once the response is complete.
    """
    import asyncio

    raw_headers = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    raw_headers.append((b"content-length", str(len(body)).encode()))
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},  # what uvicorn declares
        "http_version": "1.1",
        "method": method,
        "headers": raw_headers,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "server": ("autointerp.test", 80),
        "client": ("127.0.0.1", 123),
        "root_path": "",
    }
    gone = asyncio.Event()
    complete = asyncio.Event()
    body_sent = False
    status: int | None = None
    response_headers: dict[str, str] = {}
    parts: list[bytes] = []

    async def receive() -> dict[str, Any]:
        nonlocal body_sent
        if not body_sent:
            body_sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        waiters = [asyncio.ensure_future(gone.wait()), asyncio.ensure_future(complete.wait())]
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        # After a disconnect uvicorn drops what the app sends; it is kept here to look at.
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
            response_headers.update(
                (k.decode().lower(), v.decode()) for k, v in message.get("headers", [])
            )
        elif message["type"] == "http.response.body":
            parts.append(message.get("body", b""))
            if not message.get("more_body", False):
                complete.set()

    async def leave() -> None:
        assert disconnect_after_s is not None
        await asyncio.sleep(disconnect_after_s)
        gone.set()

    leaver = asyncio.ensure_future(leave()) if disconnect_after_s is not None else None
    finished = True
    try:
        await asyncio.wait_for(asgi_app(scope, receive, send), timeout_s)
    except TimeoutError:
        finished = False
    finally:
        if leaver is not None:
            leaver.cancel()
    return AsgiExchange(status, response_headers, b"".join(parts), finished)


async def wait_upstream_idle(fake_llm: Any, timeout_s: float = 3.0) -> int:
    """The fake LLM's open chat completions once none is left or ``timeout_s`` has passed."""
    import asyncio

    deadline = time.monotonic() + timeout_s
    while fake_llm.stats()["in_flight"] and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    return fake_llm.stats()["in_flight"]


# --- one bulk feature through either door -------------------------------------------------


async def bulk_result_grpc(app: InProcessApp, body: dict[str, Any]) -> dict[str, Any]:
    """The one feature result of an ExplainAndScore request (its JSON ``body``) over gRPC, as
    proto3 JSON (unset fields left out)."""
    request = json_format.ParseDict(body, pb.ExplainAndScoreRequest())
    async with grpc.aio.insecure_channel(app.grpc_target) as channel:
        stream = pb_grpc.AutoInterpStub(channel).ExplainAndScore(
            request, metadata=app.auth, timeout=60
        )
        results = [
            json_format.MessageToDict(e.result) async for e in stream if e.HasField("result")
        ]
    [result] = results
    return result


async def bulk_result_rest(app: InProcessApp, body: dict[str, Any]) -> dict[str, Any]:
    """The same over REST (newline-delimited JSON), its nulls left out like gRPC's unset
    fields, so the two doors' results compare equal."""
    async with app.rest.stream(
        "POST",
        "/v1/explain-and-score",
        content=json.dumps(body),
        headers={**app.headers, "Content-Type": "application/json"},
        timeout=60,
    ) as response:
        assert response.status_code == 200
        lines = [json.loads(line) async for line in response.aiter_lines() if line]
    [result] = [line["result"] for line in lines if "result" in line]
    return without_nulls(result)


def without_nulls(value: Any) -> Any:
    """The REST door writes unset fields as null; the gRPC door's dict leaves them out."""
    if isinstance(value, dict):
        return {k: without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [without_nulls(v) for v in value]
    return value


BULK_DOORS: dict[str, Callable[[InProcessApp, dict[str, Any]], Awaitable[dict[str, Any]]]] = {
    "grpc": bulk_result_grpc,
    "rest": bulk_result_rest,
}


# --- the `autointerp` command as a subprocess (test_cli, test_cli_neuronpedia) ---------------

CLI_API_KEY = "sk-cli-test-key-161803"
CLI_MODEL = "openai/gpt-4o-mini"
CLI_EXAMPLE = REPO / "examples" / "features.jsonl"


def cli_env(secret: str | None, **extra: str) -> dict[str, str]:
    """This process's environment without any autointerp setting or provider key, plus the
    CLI's API key, ``SECRET`` when given and ``extra``: the command sees what the test sets."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("SECRET", "OPENROUTER_API_KEY") and not k.startswith("AUTOINTERP_")
    }
    env["AUTOINTERP_API_KEY"] = CLI_API_KEY
    if secret is not None:
        env["SECRET"] = secret
    env.update(extra)
    return env


def run_cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``python -m autointerp_grpc.cli *args`` from the repo root; whatever it answers, neither
    the API key nor the secret may appear in what it prints."""
    result = subprocess.run(
        [sys.executable, "-m", "autointerp_grpc.cli", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    for value in (CLI_API_KEY, TEST_SECRET):
        assert value not in result.stdout
        assert value not in result.stderr
    return result


def jsonl_lines(path: Path) -> list[dict]:
    """The objects of a JSON Lines file, blank lines skipped."""
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def cli_run_args(
    server: str, tmp_path: Path, *extra: str, input_path: Path = CLI_EXAMPLE
) -> list[str]:
    """``autointerp run`` on ``input_path`` against ``server``, writing tmp_path/results.jsonl."""
    return [
        "run",
        "--server",
        server,
        "--input",
        str(input_path),
        "--output",
        str(tmp_path / "results.jsonl"),
        "--model",
        CLI_MODEL,
        *extra,
    ]
