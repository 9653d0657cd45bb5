"""CPU work proportional to a request's size, kept off the event loop.

Building delphi examples from 1,000 long records, highlighting a fuzz scorer's samples or
rendering a 20 MB JSON response takes from a fraction of a second to seconds of pure Python.
On the event loop that time stalls every other call (``/health`` and gRPC ``Health/Check``
included). :func:`off_loop` runs such a step on a small pool of worker threads once the
work is big enough to matter, and inline otherwise (a thread hop costs about 0.1 ms).

The pool is the service's own, not the loop's default executor: the default executor also
resolves host names for upstream connections, which must never queue behind this work. The
GIL still serialises Python code, but the loop thread gets it back every switch interval
(5 ms), so the loop keeps answering while the worker runs.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")

OFF_LOOP_ITEMS = 20_000
"""Work of at least this many items (tokens, usually) runs on a worker thread."""
OFF_LOOP_BYTES = 256 * 1024
"""Messages of at least this many (protobuf) bytes are printed as JSON on a worker thread."""

_WORKERS = 2
_pool: ThreadPoolExecutor | None = None


def _executor() -> ThreadPoolExecutor:
    global _pool  # noqa: PLW0603 - one pool per process, created on first use
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=_WORKERS, thread_name_prefix="autointerp-cpu")
    return _pool


def bytes_as_items(size: int) -> int:
    """A message's size in bytes on :func:`off_loop`'s scale of items."""
    return OFF_LOOP_ITEMS if size >= OFF_LOOP_BYTES else 0


async def off_loop(size: int, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """``fn(*args, **kwargs)``: on a worker thread when ``size`` (items of work: tokens, counted
    by ``validation.token_count`` or ``records.example_token_count``) is at least
    :data:`OFF_LOOP_ITEMS`, else right here. The caller's context variables (the request's
    redaction secrets, its request id) go with it."""
    if size < OFF_LOOP_ITEMS:
        return fn(*args, **kwargs)
    call = functools.partial(contextvars.copy_context().run, fn, *args, **kwargs)
    return await asyncio.get_running_loop().run_in_executor(_executor(), call)
