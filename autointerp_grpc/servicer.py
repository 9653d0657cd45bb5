"""The gRPC door: a thin grpc.aio servicer over :class:`AutoInterpService`.

Every RPC of the proto's service gets the same method: read the secret and request id from
the metadata, call the service, and map a typed error to its status. Any other exception is
logged with the request id and answered with a generic INTERNAL status; grpc.aio would
otherwise send ``str(exception)`` to the caller, and an upstream error's text may carry a key.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable

import grpc
from google.protobuf.message import Message

from autointerp_grpc.errors import AutoInterpError
from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2_grpc as pb_grpc
from autointerp_grpc.service import SECRET_HEADER, SERVICE, AutoInterpService

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


class AutoInterpServicer(pb_grpc.AutoInterpServicer):
    """Implements every RPC by delegating to the shared service."""

    def __init__(self, service: AutoInterpService) -> None:
        self._service = service

    async def _invoke(
        self, method: str, request: Message, context: grpc.aio.ServicerContext
    ) -> Message:
        metadata = dict(context.invocation_metadata() or ())
        request_id = request_id_from(metadata)
        await context.send_initial_metadata(((REQUEST_ID_HEADER, request_id),))
        try:
            return await self._service.call(method, request, metadata.get(SECRET_HEADER))
        except AutoInterpError as exc:
            log.info("%s failed (%s): %s [request id %s]", method, exc.code_name, exc, request_id)
            await context.abort(exc.grpc_code, exc.message)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s failed unexpectedly [request id %s]", method, request_id)
            await context.abort(grpc.StatusCode.INTERNAL, internal_error_message(request_id))
        raise AssertionError("unreachable: context.abort raises")  # pragma: no cover


def _rpc(name: str) -> Callable[..., Awaitable[Message]]:
    async def rpc(
        self: AutoInterpServicer, request: Message, context: grpc.aio.ServicerContext
    ) -> Message:
        return await self._invoke(name, request, context)

    rpc.__name__ = name
    rpc.__doc__ = f"{SERVICE.full_name}.{name}"
    return rpc


# One method per RPC in the proto, so adding an RPC needs no edit here.
for _method in SERVICE.methods:
    setattr(AutoInterpServicer, _method.name, _rpc(_method.name))
