"""The scripts in client_examples/ run against the real server (the session `server` fixture).

grpcurl is a Go binary that is not installed here, so grpcurl.sh is syntax-checked with
``bash -n`` and then run with a stand-in ``grpcurl`` on PATH: a small Python program that parses
the same flags, checks each request body against the real message types with
``json_format`` and makes the call with the generated descriptors. That checks the script's
bodies, headers and method names, not grpcurl itself.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "client_examples"
API_KEY = "sk-client-examples-key-314159"


def _env(server, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "SECRET" and not k.startswith("AUTOINTERP_")}
    env.update(
        SECRET=server.secret,
        GRPC_TARGET=server.grpc_target,
        HTTP_BASE=server.http_base,
        OPENROUTER_API_KEY=API_KEY,
    )
    env.update(extra)
    return env


def _run(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False
    )


def _assert_no_secrets(server, result: subprocess.CompletedProcess[str]) -> None:
    for value in (server.secret, API_KEY):
        assert value not in result.stdout
        assert value not in result.stderr


def test_scripts_are_executable_bash() -> None:
    for name in ("curl.sh", "grpcurl.sh", "python_client.py"):
        assert os.access(EXAMPLES / name, os.X_OK), name
    for name in ("curl.sh", "grpcurl.sh"):
        path = EXAMPLES / name
        assert path.read_text().startswith("#!/usr/bin/env bash\n"), name
        result = _run(["bash", "-n", str(path)], dict(os.environ))
        assert result.returncode == 0, result.stderr


# --- python_client.py ---------------------------------------------------------------------


def test_python_client_calls_every_rpc(server) -> None:
    result = _run([sys.executable, str(EXAMPLES / "python_client.py")], _env(server))
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert 'explanation: Mentions of "cat"' in out
    assert "FUZZ score: 1.000" in out
    assert "DETECTION score: 1.000" in out
    assert "answered: 12/12 examples" in out
    assert "EMBEDDING score: " in out
    embedding_score = float(out.split("EMBEDDING score: ", 1)[1].split()[0])
    assert embedding_score >= 0.9
    _assert_no_secrets(server, result)


def test_python_client_flags_override_env(server) -> None:
    env = _env(server, GRPC_TARGET="127.0.0.1:9", OPENROUTER_API_KEY="")
    env.pop("SECRET")
    command = [
        sys.executable,
        str(EXAMPLES / "python_client.py"),
        "--target",
        server.grpc_target,
        "--secret",
        server.secret,
        "--api-key",
        API_KEY,
        "--model",
        "openai/gpt-4o-mini",
        "--explanation",
        "stock market finance",
    ]
    result = _run(command, env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "scoring the explanation: 'stock market finance'" in result.stdout
    assert "DETECTION score: 1.000" not in result.stdout
    _assert_no_secrets(server, result)


@pytest.mark.parametrize(
    ("overrides", "status"),
    [
        ({"SECRET": "not-the-secret"}, "UNAUTHENTICATED"),
        ({"OPENROUTER_API_KEY": "bad-key"}, "FAILED_PRECONDITION"),
    ],
)
def test_python_client_reports_rpc_errors(server, overrides: dict[str, str], status: str) -> None:
    result = _run([sys.executable, str(EXAMPLES / "python_client.py")], _env(server, **overrides))
    assert result.returncode == 1
    assert f"error: ExplainDefault failed: {status}: " in result.stderr
    assert "request id" in result.stderr
    _assert_no_secrets(server, result)


def test_python_client_needs_an_api_key(server) -> None:
    result = _run(
        [sys.executable, str(EXAMPLES / "python_client.py")], _env(server, OPENROUTER_API_KEY="")
    )
    assert result.returncode == 2
    assert "OPENROUTER_API_KEY" in result.stderr


# --- curl.sh ------------------------------------------------------------------------------


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_script_calls_every_endpoint(server) -> None:
    result = _run(["bash", str(EXAMPLES / "curl.sh")], _env(server))
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert '{"status":"SERVING"}' in out
    for path in ("/v1/explain/default", "/v1/score/embedding", "/v1/score/fuzz-detection"):
        assert f'"{path}"' in out
    # The legacy documented request gets the legacy answer.
    assert '{"explanation":"Mentions of \\"cat\\", \\"felines\\""}' in out
    assert '{"explanation":"Mentions of \\"cat\\""}' in out
    bodies = [json.loads(line) for line in out.splitlines() if line.startswith('{"score":')]
    assert len(bodies) == 3  # FUZZ, DETECTION, embedding
    fuzz, detection, embedding = bodies
    assert fuzz["score"] == 1.0
    assert {item["highlighted"] for item in fuzz["breakdown"]} == {True}
    assert detection["score"] == 1.0
    assert {item["highlighted"] for item in detection["breakdown"]} == {False}
    assert embedding["score"] >= 0.9
    _assert_no_secrets(server, result)


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_script_stops_on_http_error(server) -> None:
    result = _run(["bash", str(EXAMPLES / "curl.sh")], _env(server, SECRET="not-the-secret"))
    assert result.returncode != 0
    assert "401" in result.stderr
    # /health and /openapi.json are open; the first authenticated call fails.
    assert '{"status":"SERVING"}' in result.stdout
    assert "explanation" not in result.stdout


# --- grpcurl.sh (with a stand-in grpcurl) -------------------------------------------------

FAKE_GRPCURL = r'''
"""Stand-in for grpcurl: the flags grpcurl.sh uses, calls made with the generated code."""
import json
import os
import re
import sys

import grpc
from google.protobuf import json_format
from grpc_health.v1 import health_pb2

from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2

with open(os.environ["FAKE_GRPCURL_LOG"], "a") as log:
    log.write(json.dumps(sys.argv[1:]) + "\n")

args = sys.argv[1:]
headers, data, expand, positional = [], None, False, []
while args:
    arg = args.pop(0)
    if arg == "-H":
        headers.append(args.pop(0))
    elif arg == "-d":
        data = args.pop(0)
    elif arg == "-max-time":
        args.pop(0)
    elif arg == "-expand-headers":
        expand = True
    elif arg == "-plaintext":
        pass
    elif arg.startswith("-"):
        sys.exit(f"fake grpcurl: unexpected flag {arg}")
    else:
        positional.append(arg)

target, verb, *rest = positional
if verb in ("list", "describe"):
    print(verb, *rest)
    sys.exit(0)

if expand:
    headers = [re.sub(r"\$\{(\w+)\}", lambda m: os.environ[m.group(1)], h) for h in headers]
metadata = [tuple(part.strip() for part in h.split(":", 1)) for h in headers]
service_name, method_name = verb.rsplit("/", 1)
services = {
    s.full_name: s
    for f in (autointerp_pb2.DESCRIPTOR, health_pb2.DESCRIPTOR)
    for s in f.services_by_name.values()
}
method = services[service_name].methods_by_name[method_name]
from google.protobuf import message_factory

request_cls = message_factory.GetMessageClass(method.input_type)
response_cls = message_factory.GetMessageClass(method.output_type)
body = sys.stdin.read() if data == "@" else data
request = json_format.Parse(body, request_cls())
with grpc.insecure_channel(target) as channel:
    call = channel.unary_unary(
        f"/{service_name}/{method_name}",
        request_serializer=request_cls.SerializeToString,
        response_deserializer=response_cls.FromString,
    )
    try:
        response = call(request, metadata=metadata, timeout=120)
    except grpc.RpcError as error:
        sys.exit(f"ERROR:\n  Code: {error.code().name}\n  Message: {error.details()}")
print(json_format.MessageToJson(response))
'''


@pytest.fixture
def fake_grpcurl(tmp_path: Path) -> tuple[Path, Path]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "grpcurl"
    script.write_text(f"#!{sys.executable}\n{FAKE_GRPCURL}")
    script.chmod(0o755)
    return bin_dir, tmp_path / "grpcurl-argv.log"


def test_grpcurl_script_with_stand_in(server, fake_grpcurl: tuple[Path, Path]) -> None:
    bin_dir, log = fake_grpcurl
    env = _env(server, FAKE_GRPCURL_LOG=str(log))
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(REPO)
    result = _run(["bash", str(EXAMPLES / "grpcurl.sh")], env)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert out.count('"status": "SERVING"') == 2
    assert '"explanation": "Mentions of \\"cat\\""' in out
    assert out.count('"score": 1.0') >= 2
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    methods = [c[-1] for c in calls if c[-1].startswith("autointerp.v1.AutoInterp/")]
    assert methods == [
        "autointerp.v1.AutoInterp/ExplainDefault",
        "autointerp.v1.AutoInterp/ScoreFuzzDetection",
        "autointerp.v1.AutoInterp/ScoreFuzzDetection",
        "autointerp.v1.AutoInterp/ScoreEmbedding",
    ]
    # Neither the secret nor the key ever reaches grpcurl's command line.
    argv_text = log.read_text()
    assert server.secret not in argv_text
    assert API_KEY not in argv_text
    _assert_no_secrets(server, result)
