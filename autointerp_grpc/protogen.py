"""Generate the Python code for the protos under ``protos/`` into ``autointerp_grpc/gen``.

``make protos`` runs this; a test runs :func:`generate` into a temporary folder and compares it
with the committed files, so stale generated code fails the suite.

grpcio-tools writes imports relative to the proto root (``from autointerp.v1 import ...``); they
are rewritten to the package path (``from autointerp_grpc.gen.autointerp.v1 import ...``) so the
generated modules need nothing added to ``sys.path``.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from importlib import resources
from pathlib import Path

from grpc_tools import (
    protoc,
)  # a build tool: the dev extra brings it, the service never imports this

from autointerp_grpc.proto_comments import DESCRIPTOR_SET

REPO_ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = REPO_ROOT / "protos"
GEN_ROOT = Path(__file__).resolve().parent / "gen"
GEN_PACKAGE = "autointerp_grpc.gen"
# Our own proto packages: imports of these are rewritten; google.* imports are left alone
# (googleapis-common-protos and protobuf ship those modules).
OWN_TOP_LEVEL = "autointerp"

_IMPORT_RE = re.compile(rf"^from {OWN_TOP_LEVEL}(\.[\w.]+)? import ", re.MULTILINE)


def proto_files() -> list[Path]:
    """Every ``.proto`` under ``protos/``, sorted, relative to the proto root."""
    return sorted(p.relative_to(PROTO_ROOT) for p in PROTO_ROOT.rglob("*.proto"))


def _include_dirs() -> list[str]:
    # grpc_tools ships google/protobuf/*.proto; googleapis-common-protos ships google/api/*.proto
    # next to its generated modules, so both are found offline.
    grpc_tools_protos = resources.files("grpc_tools") / "_proto"
    import google.api  # only needed while generating

    googleapis_root = Path(google.api.__path__[0]).parent.parent
    return [str(PROTO_ROOT), str(grpc_tools_protos), str(googleapis_root)]


def _rewrite_imports(text: str) -> str:
    return _IMPORT_RE.sub(
        lambda m: f"from {GEN_PACKAGE}.{OWN_TOP_LEVEL}{m.group(1) or ''} import ", text
    )


def generate(out_dir: Path) -> list[Path]:
    """Generate ``_pb2.py``, ``_pb2.pyi``, ``_pb2_grpc.py`` for every proto, and a descriptor set
    with source comments, into ``out_dir``.

    Returns the written files, relative to ``out_dir``.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        args = [
            "grpc_tools.protoc",
            *(f"-I{d}" for d in _include_dirs()),
            f"--python_out={tmp}",
            f"--pyi_out={tmp}",
            f"--grpc_python_out={tmp}",
            # The same descriptors with their comments, which the runtime pb2 modules drop;
            # the OpenAPI generator reads descriptions from here.
            f"--descriptor_set_out={Path(tmp) / DESCRIPTOR_SET}",
            "--include_source_info",
            *(str(p) for p in proto_files()),
        ]
        if protoc.main(args) != 0:
            raise RuntimeError("protoc failed; see its output above")
        written = []
        for src in sorted(Path(tmp).rglob("*")):
            if not src.is_file():
                continue
            rel = src.relative_to(tmp)
            dest = out_dir / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            if src.suffix in (".py", ".pyi"):
                dest.write_text(_rewrite_imports(src.read_text()))
            else:
                dest.write_bytes(src.read_bytes())
            written.append(rel)
    # Every generated folder is a regular package so the rewritten imports resolve.
    packages = {out_dir / rel.parent for rel in written if rel.suffix == ".py"}
    packages |= {parent for p in packages for parent in p.parents if parent.is_relative_to(out_dir)}
    for folder in packages:
        init = folder / "__init__.py"
        if not init.exists():
            init.write_text("")
            written.append(init.relative_to(out_dir))
    return sorted(set(written))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").partition("\n")[0])
    parser.add_argument("--out", type=Path, default=GEN_ROOT, help="output folder")
    args = parser.parse_args(argv)
    for rel in generate(args.out):
        print(args.out / rel)
    return 0


if __name__ == "__main__":
    sys.exit(main())
