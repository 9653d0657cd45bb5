"""A typed Python client for the autointerp gRPC service, sync and async.

    from autointerp_grpc.client import AutoInterpClient

    with AutoInterpClient("127.0.0.1:50051", secret=os.environ.get("SECRET")) as client:
        methods = client.list_methods()
        answer = client.explain({"method": "default", "activations": [...],
                                 "llm": {"model": "openai/gpt-4o-mini", "apiKey": key}})
        for event in client.explain_and_score({...}):
            ...

``servers`` is one ``host:port`` or several (``"a:50051,b:50051"`` or a list): with several,
the channel balances calls and streams over them round-robin (see :func:`grpc_target`).
Requests are proto messages or dicts in proto3 JSON form (camelCase or snake_case field
names). The shared secret travels as ``x-secret-key`` metadata and every call carries an
``x-request-id`` (a fresh uuid4 hex unless you pass ``request_id=``), which the server logs
and echoes.

Errors: a failed call raises :class:`grpc.RpcError` (sync: also a :class:`grpc.Call`; async:
a :class:`grpc.aio.AioRpcError`); either way ``error.code()`` is the :class:`grpc.StatusCode`
and ``error.details()`` the server's message (which never contains the secret or API keys).
A stream raises it from the iteration.

Rooms: :mod:`.targets` (one or several servers → a channel target), :mod:`._base` (what both
clients share), :mod:`._rpcs` (their per-RPC methods, typed per RPC, generated from the service
descriptor by ``make protos``), :mod:`.sync` and :mod:`.aio` (the two clients), :mod:`.bulk`
(many features over several servers, with retries).
"""

from autointerp_grpc.client._base import (
    REQUEST_ID_METADATA,
    SECRET_METADATA,
    RequestLike,
    rpc_failure,
    rpc_status,
    to_message,
)
from autointerp_grpc.client.aio import AsyncAutoInterpClient, AsyncEventStream
from autointerp_grpc.client.sync import AutoInterpClient, EventStream
from autointerp_grpc.client.targets import channel_options, grpc_target, split_servers

__all__ = [
    "REQUEST_ID_METADATA",
    "SECRET_METADATA",
    "AsyncAutoInterpClient",
    "AsyncEventStream",
    "AutoInterpClient",
    "EventStream",
    "RequestLike",
    "channel_options",
    "grpc_target",
    "rpc_failure",
    "rpc_status",
    "split_servers",
    "to_message",
]
