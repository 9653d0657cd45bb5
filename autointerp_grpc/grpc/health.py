"""``grpc.health.v1.Health`` on the event loop, with a cap on Watch streams.

grpcio-health-checking ships two servicers. The sync one runs on the grpc.aio server's
executor threads: every Watch stream pins a thread in a blocking wait, and a handful of
cancelled Watch calls (no secret needed) used to exhaust the loop's default executor, which
also runs ``getaddrinfo`` for upstream connections and which the loop joins on close — so
probes, LLM calls and even SIGTERM hung. Its asyncio twin fixes the threads but can only be
updated from a coroutine and holds one lock per service across each ``write`` to a watcher,
so one slow reader can block a status change.

This servicer is coroutines only: ``set`` is a plain call from the loop's thread (signal
handlers use it), a change wakes every watcher through an event that is replaced on each
change, nothing is held while a watcher writes, and at most ``max_watchers`` Watch streams
are open at once (RESOURCE_EXHAUSTED beyond that). :meth:`close` ends them all, so they
do not hold a graceful stop for its whole grace period.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

SERVICE_NAME = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name
Status = health_pb2.HealthCheckResponse.ServingStatus
UNKNOWN = health_pb2.HealthCheckResponse.SERVICE_UNKNOWN


class HealthServicer(health_pb2_grpc.HealthServicer):
    """Check and Watch for the services registered with :meth:`set`."""

    def __init__(self, max_watchers: int = 64) -> None:
        self._status: dict[str, Status] = {}
        self._changed = asyncio.Event()
        self.max_watchers = max_watchers
        self._closed = False
        self.watchers = 0
        """Watch streams open now."""

    def set(self, service: str, status: Status) -> None:
        """Set a service's status (call from the event loop's thread); watchers see it at
        once."""
        if self._status.get(service) == status:
            return
        self._status[service] = status
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def close(self) -> None:
        """End every Watch stream (with OK, after its last status); for the server's stop."""
        self._closed = True
        self._changed.set()

    def status(self, service: str = "") -> Status | None:
        return self._status.get(service)

    async def Check(
        self, request: health_pb2.HealthCheckRequest, context: grpc.aio.ServicerContext
    ) -> health_pb2.HealthCheckResponse:
        status = self._status.get(request.service)
        if status is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, "unknown service")
        return health_pb2.HealthCheckResponse(status=status)

    async def Watch(  # type: ignore[override]
        self, request: health_pb2.HealthCheckRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[health_pb2.HealthCheckResponse]:
        if self._closed:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "The server is stopping")
        if self.watchers >= self.max_watchers:
            await context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"At most {self.max_watchers} health Watch streams may be open at once; "
                "use Check, or retry later",
            )
        self.watchers += 1
        try:
            last: Status | None = None
            while not self._closed:
                # Take the event before reading the status, so a change in between is seen.
                changed = self._changed
                status = self._status.get(
                    request.service, health_pb2.HealthCheckResponse.SERVICE_UNKNOWN
                )
                if status != last:
                    yield health_pb2.HealthCheckResponse(status=status)
                    last = status
                await changed.wait()
        finally:
            self.watchers -= 1
