"""The gRPC door: a thin grpc.aio handler over :class:`AutoInterpService`.

Every RPC of the proto's service gets the same behaviour: parse the request bytes, read the
secret and request id from the metadata, call the service, and map a typed error to its status.

* Requests are parsed here rather than by grpc: a message grpc cannot deserialize (a string
  field with invalid UTF-8, truncated bytes) would otherwise come back as a bare INTERNAL /
  UNKNOWN; here it is INVALID_ARGUMENT with a reason.
* Any exception that is not one of ours is logged with the request id and answered with a
  generic INTERNAL status: grpc.aio would otherwise send ``str(exception)`` to the caller, and
  an upstream error's text may carry a key.
* A client's deadline or cancellation cancels the handler task, and with it the in-flight
  upstream LLM calls.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import grpc
from google.protobuf.message import DecodeError, Message

from autointerp_grpc.errors import AutoInterpError
from autointerp_grpc.service import SECRET_HEADER, SERVICE, AutoInterpService, Method

log = logging.getLogger(__name__)

REQUEST_ID_HEADER = "x-request-id"


def request_id_from(metadata: dict[str, str | bytes]) -> str:
    """The caller's x-request-id if it sent a sane one, else a fresh id."""
    given = metadata.get(REQUEST_ID_HEADER)
    if isinstance(given, str) and 0 < len(given) <= 128 and given.isprintable():
        return given
    return uuid.uuid4().hex


def internal_error_message(request_id: str) -> str:
    return f"Internal error; the server log has the details under request id {request_id}"


async def _prologue(
    service: AutoInterpService, method: Method, raw: bytes, context: grpc.aio.ServicerContext
) -> tuple[Message, dict[str, str | bytes], str]:
    """Request id out, request parsed: (request, metadata, request id)."""
    metadata = dict(context.invocation_metadata() or ())
    request_id = request_id_from(metadata)
    await context.send_initial_metadata(((REQUEST_ID_HEADER, request_id),))
    try:
        request = method.request_cls.FromString(raw)
    except DecodeError:
        detail = (
            f"The request is not a valid {method.descriptor.input_type.full_name} message "
            "(e.g. a string field holds invalid UTF-8)"
        )
        service.record(method.name, "INVALID_ARGUMENT", 0.0, request_id, detail=detail)
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, detail)
    return request, metadata, request_id


async def _fail(
    method: Method, exc: BaseException, context: grpc.aio.ServicerContext, request_id: str
) -> None:
    """Abort the call with the status ``exc`` maps to (always raises)."""
    if isinstance(exc, AutoInterpError):  # the service has logged it
        await context.abort(exc.grpc_code, exc.message)
    log.error("%s failed unexpectedly [request id %s]", method.name, request_id, exc_info=exc)
    await context.abort(grpc.StatusCode.INTERNAL, internal_error_message(request_id))


def _unary(
    service: AutoInterpService, method: Method
) -> Callable[[bytes, grpc.aio.ServicerContext], Awaitable[Message]]:
    async def rpc(raw: bytes, context: grpc.aio.ServicerContext) -> Message:
        request, metadata, request_id = await _prologue(service, method, raw, context)
        try:
            return await service.call(method.name, request, metadata.get(SECRET_HEADER), request_id)
        except Exception as exc:
            await _fail(method, exc, context, request_id)
        raise AssertionError("unreachable: context.abort raises")  # pragma: no cover

    rpc.__name__ = method.name
    return rpc


def _streaming(
    service: AutoInterpService, method: Method
) -> Callable[[bytes, grpc.aio.ServicerContext], AsyncIterator[Message]]:
    async def rpc(raw: bytes, context: grpc.aio.ServicerContext) -> AsyncIterator[Message]:
        request, metadata, request_id = await _prologue(service, method, raw, context)
        try:
            async for message in service.call_stream(
                method.name, request, metadata.get(SECRET_HEADER), request_id
            ):
                yield message
        except Exception as exc:
            await _fail(method, exc, context, request_id)

    rpc.__name__ = method.name
    return rpc


def rpc_handler(service: AutoInterpService) -> grpc.GenericRpcHandler:
    """The grpc handler for every RPC of the proto's service (so adding an RPC needs no edit
    here). Requests arrive as bytes and are parsed by the handler itself."""
    handlers = {}
    for method in service.methods.values():
        if method.streaming:
            handlers[method.name] = grpc.unary_stream_rpc_method_handler(
                _streaming(service, method),
                request_deserializer=None,
                response_serializer=method.response_cls.SerializeToString,
            )
        else:
            handlers[method.name] = grpc.unary_unary_rpc_method_handler(
                _unary(service, method),
                request_deserializer=None,
                response_serializer=method.response_cls.SerializeToString,
            )
    return grpc.method_handlers_generic_handler(SERVICE.full_name, handlers)
