"""Process wiring: the gRPC server and the REST gateway in one event loop.

:func:`create_app` returns the ASGI app (Starlette). Its lifespan reads the settings (unless
given), starts :class:`Runtime` — the grpc.aio server with reflection and health checking,
the LLM connection pool, and a background load of the embedding model — and stops it on
shutdown. So both ``uvicorn server:app`` and ``python server.py`` serve both doors.

Health: ``grpc.health.v1`` reports NOT_SERVING until the embedding model is loaded and warmed
up, then SERVING; on shutdown NOT_SERVING again before the servers stop. ``GET /health``
mirrors it (200 / 503).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from autointerp_grpc import redaction
from autointerp_grpc.backends.embedding import EmbeddingBackend
from autointerp_grpc.backends.llm import LLMBackend
from autointerp_grpc.config import Settings
from autointerp_grpc.gateway import rpc_routes
from autointerp_grpc.handlers import Deps
from autointerp_grpc.observability import JsonFormatter, Metrics
from autointerp_grpc.openapi import build_openapi
from autointerp_grpc.redaction import Secrets
from autointerp_grpc.service import SERVICE, Authenticator, AutoInterpService
from autointerp_grpc.servicer import rpc_handler
from autointerp_grpc.validation import Limits

log = logging.getLogger(__name__)

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class Runtime:
    """Everything the process holds while it serves."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.started_at = time.monotonic()
        self.metrics = Metrics()
        self.llm = LLMBackend(settings, self.metrics)
        secret = settings.secret.get_secret_value() if settings.secret else None
        self.secrets = Secrets()
        if secret:
            self.secrets.add(secret)
        self.deps = Deps(
            llm=self.llm,
            limits=Limits(
                max_records=settings.max_records,
                max_tokens_per_record=settings.max_tokens_per_record,
            ),
            request_concurrency=settings.llm_request_concurrency,
        )
        self.service = AutoInterpService(
            self.deps,
            Authenticator(secret),
            max_in_flight=settings.max_in_flight,
            request_timeout_s=settings.request_timeout_s,
            secrets=self.secrets,
            metrics=self.metrics,
        )
        self.health = health.HealthServicer(experimental_non_blocking=True)
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
        server = grpc.aio.server(
            options=[
                # Larger messages are refused by grpc itself with RESOURCE_EXHAUSTED.
                ("grpc.max_receive_message_length", self.settings.max_request_bytes),
                ("grpc.max_send_message_length", 64 * 1024 * 1024),
                # Clients reconnect (and re-resolve DNS) every few minutes, so replicas added by
                # an autoscaler get traffic; RPCs in flight on an old connection are not cut.
                ("grpc.max_connection_age_ms", 5 * 60 * 1000),
            ]
        )
        server.add_generic_rpc_handlers((rpc_handler(self.service),))
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        reflection.enable_server_reflection(
            (SERVICE.full_name, health.SERVICE_NAME, reflection.SERVICE_NAME), server
        )
        address = f"{self.settings.host}:{self.settings.grpc_port}"
        self.grpc_port = server.add_insecure_port(address)
        await server.start()
        self.grpc_server = server
        log.info("gRPC server listening on %s:%d", self.settings.host, self.grpc_port)
        self._model_task = asyncio.create_task(self._load_embedding_model())

    async def _load_embedding_model(self) -> None:
        try:
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

    async def stop(self) -> None:
        """Graceful stop: refuse new requests (health NOT_SERVING), let the in-flight ones
        finish within the grace period, then stop the gRPC server."""
        self.begin_shutdown()
        if self._model_task is not None and not self._model_task.done():
            self._model_task.cancel()
        # One grace period from the signal on, shared with uvicorn's own wait for HTTP
        # requests: the whole stop fits in it.
        started = self._shutdown_started or time.monotonic()
        deadline = started + self.settings.shutdown_grace_s
        # The gRPC server keeps running meanwhile, so health checks see NOT_SERVING and new
        # calls get UNAVAILABLE from the service rather than a closed port.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.service.idle.wait(), max(0.0, deadline - time.monotonic()))
        if self.grpc_server is not None:
            await self.grpc_server.stop(max(0.0, deadline - time.monotonic()))
        await self.llm.aclose()
        if self.deps.embedding is not None:
            await self.deps.embedding.close()
        log.info("stopped")


def configure_logging(level: str, log_format: str = "text") -> None:
    """Root logging: text lines, or one JSON object per line; uvicorn's own handlers get the
    same formatter so every line of the process has one shape."""
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if log_format == "json":
        formatter = JsonFormatter()
        for name in ("", "uvicorn", "uvicorn.error", "uvicorn.access"):
            for handler in logging.getLogger(name).handlers:
                handler.setFormatter(formatter)
    # sentence-transformers draws a progress bar per encode() at INFO; keep the log readable.
    logging.getLogger("sentence_transformers").setLevel(logging.WARNING)


def create_app(settings: Settings | None = None) -> Starlette:
    """The ASGI app serving the REST door; its lifespan runs the gRPC door too.

    With no ``settings`` they are read from the environment when the app starts, not before.
    """

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        effective = settings if settings is not None else Settings.from_env()
        configure_logging(effective.log_level, effective.log_format)
        runtime = Runtime(effective)
        redaction.install(runtime.secrets)
        await runtime.start()
        app.state.runtime = runtime
        try:
            yield
        finally:
            await runtime.stop()

    app: Starlette

    def get_service() -> AutoInterpService:
        return app.state.runtime.service

    async def health_endpoint(request: Request) -> JSONResponse:
        runtime: Runtime = request.app.state.runtime
        ok = runtime.ready.is_set()
        return JSONResponse(
            {"status": "SERVING" if ok else "NOT_SERVING"}, status_code=200 if ok else 503
        )

    async def metrics_endpoint(request: Request) -> Response:
        body, content_type = request.app.state.runtime.metrics.render()
        return Response(body, media_type=content_type)

    openapi_document = build_openapi()

    async def openapi_endpoint(request: Request) -> JSONResponse:
        return JSONResponse(openapi_document)

    app = Starlette(
        routes=[
            *rpc_routes(get_service, lambda: app.state.runtime.settings.max_request_bytes),
            Route("/health", health_endpoint, methods=["GET"]),
            Route("/metrics", metrics_endpoint, methods=["GET"]),
            Route("/openapi.json", openapi_endpoint, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
    return app
