"""The process: the runtime both doors serve, its start and graceful stop, signals, logging.

:class:`Runtime` holds what the process serves with — the service, the LLM connection pool,
the embedding model (loaded in the background), health — and the gRPC door's server
(:mod:`autointerp_grpc.grpc`). :func:`serve` (``python server.py``) runs both doors on one
event loop and owns the signals; :func:`create_app` is the REST door's app
(:mod:`autointerp_grpc.rest`) with a lifespan that starts and stops a runtime, so
``uvicorn server:app`` serves both doors too.

Health: ``grpc.health.v1`` reports NOT_SERVING until the embedding model is loaded and warmed
up, then SERVING; on shutdown NOT_SERVING again before the servers stop. ``GET /health``
mirrors it (200 / 503).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import grpc
import uvicorn
from grpc_health.v1 import health_pb2
from starlette.applications import Starlette

from autointerp_grpc import redaction
from autointerp_grpc.backends.embedding import EmbeddingBackend
from autointerp_grpc.backends.llm import LLMBackend
from autointerp_grpc.config import Settings
from autointerp_grpc.grpc.health import HealthServicer
from autointerp_grpc.grpc.server import grpc_server
from autointerp_grpc.handlers import Deps
from autointerp_grpc.memory import set_mmap_threshold
from autointerp_grpc.observability import Metrics, configure_logging
from autointerp_grpc.redaction import Secrets
from autointerp_grpc.rest.app import rest_app
from autointerp_grpc.rest.http_protocol import guarded_protocol
from autointerp_grpc.service import SERVICE, Authenticator, AutoInterpService

log = logging.getLogger(__name__)


class StartupError(Exception):
    """The service cannot start (a port it must listen on is taken): one line, for the
    operator, in place of a traceback."""


SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class Runtime:
    """Everything the process holds while it serves.

    ``llm`` and ``embedding`` are built from the settings unless given (tests inject them:
    with an injected embedding backend the runtime is SERVING as soon as it starts).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        llm: LLMBackend | None = None,
        embedding: EmbeddingBackend | None = None,
    ) -> None:
        self.settings = settings
        self.started_at = time.monotonic()
        self.metrics = Metrics()
        self.llm = llm or LLMBackend(settings, self.metrics)
        secret = settings.secret.get_secret_value() if settings.secret else None
        self.secrets = Secrets()
        if secret:
            self.secrets.add(secret)
        self.deps = Deps(
            llm=self.llm,
            limits=settings.limits,
            request_concurrency=settings.llm.request_concurrency,
            feature_timeout_s=settings.request_timeout_s,
        )
        self._injected_embedding = embedding
        self.service = AutoInterpService(
            self.deps,
            Authenticator(secret),
            max_in_flight=settings.max_in_flight,
            request_timeout_s=settings.request_timeout_s,
            secrets=self.secrets,
            metrics=self.metrics,
        )
        self.health = HealthServicer(max_watchers=settings.grpc.max_health_watchers)
        self.grpc_server: grpc.aio.Server | None = None
        self.grpc_port: int | None = None
        self._model_task: asyncio.Task[None] | None = None
        self._shutdown_started: float | None = None
        self.ready = asyncio.Event()

    def _set_health(self, status: int) -> None:
        for name in ("", SERVICE.full_name):
            self.health.set(name, status)

    async def start(self) -> None:
        self._set_health(NOT_SERVING)
        server = grpc_server(self.settings, self.service, self.health)
        address = f"{self.settings.host}:{self.settings.grpc.port}"
        try:
            self.grpc_port = server.add_insecure_port(address)
        except RuntimeError:
            raise StartupError(
                f"cannot listen for gRPC on {address} (AUTOINTERP_HOST, AUTOINTERP_GRPC_PORT): "
                "the port is in use (another instance?) or the address is not this machine's"
            ) from None
        await server.start()
        self.grpc_server = server
        log.info("gRPC server listening on %s:%d", self.settings.host, self.grpc_port)
        self._model_task = asyncio.create_task(self._load_embedding_model())

    async def _load_embedding_model(self) -> None:
        try:
            backend = self._injected_embedding
            if backend is None:
                set_mmap_threshold(self.settings.malloc_mmap_threshold)
                backend = await asyncio.to_thread(EmbeddingBackend.load, self.settings)
                await backend.run(backend.warm_up)
        except Exception:
            # The process stays up but never reports SERVING, so orchestrators see it unhealthy.
            log.exception("loading the embedding model failed; health stays NOT_SERVING")
            return
        backend.metrics = self.metrics
        self.deps.embedding = backend
        self._set_health(SERVING)
        self.ready.set()
        log.info("SERVING %.1f s after start", time.monotonic() - self.started_at)

    def begin_shutdown(self) -> None:
        """First step of a graceful stop (on SIGTERM): health turns NOT_SERVING and new
        requests are refused, while in-flight ones carry on."""
        if not self.service.draining:
            log.info("shutting down: NOT_SERVING, refusing new requests")
            self._shutdown_started = time.monotonic()
        self.service.draining = True
        self.ready.clear()
        self._set_health(NOT_SERVING)

    @property
    def shutdown_deadline(self) -> float:
        """When the grace period ends (monotonic clock): one period from the signal on."""
        started = self._shutdown_started or time.monotonic()
        return started + self.settings.shutdown_grace_s

    def remaining_grace(self) -> float:
        return max(0.0, self.shutdown_deadline - time.monotonic())

    async def drain(self) -> None:
        """Wait, within the grace period, until no request is in flight."""
        self.begin_shutdown()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.service.idle.wait(), self.remaining_grace())

    async def stop(self) -> None:
        """Graceful stop: refuse new requests (health NOT_SERVING), let the in-flight ones
        finish within the grace period, then stop the gRPC server."""
        if self._model_task is not None and not self._model_task.done():
            self._model_task.cancel()
        # The gRPC server keeps running meanwhile, so health checks see NOT_SERVING and new
        # calls get UNAVAILABLE from the service rather than a closed port.
        await self.drain()
        self.health.close()
        if self.grpc_server is not None:
            # What is left once the service is idle are streams that never end on their own
            # (a reflection stream, say): no reason to wait for them. Otherwise the calls
            # still running get what remains of the grace period, then are cancelled.
            idle = self.service.idle.is_set()
            await self.grpc_server.stop(0 if idle else self.remaining_grace())
        await self.llm.aclose()
        if self.deps.embedding is not None:
            await self.deps.embedding.close()
        log.info("stopped")


class ExitWatchdog:
    """Ends the process a little after the grace period, whatever still holds it.

    A graceful stop is bounded by the grace period, but a thread the interpreter must join
    on exit (an executor's worker stuck in a library call, say) could still hold the process
    forever. Armed when a stop begins, the watchdog (a daemon thread) logs, flushes the log
    and exits with status 1 once ``grace + margin`` seconds have passed.
    """

    def __init__(self, margin_s: float = 2.0) -> None:
        self.margin_s = margin_s
        self._timer: threading.Timer | None = None

    def arm(self, grace_s: float) -> None:
        if self._timer is not None:
            return
        self._timer = threading.Timer(grace_s + self.margin_s, self._expire)
        self._timer.daemon = True
        self._timer.start()

    @staticmethod
    def _expire() -> None:
        log.error("the stop did not finish within the grace period; exiting now")
        logging.shutdown()
        os._exit(1)


def create_app(
    settings: Settings | None = None,
    *,
    runtime: Runtime | None = None,
    exit_watchdog: bool = False,
) -> Starlette:
    """The ASGI app serving the REST door.

    Given a ``runtime``, the app serves it and its owner starts and stops it (:func:`serve`,
    the test harness). Otherwise the app's lifespan builds one from ``settings`` (read from
    the environment when the app starts, if not given), starts it — the gRPC door too — and
    stops it, so ``uvicorn server:app`` serves both doors; ``exit_watchdog`` then bounds the
    process's exit (see :class:`ExitWatchdog`).
    """

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if runtime is not None:
            yield
            return
        effective = settings if settings is not None else Settings.from_env()
        configure_logging(effective.log_level, effective.log_format)
        owned = Runtime(effective)
        redaction.install(owned.secrets)
        try:
            await owned.start()
        except StartupError as exc:
            # One line rather than the ASGI server's "startup failed" traceback; nothing is
            # serving yet, so there is nothing to stop.
            print(f"autointerp: {exc}", file=sys.stderr, flush=True)
            logging.shutdown()
            os._exit(1)
        app.state.runtime = owned
        try:
            yield
        finally:
            if exit_watchdog:
                ExitWatchdog().arm(effective.shutdown_grace_s)
            await owned.stop()

    return rest_app(served=runtime, lifespan=lifespan)


def _rest_socket(settings: Settings) -> socket.socket:
    """The REST door's listening socket, bound here so that a taken port is a
    :class:`StartupError` (uvicorn's own bind logs and exits with a traceback)."""
    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    try:
        bound = socket.create_server((settings.host, settings.http.port), family=family)
    except OSError as exc:
        raise StartupError(
            f"cannot listen for REST on {settings.host}:{settings.http.port} (AUTOINTERP_HOST, "
            f"AUTOINTERP_HTTP_PORT): {exc.strerror or exc}"
        ) from None
    # create_server's socket says protocol 0, and so do the connections it accepts; asyncio
    # turns Nagle's algorithm off (TCP_NODELAY) only on sockets that say TCP, so without this
    # every keep-alive response waits ~40 ms for the client's delayed ACK.
    return socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP, fileno=bound.detach())


class _HttpServer(uvicorn.Server):
    """uvicorn's server without its own signal handling: :func:`serve` owns the signals and
    tells it when to stop (``should_exit``)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def serve(settings: Settings) -> None:
    """Run the service until SIGTERM or SIGINT, then stop gracefully within the grace period.

    gRPC always; the REST door beside it on the same event loop unless
    ``AUTOINTERP_HTTP_PORT`` is 0 (gRPC-only). On a signal: health turns NOT_SERVING and new
    requests on both doors are answered UNAVAILABLE / 503 while the in-flight ones finish
    (both listeners stay open meanwhile); then both servers stop. A second signal stops at
    once. The exit watchdog ends the process if anything still holds it after the grace.
    """
    configure_logging(settings.log_level, settings.log_format)
    # Both ports are taken before anything starts: a taken one ends the start at once.
    rest_socket = _rest_socket(settings) if settings.http.port else None
    runtime = Runtime(settings)
    redaction.install(runtime.secrets)
    await runtime.start()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    watchdog = ExitWatchdog()
    http: _HttpServer | None = None
    http_task: asyncio.Task[None] | None = None

    def on_signal(sig: signal.Signals) -> None:
        if stop.is_set():
            log.warning("second %s: stopping now", sig.name)
            runtime.service.idle.set()  # ends the drain wait
            if http is not None:
                http.force_exit = True
            return
        log.info("%s received", sig.name)
        runtime.begin_shutdown()
        watchdog.arm(settings.shutdown_grace_s)
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)
    if rest_socket is not None:
        config = uvicorn.Config(
            create_app(runtime=runtime),
            host=settings.host,
            port=settings.http.port,
            log_level=settings.log_level.lower(),
            log_config=None,  # the root logging configured above
            # h11 with bounded heads and a deadline for each (rest/http_protocol.py).
            http=guarded_protocol(settings.http.head_timeout_s, settings.limits.max_header_bytes),
            h11_max_incomplete_event_size=settings.limits.max_header_bytes,
        )
        http = _HttpServer(config)
        http_task = asyncio.create_task(http.serve(sockets=[rest_socket]))
    else:
        log.info("REST door off (AUTOINTERP_HTTP_PORT=0): gRPC only")
    try:
        waiters: set[asyncio.Future[Any]] = {asyncio.ensure_future(stop.wait())}
        if http_task is not None:
            waiters.add(http_task)  # a REST door that cannot bind ends the process
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        if http_task is not None and http_task.done() and not stop.is_set():
            http_task.result()
            raise RuntimeError("the REST server stopped on its own")
        await runtime.drain()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        # Calls still running at the end of the grace answer UNAVAILABLE / a JSON 503, not the
        # door's own error page; then the servers stop with nothing left to wait for.
        runtime.service.cut_off()
        if http is not None and http_task is not None and not http_task.done():
            http.config.timeout_graceful_shutdown = 1
            http.should_exit = True
            await http_task
        await runtime.stop()
