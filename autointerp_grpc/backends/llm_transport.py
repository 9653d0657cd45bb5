"""What bounds the service's upstream LLM calls: the size of an answer's body, and a fair,
bounded wait for one of the process-wide call slots.

:class:`BoundedHttpxClient` is the openai SDK's own HTTP client (``DefaultAsyncHttpxClient``,
so the SDK keeps its retries, typed errors and response handling) whose ``send`` reads each
response body as a stream, after decompression (httpx2 inflates a gzip body in pieces of at
most 1 MiB), and stops at a byte limit: a body over it, however it is encoded and whatever
its ``Content-Length`` says, fails the call with :class:`ResponseTooLarge` (an
``openai.OpenAIError``, which the SDK passes on without retrying) holding at most the limit
in memory. Redirects are followed without reading their bodies.

:class:`FairGate` is the process-wide cap on upstream calls in flight. A call waits for a
slot at most as long as it is told (the request's remaining time, and the server's limit on
the wait), and a slot that comes free goes to the waiting request with the fewest calls in
flight (the first to ask among equals), so one request's tenth call never starves another
request's first.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
from collections.abc import AsyncIterator
from typing import Any

import httpx2
import openai

__all__ = ["BoundedHttpxClient", "FairGate", "ResponseTooLarge", "SlotWaitExpired"]


class ResponseTooLarge(openai.OpenAIError):
    """An upstream response body (decoded) over the byte limit."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"The upstream response body is over {limit} bytes")
        self.limit = limit


# Headers that describe the body as it came over the wire, not the decoded bytes kept.
_WIRE_HEADERS = frozenset({"content-encoding", "content-length", "transfer-encoding"})


class BoundedHttpxClient(openai.DefaultAsyncHttpxClient):
    """The SDK's HTTP client, reading each response body (decoded) up to ``max_body_bytes``."""

    def __init__(self, *, max_body_bytes: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.max_body_bytes = max_body_bytes

    async def send(  # type: ignore[override]
        self,
        request: httpx2.Request,
        *,
        stream: bool = False,
        follow_redirects: bool | None = None,
        **kwargs: Any,
    ) -> httpx2.Response:
        follow = self.follow_redirects if follow_redirects is None else follow_redirects
        hops = 0
        while True:
            # Redirects are followed here, so that no body is read unbounded on the way
            # (httpx reads a redirect's whole body before following it).
            response = await super().send(request, stream=True, follow_redirects=False, **kwargs)
            if not follow or response.next_request is None:
                break
            await response.aclose()
            hops += 1
            if hops > self.max_redirects:
                raise httpx2.TooManyRedirects(
                    "Exceeded maximum allowed redirects.", request=request
                )
            request = response.next_request
        if stream:
            return response
        try:
            body = await self._read(response)
        finally:
            await response.aclose()
        headers = [
            (name, value)
            for name, value in response.headers.multi_items()
            if name.lower() not in _WIRE_HEADERS
        ]
        read = httpx2.Response(
            response.status_code,
            headers=headers,
            content=body,
            request=request,
            extensions=response.extensions,
            history=response.history,
        )
        read.elapsed = response.elapsed
        return read

    async def _read(self, response: httpx2.Response) -> bytes:
        limit = self.max_body_bytes
        declared = response.headers.get("content-length", "")
        if (
            "content-encoding" not in response.headers
            and declared.isdigit()
            and int(declared) > limit
        ):
            raise ResponseTooLarge(limit)  # said so up front: not a byte is read
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > limit:
                raise ResponseTooLarge(limit)
            chunks.append(chunk)
        return b"".join(chunks)


class SlotWaitExpired(Exception):
    """No slot came free within the time a call could wait."""


class FairGate:
    """At most ``capacity`` holders at once; waiting is bounded and fair across owners.

    An owner is whatever a call belongs to (its request; told apart by identity, and alive
    while it has calls waiting or holding slots). A free slot goes to the waiting
    owner with the fewest slots held, the earliest waiter first among equals; within one
    owner, first come, first served.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._free = capacity
        self._held: collections.Counter[int] = collections.Counter()
        self._waiting: dict[int, collections.deque[tuple[int, asyncio.Future[None]]]] = {}
        self._order = itertools.count()

    @property
    def in_use(self) -> int:
        return self.capacity - self._free

    @property
    def waiting(self) -> int:
        return sum(len(queue) for queue in self._waiting.values())

    @contextlib.asynccontextmanager
    async def slot(self, owner: object, wait_s: float) -> AsyncIterator[None]:
        """Hold one slot for ``owner`` while the block runs; :class:`SlotWaitExpired` when
        none came free within ``wait_s`` seconds."""
        key = id(owner)
        await self._acquire(key, wait_s)
        try:
            yield
        finally:
            self._release(key)

    async def _acquire(self, owner: int, wait_s: float) -> None:
        if self._free > 0 and not self._waiting:
            self._grant(owner)
            return
        granted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(owner, collections.deque()).append((next(self._order), granted))
        try:
            async with asyncio.timeout(max(0.0, wait_s)):
                await asyncio.shield(granted)
        except BaseException as exc:
            if granted.done() and not granted.cancelled():
                # Granted as the wait ended: hand the slot on.
                self._release(owner)
            else:
                granted.cancel()
                self._forget(owner, granted)
            if isinstance(exc, TimeoutError):
                raise SlotWaitExpired from None
            raise

    def _grant(self, owner: int) -> None:
        self._free -= 1
        self._held[owner] += 1

    def _release(self, owner: int) -> None:
        self._held[owner] -= 1
        if self._held[owner] <= 0:
            del self._held[owner]
        self._free += 1
        self._wake()

    def _forget(self, owner: int, granted: asyncio.Future[None]) -> None:
        queue = self._waiting.get(owner)
        if queue is None:
            return
        for entry in queue:
            if entry[1] is granted:
                queue.remove(entry)
                break
        if not queue:
            del self._waiting[owner]

    def _wake(self) -> None:
        while self._free > 0 and self._waiting:
            owner = min(self._waiting, key=lambda o: (self._held[o], self._waiting[o][0][0]))
            queue = self._waiting[owner]
            _, granted = queue.popleft()
            if not queue:
                del self._waiting[owner]
            if granted.done():  # its waiter left
                continue
            self._grant(owner)
            granted.set_result(None)
