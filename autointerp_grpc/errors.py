"""Typed errors. Each carries its gRPC status code and HTTP status.

Handlers and backends raise these; the gRPC servicer turns them into a status with the message
as details, the REST gateway into ``{"detail": message, "code": STATUS_NAME}`` with the HTTP
status from :data:`HTTP_STATUS`. Anything that is not an :class:`AutoInterpError` is a bug or an
unforeseen failure: it is logged and goes out as a generic INTERNAL error with a request id,
never with its own text (which could carry a key from an upstream error).

Messages must never contain a secret or an API key, nor quote back a value the caller sent
(a key sent in the wrong field would be echoed and logged): they name the field and the rule.
"""

from __future__ import annotations

import logging

import grpc

log = logging.getLogger(__name__)

# The standard gRPC → HTTP mapping (as in google.rpc.Code and grpc-gateway).
HTTP_STATUS: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DATA_LOSS: 500,
}


class AutoInterpError(Exception):
    """Base of every error the service reports to its callers on purpose."""

    grpc_code: grpc.StatusCode = grpc.StatusCode.INTERNAL

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    @property
    def http_status(self) -> int:
        return HTTP_STATUS[self.grpc_code]

    @property
    def code_name(self) -> str:
        return self.grpc_code.name


class InvalidArgument(AutoInterpError):
    """The request is malformed or its values break a rule; the message names field and rule."""

    grpc_code = grpc.StatusCode.INVALID_ARGUMENT


class Unauthenticated(AutoInterpError):
    """The caller did not present this service's shared secret."""

    grpc_code = grpc.StatusCode.UNAUTHENTICATED


class FailedPrecondition(AutoInterpError):
    """The request is well formed but cannot be served as things stand (e.g. the provider
    rejected the caller's API key, or the account has no credits)."""

    grpc_code = grpc.StatusCode.FAILED_PRECONDITION


class ResourceExhausted(AutoInterpError):
    """A rate limit (ours or the provider's) was hit."""

    grpc_code = grpc.StatusCode.RESOURCE_EXHAUSTED


class Unavailable(AutoInterpError):
    """A dependency (the LLM provider, the embedding model) is not reachable or not ready."""

    grpc_code = grpc.StatusCode.UNAVAILABLE


class DeadlineExceeded(AutoInterpError):
    """The request ran out of time."""

    grpc_code = grpc.StatusCode.DEADLINE_EXCEEDED


class UpstreamBadResponse(Unavailable):
    """The provider answered, but with nothing usable (e.g. no parsable explanation)."""


class RequestTooLarge(ResourceExhausted):
    """The request body is larger than the configured cap (HTTP 413 on the REST door)."""

    @property
    def http_status(self) -> int:
        return 413


class RequestTimeout(DeadlineExceeded):
    """The request body did not arrive in time (HTTP 408 on the REST door)."""

    @property
    def http_status(self) -> int:
        return 408


class Cancelled(AutoInterpError):
    """The caller went away before the answer was ready."""

    grpc_code = grpc.StatusCode.CANCELLED


class Internal(AutoInterpError):
    """An unforeseen failure, as the caller sees it: a generic message with the request id
    under which the server logged the details (see :func:`as_wire_error`)."""

    grpc_code = grpc.StatusCode.INTERNAL


def internal_error_message(request_id: str) -> str:
    return f"Internal error; the server log has the details under request id {request_id}"


def as_wire_error(exc: BaseException, request_id: str, where: str) -> AutoInterpError:
    """What a caller is told about ``exc``, on every door and in a stream's error event.

    Our own errors go out as they are. Anything else is a bug or an unforeseen failure: it
    is logged here with its traceback and the request id, and the caller gets a generic
    INTERNAL naming only the request id — never the exception's text, which could quote an
    upstream error and with it a key.
    """
    if isinstance(exc, AutoInterpError):
        return exc
    log.error("%s failed unexpectedly [request id %s]", where, request_id, exc_info=exc)
    return Internal(internal_error_message(request_id))
