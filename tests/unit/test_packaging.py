"""What ships: the service's wheel and images carry the service and none of its test doubles.

The fake LLM is the autointerp-testing distribution in testing/ (installed editable by
``make install`` for development); nothing the service's wheel or Dockerfiles take from the repo
may hold it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _is_test_double(name: str) -> bool:
    parts = Path(name).parts
    return bool(parts) and (
        parts[0] == "autointerp_testing" or "testing" in parts[:-1] or "fake_llm" in parts
    )


def test_the_wheel_holds_the_service_and_no_test_double(tmp_path: Path) -> None:
    # Built from a copy of what the wheel is made of, so that no build output lands in the repo.
    source = tmp_path / "src"
    source.mkdir()
    shutil.copy(REPO / "pyproject.toml", source)
    shutil.copy(REPO / "README.md", source)
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    shutil.copytree(REPO / "autointerp_grpc", source / "autointerp_grpc", ignore=ignore)
    build = [sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation"]
    subprocess.run(
        [*build, "--wheel-dir", str(tmp_path / "wheel"), "--quiet"],
        check=True,
        capture_output=True,
        timeout=120,
    )
    (wheel,) = (tmp_path / "wheel").glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "autointerp_grpc/__init__.py" in names
    assert "autointerp_grpc/gen/autointerp/v1/autointerp_pb2.py" in names
    assert [n for n in names if _is_test_double(n)] == []


def test_the_images_copy_no_test_double() -> None:
    for dockerfile in ("Dockerfile.cpu", "Dockerfile.cuda"):
        text = (REPO / dockerfile).read_text()
        # COPY lines that take from the build context (not --from another stage).
        sources = [
            src
            for line in re.findall(r"^COPY (?!--from)(.+)$", text, flags=re.MULTILINE)
            for src in line.split()[:-1]
        ]
        assert "autointerp_grpc" in sources, dockerfile
        copied = [
            str(path.relative_to(REPO))
            for src in sources
            for path in [REPO / src, *(REPO / src).rglob("*")]
            if "__pycache__" not in path.parts
        ]
        assert [name for name in copied if _is_test_double(name)] == [], dockerfile
