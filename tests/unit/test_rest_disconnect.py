"""The REST door's work never outlives the request's task (issue 17 attack pass: a cancelled
ASGI handler left its work running, and its failure logged as "Task exception was never
retrieved")."""

from __future__ import annotations

import asyncio
from typing import Any

from autointerp_grpc.rest import routes


class _SilentRequest:
    """A client that neither sends more nor leaves."""

    async def receive(self) -> dict[str, Any]:
        await asyncio.Event().wait()
        return {}


async def test_cancelling_the_handler_cancels_its_work() -> None:
    started = asyncio.Event()
    cancelled = asyncio.Event()

    async def work() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    body_read = asyncio.Event()
    body_read.set()
    handler = asyncio.ensure_future(
        routes._unless_disconnected(_SilentRequest(), body_read, work())  # type: ignore[arg-type]
    )
    await asyncio.wait_for(started.wait(), 5)
    handler.cancel()
    await asyncio.gather(handler, return_exceptions=True)
    await asyncio.wait_for(cancelled.wait(), 5)
