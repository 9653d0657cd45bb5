"""The REST door's ASGI middleware."""

from __future__ import annotations

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from autointerp_grpc.service import REQUEST_ID_HEADER, request_id_from


class RequestIdMiddleware:
    """Every HTTP response carries ``x-request-id``: the caller's (if sane) or a fresh one.

    The RPC routes and the error handlers set it themselves (they log under it); this adds it
    to the rest (``/health``, ``/metrics``, ``/openapi.json``, ``/docs``) and never twice.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                if REQUEST_ID_HEADER not in headers:
                    given = Headers(scope=scope).get(REQUEST_ID_HEADER)
                    headers.append(REQUEST_ID_HEADER, request_id_from(given))
            await send(message)

        await self.app(scope, receive, send_with_id)
