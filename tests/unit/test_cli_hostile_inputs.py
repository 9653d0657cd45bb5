"""Hostile input files for ``autointerp run``, ``explain`` and ``score`` (issue 17, item 18):
nesting 100k deep, integers past a double's range (and literals past Python's 4,300-digit
limit), lone surrogates, a gzip bomb. Each is one line on stderr naming the file, the line and
the rule, exit status 2, never a traceback; a features file is read as a stream with a
per-line cap (``--max-line-bytes``), so a bomb never sits in memory."""

from __future__ import annotations

import gzip
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from autointerp_grpc.cli import main

REPO = Path(__file__).resolve().parents[2]
RECORD = '{"tokens": ["a", " cat"], "values": [0, 1]}'
FEATURE = '{"id": "ok", "activations": [' + RECORD + "]}"

HOSTILE: dict[str, tuple[str, str]] = {
    # name: (a JSON value holding it as a record's values / a key, what the error says)
    "nested": ("[" * 100_000 + "]" * 100_000, "nested more than"),
    "big-int": ("1" + "0" * 309, "out of range"),
    "huge-int": ("9" * 5000, "out of range"),
    "big-float": ("1e400", "out of range"),
    "nan": ("NaN", "NaN is not a number JSON allows"),
}


def _feature_line(hostile: str) -> str:
    return '{"id": "bad", "activations": [{"tokens": ["a"], "values": [' + hostile + "]}]}"


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    status = main(list(args))
    err = capsys.readouterr().err
    return status, err


def _run_args(path: Path, tmp_path: Path, *extra: str) -> list[str]:
    output = str(tmp_path / "out.jsonl")
    model = ["--model", "m", "--api-key", "sk-test", "--server", "127.0.0.1:1"]
    return ["run", "--input", str(path), "--output", output, *model, *extra]


def _one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


@pytest.mark.parametrize("name", HOSTILE)
def test_run_input_with_hostile_values(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    hostile, rule = HOSTILE[name]
    path = tmp_path / "features.jsonl"
    path.write_text(FEATURE + "\n" + _feature_line(hostile) + "\n")
    status, err = _run(capsys, *_run_args(path, tmp_path))
    assert status == 2
    line = _one_line(err)
    assert f"{path}:2: " in line and rule in line, line


@pytest.mark.parametrize("name", HOSTILE)
@pytest.mark.parametrize("command", ["explain", "score"])
def test_records_input_with_hostile_values(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, command: str
) -> None:
    hostile, rule = HOSTILE[name]
    path = tmp_path / "records.json"
    path.write_text('[\n  {"tokens": ["a"], "values": [1]},\n  {"tokens": ["a"], "values": [')
    with path.open("a") as handle:
        handle.write(hostile + "]}\n]\n")
    extra = ["--method", "default" if command == "explain" else "detection"]
    args = [command, "--input", str(path), "--model", "m", "--api-key", "k", *extra]
    status, err = _run(capsys, *args, "--server", "127.0.0.1:1")
    assert status == 2
    line = _one_line(err)
    assert f"{path}:3: " in line and rule in line, line


@pytest.mark.parametrize("where", ["key", "value"])
def test_a_lone_surrogate(tmp_path: Path, capsys: pytest.CaptureFixture[str], where: str) -> None:
    path = tmp_path / "features.jsonl"
    if where == "key":
        bad = '{"id": "bad", "\\ud800": 1, "activations": [' + RECORD + "]}"
    else:
        bad = '{"id": "bad", "activations": [{"tokens": ["\\udc00"], "values": [1]}]}'
    path.write_text(FEATURE + "\n" + bad + "\n")
    status, err = _run(capsys, *_run_args(path, tmp_path))
    assert status == 2
    line = _one_line(err)
    assert f"{path}:2: " in line and "not valid Unicode (a lone surrogate)" in line, line
    # The same in an explain/score input.
    records = tmp_path / "records.json"
    records.write_text('{"activations": [{"tokens": ["\\ud800"], "values": [1]}]}')
    status, err = _run(capsys, "score", "--method", "detection", "--input", str(records))
    assert status == 2
    assert "not valid Unicode" in _one_line(err)


def test_a_line_over_the_cap(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "features.jsonl"
    long = '{"id": "long", "activations": [' + ", ".join([RECORD] * 100) + "]}"
    path.write_text(FEATURE + "\n" + long + "\n")
    status, err = _run(capsys, *_run_args(path, tmp_path, "--max-line-bytes", "1024"))
    assert status == 2
    line = _one_line(err)
    assert f"{path}:2: " in line and "longer than 1024 bytes (--max-line-bytes)" in line, line
    records = tmp_path / "records.json"
    records.write_text("[" + ", ".join([RECORD] * 100) + "]")
    args = ["explain", "--input", str(records), "--model", "m", "--api-key", "k"]
    status, err = _run(capsys, *args, "--max-line-bytes", "1024")
    assert status == 2
    assert "over 1024 bytes (--max-line-bytes)" in _one_line(err)


def _bomb(path: Path, megabytes: int) -> None:
    """A .jsonl.gz whose one line is ``megabytes`` MiB of JSON whitespace in a string."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    chunk = b" " * (1024 * 1024)
    parts = [packer.compress(b'{"id": "bomb", "activations": [], "x": "')]
    parts += [packer.compress(chunk) for _ in range(megabytes)]
    parts += [packer.compress(b'"}\n'), packer.flush()]
    path.write_bytes(b"".join(parts))


# The command, reporting its peak RSS (VmHWM: this process's own, which exec resets; wait4's
# ru_maxrss also counts the parent's pages at the fork).
_MEASURED = """
import atexit, runpy, sys
def report():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            sys.stderr.write("peak " + line.split()[1] + "\\n")
atexit.register(report)
sys.argv = ["autointerp", *sys.argv[1:]]
runpy.run_module("autointerp_grpc.cli", run_name="__main__")
"""


def test_a_gzip_bomb_is_read_as_a_stream(tmp_path: Path) -> None:
    """Before: the whole file was decompressed (and decoded) in memory: 806 MiB peak RSS for
    a 255 KB file holding 256 MiB, then a traceback. Now the line cap stops the read."""
    path = tmp_path / "batch-0.jsonl.gz"
    _bomb(path, 256)
    assert path.stat().st_size < 400_000
    with gzip.open(path, "rb") as handle:
        assert sum(len(chunk) for chunk in iter(lambda: handle.read(1 << 24), b"")) > 256 << 20
    result = subprocess.run(
        [sys.executable, "-c", _MEASURED, *_run_args(path, tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    *lines, peak = result.stderr.strip().splitlines()
    line = _one_line("\n".join(lines))
    assert f"{path}:1: " in line and "(--max-line-bytes)" in line, line
    peak_mib = int(peak.split()[1]) / 1024
    assert peak_mib < 200, f"peak RSS {peak_mib:.0f} MiB"


def test_a_hostile_results_file_is_read_as_unreadable_lines(tmp_path: Path) -> None:
    """The file a resumed run reads: lines nested 100k deep or holding a 5,000-digit integer
    are unreadable lines (warned about, their ids run again), never a traceback."""
    from autointerp_grpc.cli import results

    path = tmp_path / "results.jsonl"
    path.write_text(
        '{"id": "ok", "explanation": "x"}\n'
        + "[" * 100_000
        + "]" * 100_000
        + "\n"
        + '{"id": "big", "seconds": '
        + "9" * 5000
        + "}\n"
    )
    assert results.read_done_ids(path) == ({"ok"}, 2)
