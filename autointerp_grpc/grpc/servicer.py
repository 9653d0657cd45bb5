"""The gRPC door: a thin grpc.aio handler over :class:`AutoInterpService`.

Every RPC of the proto's service gets the same behaviour: send the request id back in the
initial metadata, hand the service the secret from the metadata and a reader that parses the
request bytes, and abort with the status of whatever error comes back
(:func:`~autointerp_grpc.errors.as_wire_error`).

* Requests are parsed by the reader rather than by grpc, after admission: a message grpc
  cannot deserialize (a string field with invalid UTF-8, truncated bytes) would otherwise
  come back as a bare INTERNAL / UNKNOWN; here it is INVALID_ARGUMENT with a reason.
* A client's deadline or cancellation cancels the handler task, and with it the in-flight
  upstream LLM calls. The deadline is also handed to the service, so that a scorer cuts its
  upstream calls just before it and returns what was answered by then (coverage).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import grpc
from google.protobuf.message import DecodeError, Message

from autointerp_grpc.errors import InvalidArgument, as_wire_error
from autointerp_grpc.service import (
    REQUEST_ID_HEADER,
    SECRET_HEADER,
    SERVICE,
    AutoInterpService,
    Method,
    Reader,
    request_id_from,
)


def _proto_reader(raw: bytes) -> Reader:
    async def read(request_cls: type[Message]) -> Message:
        try:
            return request_cls.FromString(raw)
        except DecodeError:
            raise InvalidArgument(
                f"The request is not a valid {request_cls.DESCRIPTOR.full_name} message "
                "(e.g. a string field holds invalid UTF-8)"
            ) from None

    return read


async def _begin(context: grpc.aio.ServicerContext) -> tuple[list[str | bytes], str]:
    """(every presented secret value, request id); the request id goes back in the initial
    metadata."""
    metadata = list(context.invocation_metadata() or ())
    request_id = request_id_from(next((v for k, v in metadata if k == REQUEST_ID_HEADER), None))
    await context.send_initial_metadata(((REQUEST_ID_HEADER, request_id),))
    return [v for k, v in metadata if k == SECRET_HEADER], request_id


async def _abort(
    context: grpc.aio.ServicerContext, exc: Exception, request_id: str, method: Method
) -> None:
    error = as_wire_error(exc, request_id, method.name)
    await context.abort(error.grpc_code, error.message)


def _unary(
    service: AutoInterpService, method: Method
) -> Callable[[bytes, grpc.aio.ServicerContext], Awaitable[Message]]:
    async def rpc(raw: bytes, context: grpc.aio.ServicerContext) -> Message:
        secret, request_id = await _begin(context)
        try:
            return await service.call(
                method.name,
                secret,
                request_id,
                _proto_reader(raw),
                time_remaining=context.time_remaining(),
            )
        except Exception as exc:
            await _abort(context, exc, request_id, method)
        raise AssertionError("unreachable: context.abort raises")  # pragma: no cover

    rpc.__name__ = method.name
    return rpc


def _streaming(
    service: AutoInterpService, method: Method
) -> Callable[[bytes, grpc.aio.ServicerContext], AsyncIterator[Message]]:
    async def rpc(raw: bytes, context: grpc.aio.ServicerContext) -> AsyncIterator[Message]:
        secret, request_id = await _begin(context)
        try:
            async for message in service.call_stream(
                method.name, secret, request_id, _proto_reader(raw)
            ):
                yield message
        except Exception as exc:
            await _abort(context, exc, request_id, method)

    rpc.__name__ = method.name
    return rpc


def rpc_handler(service: AutoInterpService) -> grpc.GenericRpcHandler:
    """The grpc handler for every RPC of the proto's service (so adding an RPC needs no edit
    here). Requests arrive as bytes and are parsed by the handler itself."""
    handlers = {}
    for method in service.methods.values():
        make = (
            grpc.unary_stream_rpc_method_handler
            if method.streaming
            else (grpc.unary_unary_rpc_method_handler)
        )
        rpc = _streaming(service, method) if method.streaming else _unary(service, method)
        handlers[method.name] = make(
            rpc,  # type: ignore[arg-type]
            request_deserializer=None,
            response_serializer=method.response_cls.SerializeToString,
        )
    return grpc.method_handlers_generic_handler(SERVICE.full_name, handlers)
