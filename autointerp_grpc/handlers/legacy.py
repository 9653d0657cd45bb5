"""The legacy RPCs, as adapters over the one implementation of each method.

* ExplainDefault = the ``default`` explainer (threshold 0.6, no activation values) with the
  legacy rule that every record is a training example, activating or not.
* ScoreFuzzDetection = the ``fuzz`` or ``detection`` scorer with its default parameters (5
  examples per prompt), its breakdown mapped to the legacy item shape.
* ScoreEmbedding = the ``embedding`` scorer, likewise.

Each is checked by the same preparation as the standard RPC it adapts
(:func:`~autointerp_grpc.handlers.explain.prepare_explain`,
:func:`~autointerp_grpc.handlers.score.prepare_score`), so an input the standard RPC rejects
is rejected here with the same message, and it runs the same way
(:func:`~autointerp_grpc.handlers.score.run_score`); the functions here only rename the
result's fields (score, breakdown), reading each item's record by its carried index. Their
JSON is the legacy server's, byte for byte (golden tests pin it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from autointerp_grpc.errors import InvalidArgument
from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2 as pb
from autointerp_grpc.handlers.deps import Deps
from autointerp_grpc.handlers.explain import explain_records, prepare_explain
from autointerp_grpc.handlers.llm_options import llm_client
from autointerp_grpc.handlers.lookup import ResolvedScorer, default_method
from autointerp_grpc.handlers.score import prepare_score, run_score
from autointerp_grpc.methods.registry import EXPLAINER_REGISTRY, SCORER_REGISTRY
from autointerp_grpc.methods.spec import ScoreResult
from autointerp_grpc.offload import off_loop
from autointerp_grpc.records import ACTIVATING_DISTANCE, NON_ACTIVATING_DISTANCE
from autointerp_grpc.usage import Usage
from autointerp_grpc.validation import token_count

# The legacy server's settings: highlight tokens above 60% of the record's peak, no values.
HIGHLIGHT_THRESHOLD = 0.6
# Its batch size: examples shown to the model per prompt.
EXAMPLES_PER_PROMPT = 5


def _distance(activating: bool) -> int:
    return ACTIVATING_DISTANCE if activating else NON_ACTIVATING_DISTANCE


async def explain_default(
    request: pb.ExplainDefaultRequest, deps: Deps
) -> pb.ExplainDefaultResponse:
    method = default_method(
        EXPLAINER_REGISTRY,
        "default",
        threshold=HIGHLIGHT_THRESHOLD,
        show_activations=False,
        chain_of_thought=False,
    )
    legacy_llm = pb.LlmOptions(model=request.model, api_key=request.openrouter_key)
    llm = await prepare_explain(method, legacy_llm, deps, request.activations)
    client = llm_client(llm.options, deps)
    explanation = await explain_records(
        method, client, request.activations, max_chars=deps.limits.max_explanation_chars
    )
    return pb.ExplainDefaultResponse(explanation=explanation)


async def _scored(
    method: ResolvedScorer[Any],
    explanation: str,
    records: Sequence[pb.Activation],
    llm: pb.LlmOptions | None,
    deps: Deps,
) -> ScoreResult:
    """The legacy request scored as the Score RPC scores it (the same preparation and run);
    the legacy responses carry no usage. The result is renamed, not first built into a
    ScoreResponse: copying a 1,000-record breakdown into one costs about 20 ms."""
    job = await prepare_score(method, explanation, records, deps.limits, llm=llm)
    return await run_score(job, deps, Usage())


async def score_embedding(
    request: pb.ScoreEmbeddingRequest, deps: Deps
) -> pb.ScoreEmbeddingResponse:
    method = default_method(SCORER_REGISTRY, "embedding")
    scored = await _scored(method, request.explanation, request.activations, None, deps)
    return pb.ScoreEmbeddingResponse(
        score=scored.score,
        breakdown=[
            pb.ScoreEmbeddingBreakdownItem(
                text=item.text, distance=_distance(item.activating), similarity=item.similarity
            )
            for item in scored.breakdown
        ],
    )


def record_of(item: pb.ScoreBreakdownItem, records: Sequence[pb.Activation]) -> pb.Activation:
    """The request record a breakdown item stands for. Every item of a fuzz or detection
    breakdown carries its record's index; one that does not (-1 for a decoy or a batch, or
    out of range) is a bug, raised as such (INTERNAL), never read as ``records[-1]``."""
    if not 0 <= item.record_index < len(records):
        raise RuntimeError(
            f"a breakdown item has record index {item.record_index}, outside the request's "
            f"{len(records)} records"
        )
    return records[item.record_index]


def _fuzz_detection_item(
    item: pb.ScoreBreakdownItem, record: pb.Activation, highlighted: bool
) -> pb.ScoreFuzzDetectionBreakdownItem:
    legacy = pb.ScoreFuzzDetectionBreakdownItem(
        str_tokens=item.str_tokens,
        activations=record.values,
        distance=_distance(item.activating),
        ground_truth=item.activating,
        highlighted=highlighted,
    )
    for name in ("prediction", "probability", "correct"):
        if item.HasField(name):
            setattr(legacy, name, getattr(item, name))
    return legacy


async def score_fuzz_detection(
    request: pb.ScoreFuzzDetectionRequest, deps: Deps
) -> pb.ScoreFuzzDetectionResponse:
    if request.type not in (pb.FUZZ, pb.DETECTION):
        raise InvalidArgument("type must be FUZZ or DETECTION")
    fuzz = request.type == pb.FUZZ
    method = default_method(
        SCORER_REGISTRY, "fuzz" if fuzz else "detection", examples_per_prompt=EXAMPLES_PER_PROMPT
    )
    llm = pb.LlmOptions(model=request.model, api_key=request.openrouter_key)
    scored = await _scored(method, request.explanation, request.activations, llm, deps)
    records = request.activations

    def response() -> pb.ScoreFuzzDetectionResponse:
        return pb.ScoreFuzzDetectionResponse(
            score=scored.score,
            breakdown=[
                _fuzz_detection_item(item, record_of(item, records), fuzz)
                for item in scored.breakdown
            ],
        )

    # The breakdown repeats every record's tokens and values: as big as the request.
    return await off_loop(token_count(records), response)
