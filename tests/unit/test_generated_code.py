"""The committed generated code matches the protos, and delphi loads without vLLM."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from autointerp_grpc import protogen


def test_generated_code_is_fresh(tmp_path: Path) -> None:
    written = protogen.generate(tmp_path)
    assert written, "protoc generated nothing"
    committed = sorted(
        p.relative_to(protogen.GEN_ROOT)
        for p in protogen.GEN_ROOT.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    )
    assert committed == written, "files in autointerp_grpc/gen differ; run `make protos`"
    stale = [
        str(rel)
        for rel in written
        if (tmp_path / rel).read_bytes() != (protogen.GEN_ROOT / rel).read_bytes()
    ]
    assert not stale, f"stale generated code {stale}; run `make protos` and commit the result"


@pytest.mark.slow  # a fresh interpreter importing the whole stack (torch): ~14 s
def test_vllm_is_never_imported() -> None:
    # A fresh interpreter: import everything that touches delphi, then look at sys.modules.
    code = (
        "import sys\n"
        "import autointerp_grpc.app, autointerp_grpc.handlers\n"
        "from autointerp_grpc import delphi_compat\n"
        "assert 'delphi.scorers' in sys.modules\n"
        "bad = sorted(m for m in sys.modules if m == 'vllm' or m.startswith('vllm.'))\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""


@pytest.mark.slow  # a fresh interpreter importing the whole stack (torch): ~14 s
def test_the_service_runs_without_grpcio_tools() -> None:
    """grpcio-tools is a build tool (the dev extra): the service, its OpenAPI document and
    ListMethods' descriptions must not need it."""
    code = (
        "import sys; sys.modules['grpc_tools'] = None\n"
        "from autointerp_grpc.app import create_app\n"
        "from autointerp_grpc.openapi import build_openapi\n"
        "from autointerp_grpc.proto_comments import proto_comments\n"
        "create_app(); assert build_openapi()['paths'] and proto_comments()\n"
    )
    root = Path(__file__).resolve().parents[2]
    subprocess.run([sys.executable, "-c", code], check=True, cwd=root, timeout=120)
