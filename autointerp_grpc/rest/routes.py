"""The REST door's RPC routes, derived from the proto's ``google.api.http`` options.

For every RPC of the service this reads its HTTP rule (verb, path, body) from the method
descriptor and mounts a route that parses the JSON body into the request message, calls
:class:`~autointerp_grpc.service.AutoInterpService` in-process (no second network hop), and
prints the response message with the proto3 JSON mapping (:mod:`~autointerp_grpc.rest.jsonmap`).
Errors come back as :mod:`~autointerp_grpc.rest.errors` writes them: ``{"detail": ..., "code":
...}`` with the HTTP status of their gRPC code. Adding an RPC to the proto adds its route here
and its entry in ``/openapi.json``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from google.api import annotations_pb2, http_pb2
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.message import Message
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from autointerp_grpc.config import Settings
from autointerp_grpc.errors import AutoInterpError, RequestTimeout, RequestTooLarge, as_wire_error
from autointerp_grpc.offload import bytes_as_items, off_loop
from autointerp_grpc.rest.errors import error_body, error_response
from autointerp_grpc.rest.jsonmap import parse_json_body, parse_query, to_json_bytes
from autointerp_grpc.service import (
    REQUEST_ID_HEADER,
    SECRET_HEADER,
    SERVICE,
    AutoInterpService,
    Reader,
    request_id_from,
)

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
    # googleapis-common-protos' .pyi types the extension as a plain FieldDescriptor; typeshed's
    # HasExtension/Extensions[...] want its generic _ExtensionFieldDescriptor. The call is right.
    if not options.HasExtension(annotations_pb2.http):  # pyright: ignore[reportArgumentType]
        return None
    rule: http_pb2.HttpRule = options.Extensions[annotations_pb2.http]  # pyright: ignore[reportArgumentType]
    verb = rule.WhichOneof("pattern")
    if verb not in _VERBS:
        raise ValueError(f"{method.full_name}: unsupported HTTP rule pattern {verb!r}")
    if rule.body not in ("*", ""):
        raise ValueError(f'{method.full_name}: only body "*" or no body is supported')
    return HttpBinding(method=method, verb=verb, path=getattr(rule, verb), body=rule.body)


def http_bindings() -> list[HttpBinding]:
    """Every RPC of the service that has an HTTP rule, in proto order."""
    return [b for m in SERVICE.methods if (b := http_binding(m)) is not None]


async def read_body(request: Request, limit: int, timeout_s: float) -> bytes:
    """The request body, refused (413) as soon as it is known to exceed ``limit`` bytes, and
    (408) when it has not all arrived within ``timeout_s``."""
    declared = request.headers.get("content-length", "")
    too_large = RequestTooLarge(f"The request body is larger than the limit of {limit} bytes")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks, size = [], 0
    try:
        async with asyncio.timeout(timeout_s):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise too_large
                chunks.append(chunk)
    except TimeoutError:
        raise RequestTimeout(
            f"The request body did not arrive within {timeout_s:g} s; send it at once"
        ) from None
    return b"".join(chunks)


def _reader(
    request: Request, binding: HttpBinding, settings: Settings, done: asyncio.Event
) -> Reader:
    """Reads the request message once the call is admitted: the JSON body (within the size
    and time limits), or for a route without a body the query string. Sets ``done`` when the
    body has been read, whatever the outcome."""

    async def read(request_cls: type[Message]) -> Message:
        try:
            if binding.body != "*":
                return parse_query(dict(request.query_params), request_cls)
            body = await read_body(
                request, settings.limits.max_request_bytes, settings.http.head_timeout_s
            )
        finally:
            done.set()
        # A big body is parsed on the service's worker pool, so the event loop (health checks,
        # other requests) keeps running while it is converted.
        return await off_loop(bytes_as_items(len(body)), parse_json_body, body, request_cls)

    return read


async def _client_gone(request: Request, body_read: asyncio.Event) -> None:
    """Returns when the client disconnects; listens only once the body has been read, so it
    never takes the body's own messages."""
    await body_read.wait()
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def _unless_disconnected(
    request: Request, body_read: asyncio.Event, work: Awaitable[Message]
) -> Message | None:
    """``work``'s result, or None when the client left first; then the work (and with it
    every upstream LLM call it has in flight) is cancelled. So is it when this coroutine is
    cancelled itself (the server stopping the request's task): the work never outlives it."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_client_gone(request, body_read))
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    except BaseException:
        task.cancel()
        raise
    finally:
        watcher.cancel()
    if task.done():
        return task.result()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, AutoInterpError):
        await task
    return None


def _json_line(message: Message) -> bytes:
    return to_json_bytes(message) + b"\n"


def _error_line(error: AutoInterpError) -> bytes:
    return _json_line(error_body(error))


async def _ndjson_stream(
    stream: AsyncGenerator[Message, None], request_id: str, name: str
) -> Response:
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
        except Exception as exc:
            yield _error_line(as_wire_error(exc, request_id, name))
        finally:
            await stream.aclose()

    return StreamingResponse(
        body(), media_type="application/x-ndjson", headers={REQUEST_ID_HEADER: request_id}
    )


def _endpoint(
    binding: HttpBinding,
    get_service: Callable[[], AutoInterpService],
    get_settings: Callable[[], Settings],
) -> Callable[[Request], Awaitable[Response]]:
    name = binding.method.name
    streaming = binding.method.server_streaming

    async def endpoint(request: Request) -> Response:
        request_id = request_id_from(request.headers.get(REQUEST_ID_HEADER))
        service = get_service()
        secret = request.headers.getlist(SECRET_HEADER)
        body_read = asyncio.Event()
        read = _reader(request, binding, get_settings(), body_read)
        try:
            if streaming:
                stream = service.call_stream(name, secret, request_id, read)
                return await _ndjson_stream(stream, request_id, name)
            call = service.call(name, secret, request_id, read)
            response = await _unless_disconnected(request, body_read, call)
        except Exception as exc:
            return error_response(as_wire_error(exc, request_id, name), request_id)
        if response is None:
            # The client disconnected (the service logged the request as CANCELLED); nobody
            # reads this. 499 is the conventional "client closed request" in access logs.
            return Response(status_code=499)
        # A scorer's breakdown repeats the request's records: print big ones off the loop.
        body = await off_loop(bytes_as_items(response.ByteSize()), to_json_bytes, response)
        return Response(
            body, media_type="application/json", headers={REQUEST_ID_HEADER: request_id}
        )

    endpoint.__name__ = name
    return endpoint


def rpc_routes(
    get_service: Callable[[], AutoInterpService], get_settings: Callable[[], Settings]
) -> list[BaseRoute]:
    """One Starlette route per RPC with an HTTP rule."""
    return [
        Route(b.path, _endpoint(b, get_service, get_settings), methods=[b.verb.upper()])
        for b in http_bindings()
    ]
