"""The legacy RPCs, as adapters over the one implementation of each method.

* ExplainDefault = the ``default`` explainer (threshold 0.6, no activation values) with the
  legacy rule that every record is a training example, activating or not.
* ScoreFuzzDetection = the ``fuzz`` or ``detection`` scorer with its default parameters (5
  examples per prompt), its breakdown mapped to the legacy item shape.
* ScoreEmbedding = the ``embedding`` scorer, likewise.

Their JSON is the legacy server's, byte for byte (golden tests pin it).
"""

from __future__ import annotations

from autointerp_grpc.errors import InvalidArgument
from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2 as pb
from autointerp_grpc.handlers.deps import Deps
from autointerp_grpc.handlers.explain import explain_records
from autointerp_grpc.handlers.methods import check_llm_options, default_method, llm_client
from autointerp_grpc.handlers.score import score_records
from autointerp_grpc.methods.registry import EXPLAINER_REGISTRY, SCORER_REGISTRY
from autointerp_grpc.offload import off_loop
from autointerp_grpc.records import ACTIVATING_DISTANCE, NON_ACTIVATING_DISTANCE
from autointerp_grpc.validation import check_request_records, token_count

# The legacy server's settings: highlight tokens above 60% of the record's peak, no values.
HIGHLIGHT_THRESHOLD = 0.6
# Its batch size: examples shown to the model per prompt.
EXAMPLES_PER_PROMPT = 5


def _legacy_llm(model: str, key: str) -> pb.LlmOptions:
    llm = pb.LlmOptions(model=model, api_key=key)
    check_llm_options(llm)
    return llm


def _distance(activating: bool) -> int:
    return ACTIVATING_DISTANCE if activating else NON_ACTIVATING_DISTANCE


async def explain_default(
    request: pb.ExplainDefaultRequest, deps: Deps
) -> pb.ExplainDefaultResponse:
    records = request.activations
    await off_loop(token_count(records), check_request_records, records, deps.limits)
    method = default_method(
        EXPLAINER_REGISTRY,
        "default",
        threshold=HIGHLIGHT_THRESHOLD,
        show_activations=False,
        chain_of_thought=False,
    )
    client = llm_client(_legacy_llm(request.model, request.openrouter_key), deps)
    explanation = await explain_records(method, client, request.activations)
    return pb.ExplainDefaultResponse(explanation=explanation)


async def score_embedding(
    request: pb.ScoreEmbeddingRequest, deps: Deps
) -> pb.ScoreEmbeddingResponse:
    method = default_method(SCORER_REGISTRY, "embedding")
    result, _ = await score_records(method, request.explanation, request.activations, None, deps)
    return pb.ScoreEmbeddingResponse(
        score=result.score,
        breakdown=[
            pb.ScoreEmbeddingBreakdownItem(
                text=item.text, distance=_distance(item.activating), similarity=item.similarity
            )
            for item in result.breakdown
        ],
    )


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
    llm = _legacy_llm(request.model, request.openrouter_key)
    result, _ = await score_records(method, request.explanation, request.activations, llm, deps)

    def response() -> pb.ScoreFuzzDetectionResponse:
        return pb.ScoreFuzzDetectionResponse(
            score=result.score,
            breakdown=[
                _fuzz_detection_item(item, request.activations[item.record_index], fuzz)
                for item in result.breakdown
            ],
        )

    # The breakdown repeats every record's tokens and values: as big as the request.
    return await off_loop(token_count(request.activations), response)
