"""How the REST door answers an error: the body, its HTTP status and the exception handlers.

Every error goes out as the proto's ``ErrorResponse`` (``{"detail": ..., "code": ...}``) with
the HTTP status of its gRPC code (:attr:`~autointerp_grpc.errors.AutoInterpError.http_status`)
and the request's ``x-request-id``. Starlette's own HTTP errors, raised before any route runs
(no such path, wrong method), keep their HTTP status and are named by the gRPC code of the
table here; a bug outside the RPC routes is a generic INTERNAL naming the request id.
"""

from __future__ import annotations

import grpc
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from autointerp_grpc.errors import AutoInterpError, as_wire_error
from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2 as pb
from autointerp_grpc.rest.jsonmap import to_json_bytes
from autointerp_grpc.service import REQUEST_ID_HEADER, request_id_from


def error_body(error: AutoInterpError) -> pb.ErrorResponse:
    """The error as the proto's ``ErrorResponse``: the message and the gRPC status name."""
    return pb.ErrorResponse(detail=error.message, code=error.code_name)


def error_response(error: AutoInterpError, request_id: str) -> Response:
    """The error's JSON body with its HTTP status and the request id."""
    return Response(
        to_json_bytes(error_body(error)),
        status_code=error.http_status,
        media_type="application/json",
        headers={REQUEST_ID_HEADER: request_id},
    )


# Starlette's own HTTP errors (no route, wrong method, a static file's range, ...) as gRPC
# status names, like grpc-gateway's routing errors: 404 NOT_FOUND, 405 UNIMPLEMENTED (the
# method is not implemented on this path; the HTTP status stays 405, with its Allow header).
_HTTP_ERROR_CODES: dict[int, grpc.StatusCode] = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    405: grpc.StatusCode.UNIMPLEMENTED,
    408: grpc.StatusCode.DEADLINE_EXCEEDED,
    409: grpc.StatusCode.ABORTED,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    416: grpc.StatusCode.OUT_OF_RANGE,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    501: grpc.StatusCode.UNIMPLEMENTED,
    503: grpc.StatusCode.UNAVAILABLE,
    504: grpc.StatusCode.DEADLINE_EXCEEDED,
}

_HTTP_ERROR_DETAILS = {
    404: "Not Found: no such path on the REST door (its routes are listed at /openapi.json)",
    405: "Method Not Allowed on this path (the Allow header names the one it takes)",
}


class HttpLevelError(AutoInterpError):
    """An error Starlette raised before any route ran, keeping its own HTTP status."""

    def __init__(self, message: str, grpc_code: grpc.StatusCode, http_status: int) -> None:
        super().__init__(message)
        self.grpc_code = grpc_code
        self._http_status = http_status

    @property
    def http_status(self) -> int:
        return self._http_status


async def http_exception_handler(request: Request, exc: Exception) -> Response:
    """404, 405 and the like in the service's error shape: ``{"detail", "code"}``."""
    assert isinstance(exc, HTTPException)
    status = exc.status_code
    default = grpc.StatusCode.INVALID_ARGUMENT if status < 500 else grpc.StatusCode.INTERNAL
    code = _HTTP_ERROR_CODES.get(status, default)
    detail = _HTTP_ERROR_DETAILS.get(status, str(exc.detail))
    request_id = request_id_from(request.headers.get(REQUEST_ID_HEADER))
    response = error_response(HttpLevelError(detail, code, status), request_id)
    if exc.headers:  # Allow on a 405, Content-Range on a 416
        response.headers.update(exc.headers)
    return response


async def unhandled_exception_handler(request: Request, exc: Exception) -> Response:
    """A bug outside the RPC routes: a generic INTERNAL naming the request id (logged with
    the traceback under it), never the exception's text."""
    request_id = request_id_from(request.headers.get(REQUEST_ID_HEADER))
    where = f"{request.method} {request.url.path}"
    return error_response(as_wire_error(exc, request_id, where), request_id)
