"""The REST door's ASGI app (Starlette): its routes, middleware and error handlers.

:func:`rest_app` builds it over a runtime it finds in ``app.state.runtime`` when a request
comes (the process lifecycle, and with it the runtime, is :mod:`autointerp_grpc.runtime`'s):
the RPC routes, ``/health`` (200 SERVING / 503 NOT_SERVING, as ``grpc.health.v1`` says),
``/metrics``, ``/openapi.json`` and ``/docs``.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Lifespan

from autointerp_grpc.config import Settings
from autointerp_grpc.observability import Metrics
from autointerp_grpc.rest.docs import docs_routes
from autointerp_grpc.rest.errors import http_exception_handler, unhandled_exception_handler
from autointerp_grpc.rest.middleware import RequestIdMiddleware
from autointerp_grpc.rest.openapi import build_openapi
from autointerp_grpc.rest.routes import rpc_routes
from autointerp_grpc.service import AutoInterpService


class Served(Protocol):
    """What the REST door reads from the runtime it serves
    (:class:`autointerp_grpc.runtime.Runtime`)."""

    settings: Settings
    service: AutoInterpService
    metrics: Metrics
    ready: asyncio.Event
    """Set while the service is SERVING."""


def _served(request: Request) -> Served:
    return request.app.state.runtime


async def health_endpoint(request: Request) -> JSONResponse:
    """``GET /health``: 200 while SERVING, else 503."""
    ok = _served(request).ready.is_set()
    return JSONResponse(
        {"status": "SERVING" if ok else "NOT_SERVING"}, status_code=200 if ok else 503
    )


async def metrics_endpoint(request: Request) -> Response:
    """``GET /metrics``: the Prometheus text format."""
    body, content_type = _served(request).metrics.render()
    return Response(body, media_type=content_type)


def rest_app(
    *, served: Served | None = None, lifespan: Lifespan[Starlette] | None = None
) -> Starlette:
    """The REST door's app over ``served``, or over the runtime that ``lifespan`` puts in
    ``app.state.runtime`` when the app starts."""
    openapi_document = build_openapi()

    async def openapi_endpoint(request: Request) -> JSONResponse:
        return JSONResponse(openapi_document)

    app: Starlette

    def get_service() -> AutoInterpService:
        return app.state.runtime.service

    def get_settings() -> Settings:
        return app.state.runtime.settings

    app = Starlette(
        routes=[
            *rpc_routes(get_service, get_settings),
            Route("/health", health_endpoint, methods=["GET"]),
            Route("/metrics", metrics_endpoint, methods=["GET"]),
            Route("/openapi.json", openapi_endpoint, methods=["GET"]),
            *docs_routes(),
        ],
        middleware=[Middleware(RequestIdMiddleware)],
        exception_handlers={
            HTTPException: http_exception_handler,
            Exception: unhandled_exception_handler,
        },
        lifespan=lifespan,
    )
    if served is not None:
        app.state.runtime = served  # also without a lifespan (httpx.ASGITransport runs none)
    return app
