"""The REST door: routes derived from the proto's ``google.api.http`` options.

For every RPC of the service the gateway reads its HTTP rule (verb, path, body) from the
method descriptor and mounts a route that parses the JSON body into the request message,
calls :class:`~autointerp_grpc.service.AutoInterpService` in-process (no second network hop),
and prints the response message with the proto3 JSON mapping. Errors come back as the proto's
``ErrorResponse`` (``{"detail": ..., "code": ...}``) with the HTTP status of their gRPC code.
Adding an RPC to the proto adds its route here and its entry in ``/openapi.json``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from google.api import annotations_pb2, http_pb2
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.message import Message
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from autointerp_grpc.errors import AutoInterpError, RequestTooLarge
from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2 as pb
from autointerp_grpc.jsonmap import parse_json_body, parse_query, to_json_dict
from autointerp_grpc.service import SECRET_HEADER, SERVICE, AutoInterpService
from autointerp_grpc.servicer import REQUEST_ID_HEADER, internal_error_message, request_id_from

log = logging.getLogger(__name__)

_VERBS = ("get", "put", "post", "delete", "patch")


@dataclass(frozen=True)
class HttpBinding:
    """The REST route of one RPC, as its ``google.api.http`` option declares it."""

    method: MethodDescriptor
    verb: str
    path: str
    body: str


def http_binding(method: MethodDescriptor) -> HttpBinding | None:
    """The RPC's HTTP rule, or None when it has none."""
    options = method.GetOptions()
    if not options.HasExtension(annotations_pb2.http):
        return None
    rule: http_pb2.HttpRule = options.Extensions[annotations_pb2.http]
    verb = rule.WhichOneof("pattern")
    if verb not in _VERBS:
        raise ValueError(f"{method.full_name}: unsupported HTTP rule pattern {verb!r}")
    if rule.body not in ("*", ""):
        raise ValueError(f'{method.full_name}: only body "*" or no body is supported')
    return HttpBinding(method=method, verb=verb, path=getattr(rule, verb), body=rule.body)


def http_bindings() -> list[HttpBinding]:
    """Every RPC of the service that has an HTTP rule, in proto order."""
    return [b for m in SERVICE.methods if (b := http_binding(m)) is not None]


def error_response(error: AutoInterpError, request_id: str) -> JSONResponse:
    body = pb.ErrorResponse(detail=error.message, code=error.code_name)
    return JSONResponse(
        to_json_dict(body), status_code=error.http_status, headers={REQUEST_ID_HEADER: request_id}
    )


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused (413) as soon as it is known to exceed ``limit`` bytes."""
    declared = request.headers.get("content-length", "")
    too_large = RequestTooLarge(f"The request body is larger than the limit of {limit} bytes")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


async def _client_gone(request: Request) -> None:
    """Returns when the client disconnects (the body has been read by then)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def _unless_disconnected(request: Request, work: Awaitable[Message]) -> Message | None:
    """``work``'s result, or None when the client left first; then the work (and with it
    every upstream LLM call it has in flight) is cancelled."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_client_gone(request))
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
    if task.done():
        return task.result()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, AutoInterpError):
        await task
    return None


def _json_line(message: Message) -> bytes:
    return (
        json.dumps(to_json_dict(message), ensure_ascii=False, separators=(",", ":")).encode()
        + b"\n"
    )


async def _ndjson_stream(stream: AsyncIterator[Message], request_id: str) -> Response:
    """A server-streaming RPC as newline-delimited JSON, one message per line.

    The first message is awaited before the response starts, so errors found up front (bad
    input, auth) still get their HTTP status; a later error becomes a final ErrorResponse line.
    When the client disconnects, Starlette stops the body and the stream is closed, which
    cancels the work behind it.
    """
    try:
        first = await anext(stream)
    except StopAsyncIteration:
        first = None

    async def body() -> AsyncIterator[bytes]:
        try:
            if first is not None:
                yield _json_line(first)
            async for message in stream:
                yield _json_line(message)
        except AutoInterpError as exc:
            yield _json_line(pb.ErrorResponse(detail=exc.message, code=exc.code_name))
        except Exception:
            log.exception("stream failed unexpectedly [request id %s]", request_id)
            detail = internal_error_message(request_id)
            yield _json_line(pb.ErrorResponse(detail=detail, code="INTERNAL"))
        finally:
            await stream.aclose()

    return StreamingResponse(
        body(), media_type="application/x-ndjson", headers={REQUEST_ID_HEADER: request_id}
    )


def _endpoint(
    binding: HttpBinding,
    get_service: Callable[[], AutoInterpService],
    max_request_bytes: Callable[[], int],
) -> Callable[[Request], Awaitable[Response]]:
    name = binding.method.name

    async def endpoint(request: Request) -> Response:
        request_id = request_id_from(dict(request.headers))
        service = get_service()
        secret = request.headers.get(SECRET_HEADER)
        began = time.perf_counter()
        try:
            try:
                # Authenticate before looking at the body: a stranger learns nothing about it.
                service.authenticator.check(secret)
                request_cls = service.methods[name].request_cls
                if binding.body == "*":
                    body = await read_body(request, max_request_bytes())
                    message = parse_json_body(body, request_cls)
                else:
                    # No body: the request message's fields come from the query string.
                    message = parse_query(dict(request.query_params), request_cls)
            except AutoInterpError as exc:
                # Turned away before reaching the service, which accounts for everything else.
                elapsed = time.perf_counter() - began
                service.record(name, exc.code_name, elapsed, request_id, detail=exc.message)
                raise
            if service.methods[name].streaming:
                stream = service.call_stream(name, message, secret, request_id)
                return await _ndjson_stream(stream, request_id)
            call = service.call(name, message, secret, request_id)
            response = await _unless_disconnected(request, call)
        except AutoInterpError as exc:
            return error_response(exc, request_id)
        except Exception:
            log.exception("%s failed unexpectedly [request id %s]", name, request_id)
            body = pb.ErrorResponse(detail=internal_error_message(request_id), code="INTERNAL")
            return JSONResponse(
                to_json_dict(body), status_code=500, headers={REQUEST_ID_HEADER: request_id}
            )
        if response is None:
            # The client disconnected (the service logged the request as CANCELLED); nobody
            # reads this. 499 is the conventional "client closed request" in access logs.
            return Response(status_code=499)
        return JSONResponse(to_json_dict(response), headers={REQUEST_ID_HEADER: request_id})

    endpoint.__name__ = name
    return endpoint


def rpc_routes(
    get_service: Callable[[], AutoInterpService], max_request_bytes: Callable[[], int]
) -> list[BaseRoute]:
    """One Starlette route per RPC with an HTTP rule."""
    return [
        Route(b.path, _endpoint(b, get_service, max_request_bytes), methods=[b.verb.upper()])
        for b in http_bindings()
    ]
