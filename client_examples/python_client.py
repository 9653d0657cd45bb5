#!/usr/bin/env python3
"""Call the legacy autointerp RPCs over gRPC with the typed client, and print the answers.

    python client_examples/python_client.py --target 127.0.0.1:50051 --model openai/gpt-4o-mini

The shared secret and the provider API key are read from the environment (SECRET,
OPENROUTER_API_KEY) unless given with --secret / --api-key; prefer the environment, since other
users of the machine can read a process's arguments. Neither is ever printed.

The records below describe a made-up latent that fires on the token " cat". The script asks for
an explanation (ExplainDefault), then scores that explanation, or the one given with
--explanation, by fuzzing and detection (ScoreFuzzDetection) and by embedding similarity
(ScoreEmbedding). It exits with status 1 and the gRPC status code and details on the first
failed call.

It uses ``autointerp_grpc.client.AutoInterpClient``, which wraps the generated stubs: it sends
the secret as ``x-secret-key`` metadata and an ``x-request-id`` with every call, and accepts
requests as proto messages or proto3-JSON dicts.
"""

from __future__ import annotations

import argparse
import os
import sys
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import grpc

try:
    from autointerp_grpc.client import AutoInterpClient
    from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2 as pb
except ImportError as exc:  # pragma: no cover - only without the package installed
    raise SystemExit(
        f"cannot import autointerp_grpc ({exc}); run this with the project's virtualenv "
        "(`make install`, then .venv/bin/python client_examples/python_client.py)"
    ) from exc

DEFAULT_TARGET = "127.0.0.1:50051"
DEFAULT_MODEL = "openai/gpt-4o-mini"
PREVIEW_CHARS = 48

# (tokens, index of the token where the latent fires) for the activating records.
_ACTIVATING: list[tuple[list[str], int]] = [
    (["A", " cat", " napped", " by", " the", " window"], 1),
    (["The", " neighbour", "'s", " cat", " climbed", " the", " fence"], 3),
    (["Please", " feed", " the", " cat", " before", " you", " go"], 3),
    (["That", " old", " cat", " purrs", " loudly"], 2),
    (["Her", " cat", " knocked", " a", " glass", " over"], 1),
    (["A", " stray", " cat", " waited", " at", " the", " door"], 2),
]
# Records where the latent stays silent (all values 0).
_NON_ACTIVATING: list[list[str]] = [
    ["The", " committee", " approved", " the", " budget"],
    ["He", " repaired", " the", " bicycle", " chain"],
    ["Snow", " covered", " the", " mountain", " road"],
    ["She", " wrote", " a", " letter", " home"],
    ["The", " printer", " ran", " out", " of", " ink"],
    ["We", " sailed", " across", " the", " bay"],
]


class RpcFailedError(Exception):
    """An RPC ended with a non-OK status."""

    def __init__(self, method: str, error: grpc.RpcError, request_id: str) -> None:
        code = error.code() if isinstance(error, grpc.Call) else grpc.StatusCode.UNKNOWN
        details = error.details() if isinstance(error, grpc.Call) else str(error)
        super().__init__(f"{method} failed: {code.name}: {details}")
        self.method = method
        self.code = code
        self.details = details
        self.request_id = request_id


def sample_records() -> list[pb.Activation]:
    """Six records where the latent fires on " cat" and six where it stays at zero."""
    records: list[pb.Activation] = []
    for (tokens, peak), quiet in zip(_ACTIVATING, _NON_ACTIVATING, strict=True):
        values = [0.0] * len(tokens)
        values[peak] = 0.85
        records.append(pb.Activation(tokens=tokens, values=values))
        records.append(pb.Activation(tokens=quiet, values=[0.0] * len(quiet)))
    return records


def call(method: str, rpc: Callable[..., Any], request: Any) -> tuple[Any, str]:
    """Make one call with a fresh request id (the server logs it and echoes it back); turn a
    failure into RpcFailedError."""
    request_id = uuid.uuid4().hex
    try:
        return rpc(request, request_id=request_id), request_id
    except grpc.RpcError as error:
        raise RpcFailedError(method, error, request_id) from None


def _preview(text: str) -> str:
    text = text.strip()
    return text if len(text) <= PREVIEW_CHARS else text[: PREVIEW_CHARS - 3] + "..."


def _yes_no(message: Any, field: str) -> str:
    if not message.HasField(field):
        return "-"
    return "yes" if getattr(message, field) else "no"


def _heading(title: str, request_id: str | None) -> None:
    suffix = f"  (request id {request_id})" if request_id else ""
    print(f"\n== {title}{suffix}")


def print_fuzz_detection(
    kind_name: str, response: pb.ScoreFuzzDetectionResponse, request_id: str | None
) -> None:
    """Print the score and one line per example of a ScoreFuzzDetection answer."""
    _heading(f"ScoreFuzzDetection {kind_name}", request_id)
    answered = sum(1 for item in response.breakdown if item.HasField("prediction"))
    print(f"{kind_name} score: {response.score:.3f}  (balanced accuracy; 0.5 is chance)")
    print(f"answered: {answered}/{len(response.breakdown)} examples")
    print(f"  {'active':<7}{'said':<6}{'correct':<9}{'prob':<7}text")
    for item in response.breakdown:
        probability = f"{item.probability:.2f}" if item.HasField("probability") else "-"
        print(
            f"  {_yes_no(item, 'ground_truth'):<7}{_yes_no(item, 'prediction'):<6}"
            f"{_yes_no(item, 'correct'):<9}{probability:<7}"
            f"{_preview(''.join(item.str_tokens))!r}"
        )


def print_embedding(response: pb.ScoreEmbeddingResponse, request_id: str | None) -> None:
    """Print the score and one line per record of a ScoreEmbedding answer."""
    _heading("ScoreEmbedding", request_id)
    print(f"EMBEDDING score: {response.score:.3f}  (ROC AUC; 0.5 is chance)")
    print(f"  {'active':<7}{'similarity':<12}text")
    for item in response.breakdown:
        active = "yes" if item.distance > 0 else "no"
        print(f"  {active:<7}{item.similarity:<12.3f}{_preview(item.text)!r}")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Call ExplainDefault, ScoreFuzzDetection (FUZZ, DETECTION) and "
        "ScoreEmbedding on a built-in set of activation records."
    )
    parser.add_argument(
        "--target",
        default=os.environ.get("GRPC_TARGET", DEFAULT_TARGET),
        help="host:port of the gRPC server (default: $GRPC_TARGET or %(default)s)",
    )
    parser.add_argument(
        "--secret",
        default=os.environ.get("SECRET"),
        help="the server's shared secret, sent as x-secret-key metadata (default: $SECRET; "
        "omit when the server runs without one)",
    )
    parser.add_argument(
        "--api-key",
        default=os.environ.get("OPENROUTER_API_KEY"),
        help="the LLM provider key passed through to the service (default: $OPENROUTER_API_KEY)",
    )
    parser.add_argument(
        "--model",
        default=DEFAULT_MODEL,
        help="explainer and scorer model, as the provider names it (default: %(default)s)",
    )
    parser.add_argument(
        "--explanation",
        help="explanation to score (default: the one ExplainDefault returns)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=180.0,
        help="deadline of each call in seconds (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    if not args.api_key:
        parser.error("an API key is needed: pass --api-key or set OPENROUTER_API_KEY")
    return args


def run(args: argparse.Namespace) -> None:
    """Make the four calls in order, printing each answer; raises RpcFailedError on failure."""
    records = sample_records()
    with AutoInterpClient(args.target, secret=args.secret, timeout=args.timeout) as client:
        request = pb.ExplainDefaultRequest(
            activations=records, openrouter_key=args.api_key, model=args.model
        )
        explained, request_id = call("ExplainDefault", client.explain_default, request)
        _heading(f"ExplainDefault ({args.model})", request_id)
        print(f"explanation: {explained.explanation}")

        explanation = args.explanation or explained.explanation
        print(f"\nscoring the explanation: {explanation!r}")
        for kind in (pb.FUZZ, pb.DETECTION):
            scoring = pb.ScoreFuzzDetectionRequest(
                activations=records,
                explanation=explanation,
                openrouter_key=args.api_key,
                model=args.model,
                type=kind,
            )
            scored, request_id = call("ScoreFuzzDetection", client.score_fuzz_detection, scoring)
            print_fuzz_detection(pb.ScoreFuzzDetectionType.Name(kind), scored, request_id)

        # A dict in proto3 JSON form works as well as the message.
        body = {
            "activations": [{"tokens": list(r.tokens), "values": list(r.values)} for r in records],
            "explanation": explanation,
        }
        embedded, request_id = call("ScoreEmbedding", client.score_embedding, body)
        print_embedding(embedded, request_id)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        run(args)
    except RpcFailedError as error:
        print(f"error: {error}", file=sys.stderr)
        if error.request_id:
            print(f"(server request id: {error.request_id})", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
