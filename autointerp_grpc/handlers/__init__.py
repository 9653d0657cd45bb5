"""One async handler per RPC: request message in, response message out.

Handlers know nothing of gRPC or HTTP: they get the request message (already checked for
required fields) and the :class:`Deps`, and raise :mod:`autointerp_grpc.errors` types.
:data:`HANDLERS` maps each RPC name of the proto's service to its handler; the service
refuses to start if an RPC has none.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from google.protobuf.message import Message

from autointerp_grpc.handlers.bulk import explain_and_score
from autointerp_grpc.handlers.deps import Deps
from autointerp_grpc.handlers.explain import explain
from autointerp_grpc.handlers.legacy import explain_default, score_embedding, score_fuzz_detection
from autointerp_grpc.handlers.list_methods import list_methods
from autointerp_grpc.handlers.score import score

# Unary handlers return a response; server-streaming ones are async generators of them.
Handler = Callable[[Any, Deps], Awaitable[Message] | AsyncIterator[Message]]

HANDLERS: dict[str, Handler] = {
    "ExplainDefault": explain_default,
    "ScoreEmbedding": score_embedding,
    "ScoreFuzzDetection": score_fuzz_detection,
    "ListMethods": list_methods,
    "Explain": explain,
    "Score": score,
    "ExplainAndScore": explain_and_score,
}

__all__ = ["HANDLERS", "Deps", "Handler"]
