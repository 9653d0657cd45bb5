"""Bulk runs: explain and score many features over one or several servers, with retries.

    from autointerp_grpc.client import bulk

    servers = bulk.connect("a:50051,b:50051", secret=secret)   # inside the event loop
    try:
        servers = await bulk.preflight(servers)                  # drop unreachable ones
        runner = bulk.BulkRunner(
            servers, template, [bulk.Job(f) for f in features],
            batch_size=50, streams=2 * len(servers), retries=2, stream_timeout=None,
            on_result=results.append,
        )
        await runner.run()
    finally:
        await bulk.close(servers)

``template`` is an ExplainAndScoreRequest without features (explainer, scorers, LLM options);
each stream sends it with a batch of features. Every feature ends with exactly one result
passed to ``on_result``: its scores, or its error once retries are spent. A feature one of
whose scorers failed is a failed feature (:func:`failure`): retried like a feature error when
the scorer's error is transient. Resuming (skipping features already done) is the caller's
business: pass only the jobs still to run.
"""

from __future__ import annotations

import asyncio
import collections
import re
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import grpc

from autointerp_grpc.client._base import rpc_failure, rpc_status
from autointerp_grpc.client.aio import AsyncAutoInterpClient
from autointerp_grpc.client.targets import split_servers
from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2 as pb

PREFLIGHT_TIMEOUT_S = 30.0
MAX_COOLDOWN_S = 30.0
# Feature errors worth another try; the others (INVALID_ARGUMENT, FAILED_PRECONDITION, ...)
# would fail the same way again.
RETRYABLE_CODES = frozenset(
    {"UNAVAILABLE", "RESOURCE_EXHAUSTED", "DEADLINE_EXCEEDED", "INTERNAL", "UNKNOWN", "ABORTED"}
)
# Stream failures that no retry or other server can fix: the run stops.
FATAL_CODES = frozenset(
    {
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.UNIMPLEMENTED,
        grpc.StatusCode.INVALID_ARGUMENT,
    }
)
_FEATURE_PATH_RE = re.compile(r"^features\[(\d+)\]\.?")


@dataclass
class Job:
    """One feature to run, and how often it has been re-submitted."""

    feature: pb.Feature
    retries: int = 0


class FatalRunError(Exception):
    """A stream failed in a way no retry fixes (wrong secret, a request the server rejects)."""

    def __init__(self, message: str, code: grpc.StatusCode) -> None:
        super().__init__(message)
        self.code = code


@dataclass(eq=False)
class Server:
    """One server of a run: its client, and the scheduler's bookkeeping."""

    address: str
    client: AsyncAutoInterpClient
    streams: int = 0
    failures: int = 0
    cooldown_until: float = 0.0


def connect(
    servers: str | Sequence[str], *, secret: str | None = None, timeout: float | None = None
) -> list[Server]:
    """A :class:`Server` with its own async client per address (call inside the event loop;
    :func:`close` them after). Raises ValueError for a malformed address."""
    return [
        Server(address, AsyncAutoInterpClient(address, secret=secret, timeout=timeout))
        for address in split_servers(servers)
    ]


async def close(servers: Iterable[Server]) -> None:
    """Close every server's client."""
    await asyncio.gather(*(s.client.close() for s in servers))


async def preflight(
    servers: Sequence[Server],
    *,
    deadline: float = PREFLIGHT_TIMEOUT_S,
    check: Callable[[pb.ListMethodsResponse], None] | None = None,
    on_unreachable: Callable[[Server, str], None] | None = None,
) -> list[Server]:
    """Ask every server for its methods (``deadline``: seconds) and return those that answered.

    ``check`` sees each answer, in server order (e.g. to check method names; what it raises
    propagates). A server that is unreachable (UNAVAILABLE, DEADLINE_EXCEEDED) is left out
    and reported to ``on_unreachable`` with a message; any other failure raises
    :class:`FatalRunError`, as does having no server left.
    """

    async def ask(server: Server) -> pb.ListMethodsResponse | grpc.RpcError:
        try:
            return await server.client.list_methods(timeout=deadline)
        except grpc.RpcError as error:
            return error

    answers = await asyncio.gather(*(ask(s) for s in servers))
    alive: list[Server] = []
    for server, answer in zip(servers, answers, strict=True):
        if isinstance(answer, pb.ListMethodsResponse):
            if check is not None:
                check(answer)
            alive.append(server)
            continue
        code, _ = rpc_status(answer)
        message = rpc_failure(f"ListMethods on {server.address}", answer)
        if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
            if on_unreachable is not None:
                on_unreachable(server, message)
            continue
        raise FatalRunError(message, code)
    if not alive:
        raise FatalRunError("no server is reachable", grpc.StatusCode.UNAVAILABLE)
    return alive


def failure(result: pb.FeatureResult) -> pb.FeatureError | None:
    """Why ``result`` failed: its error, else its first failed scorer's (named in the
    message); None when the feature and every scorer succeeded."""
    if result.HasField("error"):
        return result.error
    for outcome in result.scores:
        if outcome.HasField("error"):
            message = f"scorer {outcome.method!r}: {outcome.error.message}"
            return pb.FeatureError(code=outcome.error.code, message=message)
    return None


def retryable(result: pb.FeatureResult) -> bool:
    """Whether another try may fix ``result``: its error, or one of its scorers', is
    transient (:data:`RETRYABLE_CODES`)."""
    if result.HasField("error"):
        return result.error.code in RETRYABLE_CODES
    return any(
        outcome.HasField("error") and outcome.error.code in RETRYABLE_CODES
        for outcome in result.scores
    )


def local_error(feature: pb.Feature) -> pb.FeatureResult | None:
    """A failed result for a feature the server would reject together with its whole batch
    (e.g. an empty record); None for a feature worth sending."""
    from autointerp_grpc.errors import InvalidArgument
    from autointerp_grpc.validation import check_required

    try:
        check_required(feature)
    except InvalidArgument as exc:
        return pb.FeatureResult(
            id=feature.id, error=pb.FeatureError(code="INVALID_ARGUMENT", message=exc.message)
        )
    return None


class BulkRunner:
    """Runs jobs as ExplainAndScore streams of ``batch_size`` features, ``streams`` at a time.

    Each stream goes to the server with the fewest open streams (skipping, for a growing
    while, one whose last stream failed). A result with a retryable error (its own or a
    scorer's, :func:`retryable`), or every unfinished feature of a failed stream, is
    re-submitted later up to ``retries`` times; after that its result is final. Final
    results go to ``on_result`` as they arrive; each result's usage to ``on_usage`` (retried
    ones too: their calls were made); each re-submission to ``on_retry``. A stream that sends
    no event for ``idle_timeout`` seconds (None: no limit) is given up as a failed one.
    A batch-mode stream's round report (``llm.batch``) goes to ``on_batch``.
    """

    def __init__(
        self,
        servers: list[Server],
        template: pb.ExplainAndScoreRequest,
        jobs: Iterable[Job],
        *,
        batch_size: int,
        streams: int,
        retries: int,
        stream_timeout: float | None,
        on_result: Callable[[pb.FeatureResult], None],
        idle_timeout: float | None = None,
        on_usage: Callable[[pb.Usage], None] | None = None,
        on_retry: Callable[[Job, pb.FeatureResult], None] | None = None,
        on_batch: Callable[[pb.BatchRound], None] | None = None,
    ) -> None:
        self.servers = servers
        self.template = template
        self.pending: collections.deque[Job] = collections.deque(jobs)
        self.batch_size = batch_size
        self.streams = streams
        self.retries = retries
        self.stream_timeout = stream_timeout
        self.idle_timeout = idle_timeout
        self.on_result = on_result
        self.on_usage = on_usage
        self.on_retry = on_retry
        self.on_batch = on_batch
        self.in_flight = 0
        self.fatal: FatalRunError | None = None
        self._changed = asyncio.Condition()
        self._stopped = asyncio.Event()
        self._turn = 0

    async def run(self) -> None:
        """Run every job; raises FatalRunError when the run had to stop (the streams still
        open are cancelled then; their unfinished features are left for a resumed run)."""
        workers = asyncio.gather(*(self._worker() for _ in range(self.streams)))
        stopped = asyncio.ensure_future(self._stopped.wait())
        try:
            await asyncio.wait((workers, stopped), return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()
            if not workers.done():
                workers.cancel()
            await asyncio.gather(workers, stopped, return_exceptions=True)
        if self.fatal is not None:
            raise self.fatal
        workers.result()  # re-raises a worker's unexpected exception

    def stop(self, error: FatalRunError) -> None:
        """End the run with ``error`` (a budget reached, say): no new batch starts and the
        open streams are cancelled; their unfinished features are left for a resumed run."""
        if self.fatal is None:
            self.fatal = error
            self._stopped.set()

    async def _worker(self) -> None:
        while True:
            async with self._changed:
                await self._changed.wait_for(
                    lambda: self.fatal is not None or self.pending or self.in_flight == 0
                )
                if self.fatal is not None or not self.pending:
                    return
                batch = [
                    self.pending.popleft() for _ in range(min(self.batch_size, len(self.pending)))
                ]
                self.in_flight += len(batch)
            try:
                server = await self._pick_server()
                await self._run_batch(server, batch)
            finally:
                async with self._changed:
                    self.in_flight -= len(batch)
                    self._changed.notify_all()

    async def _pick_server(self) -> Server:
        while True:
            now = time.monotonic()
            ready = [s for s in self.servers if s.cooldown_until <= now]
            if ready:
                self._turn += 1
                order = ready[self._turn % len(ready) :] + ready[: self._turn % len(ready)]
                return min(order, key=lambda s: s.streams)
            await asyncio.sleep(min(s.cooldown_until for s in self.servers) - now)

    def _requeue(self, job: Job, result: pb.FeatureResult) -> None:
        """Re-submit ``job`` if its error is retryable and it has retries left, else finish."""
        if retryable(result) and job.retries < self.retries:
            job.retries += 1
            self.pending.append(job)
            if self.on_retry is not None:
                self.on_retry(job, result)
        else:
            self.on_result(result)

    async def _run_batch(self, server: Server, batch: list[Job]) -> None:
        request = pb.ExplainAndScoreRequest()
        request.CopyFrom(self.template)
        request.features.extend(job.feature for job in batch)
        by_id = {job.feature.id: job for job in batch}
        request_id = uuid.uuid4().hex
        server.streams += 1
        try:
            stream = server.client.explain_and_score(
                request, timeout=self.stream_timeout, request_id=request_id
            )
            events = aiter(stream)
            try:
                while True:
                    try:
                        async with asyncio.timeout(self.idle_timeout):
                            event = await anext(events)
                    except StopAsyncIteration:
                        break
                    if event.HasField("batch") and self.on_batch is not None:
                        self.on_batch(event.batch)
                    if not event.HasField("result"):
                        continue
                    job = by_id.pop(event.result.id, None)
                    if job is None:
                        continue  # not one of ours, or a repeat: ignore
                    if self.on_usage is not None:
                        self.on_usage(event.result.usage)
                    async with self._changed:
                        self._requeue(job, event.result)
                        self._changed.notify_all()
            finally:
                stream.cancel()
        except grpc.RpcError as error:
            await self._stream_failed(server, batch, by_id, error, request_id)
        except TimeoutError:
            # Silent for idle_timeout: a server stuck on it (a worker that died, a hung
            # connection). Given up like a failed stream; its features go back.
            await self._server_failed(
                server,
                by_id.values(),
                "DEADLINE_EXCEEDED",
                f"the stream to {server.address} sent nothing for {self.idle_timeout:g} s "
                f"(request id {request_id})",
            )
        else:
            server.failures = 0
            if by_id:  # the stream ended without some results
                await self._give_back(
                    by_id.values(), "UNKNOWN", "the stream ended without a result for it"
                )
        finally:
            server.streams -= 1

    async def _stream_failed(
        self,
        server: Server,
        batch: list[Job],
        unfinished: dict[str, Job],
        error: grpc.RpcError,
        request_id: str,
    ) -> None:
        code, details = rpc_status(error)
        if code == grpc.StatusCode.INVALID_ARGUMENT and len(unfinished) == len(batch):
            # The server may reject a whole request over one feature ("features[3].…"): fail
            # that feature, and send the others again (no retry used up).
            match = _FEATURE_PATH_RE.match(details)
            index = int(match.group(1)) if match else -1
            if match and 0 <= index < len(batch):
                bad = unfinished.pop(batch[index].feature.id)
                async with self._changed:
                    self.on_result(
                        pb.FeatureResult(
                            id=bad.feature.id,
                            error=pb.FeatureError(
                                code=code.name, message=details[match.end() :] or details
                            ),
                        )
                    )
                    self.pending.extendleft(reversed(list(unfinished.values())))
                    self._changed.notify_all()
                return
        if code in FATAL_CODES:
            async with self._changed:
                if self.fatal is None:
                    message = rpc_failure(f"ExplainAndScore on {server.address}", error)
                    self.fatal = FatalRunError(f"{message} (request id {request_id})", code)
                    self._stopped.set()
                self.pending.extendleft(reversed(list(unfinished.values())))
                self._changed.notify_all()
            return
        await self._server_failed(
            server,
            unfinished.values(),
            code.name,
            f"the stream to {server.address} failed: {details}",
        )

    async def _server_failed(
        self, server: Server, unfinished: Iterable[Job], code: str, message: str
    ) -> None:
        """Rest ``server`` for a growing while, and give ``unfinished`` back."""
        server.failures += 1
        cooldown = min(MAX_COOLDOWN_S, 0.5 * 2 ** (server.failures - 1))
        server.cooldown_until = time.monotonic() + cooldown
        await self._give_back(unfinished, code, message)

    async def _give_back(self, jobs: Iterable[Job], code: str, message: str) -> None:
        async with self._changed:
            for job in list(jobs):
                error = pb.FeatureError(code=code, message=message)
                self._requeue(job, pb.FeatureResult(id=job.feature.id, error=error))
            self._changed.notify_all()
