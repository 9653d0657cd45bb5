#!/usr/bin/env python3
"""Call every autointerp RPC over gRPC with the generated stubs, and print the answers.

    python client_examples/python_client.py --target 127.0.0.1:50051 --model openai/gpt-4o-mini

The shared secret and the provider API key are read from the environment (SECRET,
OPENROUTER_API_KEY) unless given with --secret / --api-key; prefer the environment, since other
users of the machine can read a process's arguments. Neither is ever printed.

The records below describe a made-up latent that fires on the token " cat". The script asks for
an explanation (ExplainDefault), then scores that explanation, or the one given with
--explanation, by fuzzing and detection (ScoreFuzzDetection) and by embedding similarity
(ScoreEmbedding). It exits with status 1 and the gRPC status code and details on the first
failed call.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any

import grpc

try:
    from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2 as pb
    from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2_grpc as pb_grpc
except ImportError as exc:  # pragma: no cover - only without the package installed
    raise SystemExit(
        f"cannot import the generated stubs ({exc}); run this with the project's virtualenv "
        "(`make install`, then .venv/bin/python client_examples/python_client.py)"
    ) from exc

DEFAULT_TARGET = "127.0.0.1:50051"
DEFAULT_MODEL = "openai/gpt-4o-mini"
SECRET_METADATA = "x-secret-key"
REQUEST_ID_METADATA = "x-request-id"
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

    def __init__(self, method: str, error: grpc.RpcError) -> None:
        code = error.code() if isinstance(error, grpc.Call) else grpc.StatusCode.UNKNOWN
        details = error.details() if isinstance(error, grpc.Call) else str(error)
        super().__init__(f"{method} failed: {code.name}: {details}")
        self.method = method
        self.code = code
        self.details = details
        self.request_id = _request_id(error) if isinstance(error, grpc.Call) else None


def sample_records() -> list[pb.Activation]:
    """Six records where the latent fires on " cat" and six where it stays at zero."""
    records: list[pb.Activation] = []
    for (tokens, peak), quiet in zip(_ACTIVATING, _NON_ACTIVATING, strict=True):
        values = [0.0] * len(tokens)
        values[peak] = 0.85
        records.append(pb.Activation(tokens=tokens, values=values))
        records.append(pb.Activation(tokens=quiet, values=[0.0] * len(quiet)))
    return records


def _request_id(call: grpc.Call) -> str | None:
    for key, value in call.initial_metadata() or ():
        if key == REQUEST_ID_METADATA:
            return value if isinstance(value, str) else value.decode("ascii", "replace")
    return None


class AutoInterpClient:
    """A thin wrapper over the generated stub that adds the secret and a deadline to each call."""

    def __init__(self, channel: grpc.Channel, secret: str | None, timeout_s: float) -> None:
        self._stub = pb_grpc.AutoInterpStub(channel)
        self._metadata: tuple[tuple[str, str], ...] = ((SECRET_METADATA, secret),) if secret else ()
        self._timeout_s = timeout_s

    def _call(self, method: str, request: Any) -> tuple[Any, str | None]:
        try:
            response, call = getattr(self._stub, method).with_call(
                request, metadata=self._metadata, timeout=self._timeout_s
            )
        except grpc.RpcError as error:
            raise RpcFailedError(method, error) from None
        return response, _request_id(call)

    def explain(
        self, records: Sequence[pb.Activation], api_key: str, model: str
    ) -> tuple[pb.ExplainDefaultResponse, str | None]:
        request = pb.ExplainDefaultRequest(activations=records, openrouter_key=api_key, model=model)
        return self._call("ExplainDefault", request)

    def score_fuzz_detection(
        self,
        records: Sequence[pb.Activation],
        explanation: str,
        api_key: str,
        model: str,
        kind: pb.ScoreFuzzDetectionType,
    ) -> tuple[pb.ScoreFuzzDetectionResponse, str | None]:
        request = pb.ScoreFuzzDetectionRequest(
            activations=records,
            explanation=explanation,
            openrouter_key=api_key,
            model=model,
            type=kind,
        )
        return self._call("ScoreFuzzDetection", request)

    def score_embedding(
        self, records: Sequence[pb.Activation], explanation: str
    ) -> tuple[pb.ScoreEmbeddingResponse, str | None]:
        request = pb.ScoreEmbeddingRequest(activations=records, explanation=explanation)
        return self._call("ScoreEmbedding", request)


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
    with grpc.insecure_channel(args.target) as channel:
        client = AutoInterpClient(channel, args.secret, args.timeout)

        explained, request_id = client.explain(records, args.api_key, args.model)
        _heading(f"ExplainDefault ({args.model})", request_id)
        print(f"explanation: {explained.explanation}")

        explanation = args.explanation or explained.explanation
        print(f"\nscoring the explanation: {explanation!r}")
        for kind in (pb.FUZZ, pb.DETECTION):
            scored, request_id = client.score_fuzz_detection(
                records, explanation, args.api_key, args.model, kind
            )
            print_fuzz_detection(pb.ScoreFuzzDetectionType.Name(kind), scored, request_id)

        embedded, request_id = client.score_embedding(records, explanation)
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
