"""Big requests' CPU work runs off the event loop, with the request's context, and gives the
same answers as on it."""

from __future__ import annotations

import contextvars
import threading

import pytest

from autointerp_grpc import offload
from autointerp_grpc.offload import OFF_LOOP_BYTES, OFF_LOOP_ITEMS, bytes_as_items, off_loop

_request = contextvars.ContextVar("request", default="none")


def _where() -> tuple[str, str]:
    return threading.current_thread().name, _request.get()


async def test_small_work_runs_inline_and_big_work_on_a_worker_thread() -> None:
    _request.set("req-1")
    here = threading.current_thread().name
    assert await off_loop(OFF_LOOP_ITEMS - 1, _where) == (here, "req-1")
    thread, seen = await off_loop(OFF_LOOP_ITEMS, _where)
    assert thread.startswith("autointerp-cpu")
    assert seen == "req-1"  # the request's context (redaction, request id) goes along


async def test_errors_raised_off_the_loop_reach_the_caller() -> None:
    def fail() -> None:
        raise ValueError("bad record")

    with pytest.raises(ValueError, match="bad record"):
        await off_loop(OFF_LOOP_ITEMS, fail)


def test_message_bytes_map_to_the_item_scale() -> None:
    assert bytes_as_items(OFF_LOOP_BYTES - 1) < OFF_LOOP_ITEMS
    assert bytes_as_items(OFF_LOOP_BYTES) >= OFF_LOOP_ITEMS


def test_the_pool_is_the_services_own_not_the_loops_default() -> None:
    # The loop's default executor resolves upstream host names; CPU work must not queue there.
    pool = offload._executor()
    assert pool is offload._executor()
    assert pool._thread_name_prefix == "autointerp-cpu"
