"""The committed generated code matches the protos, and delphi loads without vLLM."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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
