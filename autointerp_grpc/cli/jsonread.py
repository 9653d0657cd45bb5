"""Input files read as hostile input: streamed line by line with a per-line cap (gzip too, so
a bomb is never held whole), and every JSON value checked against the rules a request must
meet — nesting at most :data:`MAX_DEPTH` deep, numbers a double can hold, text that is valid
Unicode. Each problem is a :class:`UsageError` naming the file, the line and the rule."""

from __future__ import annotations

import gzip
import json
import math
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from autointerp_grpc.cli.errors import UsageError

DEFAULT_MAX_LINE_BYTES = 16 * 1024 * 1024
"""The longest line (and the largest JSON document spread over several lines) read, by
default: the server's default ``AUTOINTERP_MAX_REQUEST_BYTES``, as no request can be larger."""
MAX_DEPTH = 100
"""Deepest nesting of arrays and objects accepted (a request needs 4)."""
CAP_FLAG = "--max-line-bytes"

# Integer literals longer than this are read as floats (a double's range, then the rule's
# check), so none reaches int()'s 4,300-digit limit; 20 characters hold any 64-bit integer.
_MAX_EXACT_INT_CHARS = 20
_GZIP_MAGIC = b"\x1f\x8b"
_READ_ERRORS = (OSError, EOFError, zlib.error)


class _Broken(Exception):
    """A value that breaks a rule (the message is the rule)."""


def _parse_int(literal: str) -> int | float:
    return int(literal) if len(literal) <= _MAX_EXACT_INT_CHARS else float(literal)


def _reject_constant(name: str) -> float:
    raise _Broken(f"{name} is not a number JSON allows")


_DECODER = json.JSONDecoder(parse_int=_parse_int, parse_constant=_reject_constant)


def _check_text(text: str) -> None:
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise _Broken("text that is not valid Unicode (a lone surrogate)") from None


def _check(value: Any) -> None:
    """Raise :class:`_Broken` for the first rule ``value`` breaks (iteratively: no recursion)."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth >= MAX_DEPTH:
                raise _Broken(f"nested more than {MAX_DEPTH} levels deep")
            if isinstance(item, dict):
                for key in item:
                    _check_text(key)
                children = item.values()
            else:
                children = item
            stack.extend((child, depth + 1) for child in children)
        elif isinstance(item, str):
            _check_text(item)
        elif isinstance(item, float) and not math.isfinite(item):
            raise _Broken("a number out of range (a double holds up to about 1.8e308)")


def _decode(text: str, where: str, position: int | None) -> tuple[Any, int]:
    try:
        if position is None:
            value, end = _DECODER.decode(text), len(text)
        else:
            value, end = _DECODER.raw_decode(text, position)
        _check(value)
    except _Broken as exc:
        raise UsageError(f"{where}: {exc}") from None
    except RecursionError:
        raise UsageError(f"{where}: nested more than {MAX_DEPTH} levels deep") from None
    return value, end


def loads(text: str, where: str) -> Any:
    """``text`` as JSON, checked; json.JSONDecodeError for a syntax error (the caller names
    its line), UsageError (``where: rule``) for a value that breaks a rule."""
    return _decode(text, where, None)[0]


def array_items(text: str, path: str, first_line: int = 1) -> Iterator[tuple[int, Any]]:
    """The items of the JSON array that ``text`` (already known to parse) holds, each checked
    and with the line it starts on (``text`` starting on line ``first_line``)."""
    position, line = text.index("[") + 1, first_line
    line += text.count("\n", 0, position)
    while True:
        while text[position] in " \t\r\n,":
            line += text[position] == "\n"
            position += 1
        if text[position] == "]":
            return
        start = position
        try:
            item, position = _decode(text, f"{path}:{line}", position)
        except json.JSONDecodeError as exc:  # the whole text parsed: not expected
            raise UsageError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
        yield line, item
        line += text.count("\n", start, position)


def _open(path: str) -> IO[bytes]:
    """``path`` (``-``: stdin) as bytes, gunzipped as it is read when it is gzip."""
    try:
        raw: IO[bytes] = sys.stdin.buffer if path == "-" else Path(path).open("rb")  # noqa: SIM115
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
    peek = getattr(raw, "peek", None)
    head = peek(2)[:2] if peek is not None else b""
    if head == _GZIP_MAGIC:  # Neuronpedia's exports are .jsonl.gz
        return gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[return-value]
    return raw


def read_lines(path: str, max_line_bytes: int) -> Iterator[tuple[int, str]]:
    """(line number, text without its newline) for every line of ``path``, read as a stream:
    a line over ``max_line_bytes`` is an error as soon as that many bytes are read."""
    handle = _open(path)
    try:
        number = 0
        while True:
            try:
                raw = handle.readline(max_line_bytes + 1)
            except _READ_ERRORS as exc:
                raise UsageError(f"cannot read {path}: not a valid gzip file ({exc})") from None
            if not raw:
                return
            number += 1
            if raw.endswith(b"\n"):
                raw = raw[:-1]
            elif len(raw) > max_line_bytes:
                raise UsageError(
                    f"{path}:{number}: line longer than {max_line_bytes} bytes ({CAP_FLAG})"
                )
            try:
                yield number, raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise UsageError(f"{path}:{number}: not valid UTF-8 ({exc.reason})") from None
    finally:
        if handle is not sys.stdin.buffer:
            handle.close()


def read_document(path: str, max_bytes: int) -> str:
    """The whole of ``path`` as text, at most ``max_bytes`` of it (an error beyond)."""
    handle = _open(path)
    try:
        raw = handle.read(max_bytes + 1)
    except _READ_ERRORS as exc:
        raise UsageError(f"cannot read {path}: {exc}") from None
    finally:
        if handle is not sys.stdin.buffer:
            handle.close()
    if len(raw) > max_bytes:
        raise UsageError(f"{path}: over {max_bytes} bytes ({CAP_FLAG})")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError(f"cannot read {path}: {exc}") from None
