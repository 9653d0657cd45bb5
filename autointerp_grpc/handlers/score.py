"""ScoreEmbedding and ScoreFuzzDetection (legacy): the shared scorers, legacy response shapes."""

from __future__ import annotations

from autointerp_grpc.delphi_compat import ClassifierOutput
from autointerp_grpc.errors import InvalidArgument
from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2 as pb
from autointerp_grpc.handlers.deps import Deps
from autointerp_grpc.methods import metrics
from autointerp_grpc.methods.scorers import (
    embedding_auc,
    embedding_similarities,
    require_answers,
    run_classifier,
    set_answer,
)
from autointerp_grpc.records import split_records
from autointerp_grpc.validation import check_activations

# The legacy server's batch size: examples shown to the model per prompt.
EXAMPLES_PER_PROMPT = 5


async def score_embedding(
    request: pb.ScoreEmbeddingRequest, deps: Deps
) -> pb.ScoreEmbeddingResponse:
    check_activations(request.activations, deps.limits)
    split = split_records(request.activations, need_both=True)
    outputs = await embedding_similarities(split, request.explanation, deps.embedding_model())
    return pb.ScoreEmbeddingResponse(
        score=embedding_auc(outputs),
        breakdown=[
            pb.ScoreEmbeddingBreakdownItem(
                text=o.text, distance=int(o.distance), similarity=float(o.similarity)
            )
            for o in outputs
        ],
    )


def _breakdown_item(
    output: ClassifierOutput, highlighted: bool
) -> pb.ScoreFuzzDetectionBreakdownItem:
    item = pb.ScoreFuzzDetectionBreakdownItem(
        str_tokens=output.str_tokens,
        activations=output.activations,
        distance=int(output.distance),
        ground_truth=bool(output.activating),
        highlighted=highlighted,
    )
    set_answer(item, output)
    return item


async def score_fuzz_detection(
    request: pb.ScoreFuzzDetectionRequest, deps: Deps
) -> pb.ScoreFuzzDetectionResponse:
    check_activations(request.activations, deps.limits)
    if request.type not in (pb.FUZZ, pb.DETECTION):
        raise InvalidArgument("type must be FUZZ or DETECTION")
    fuzz = request.type == pb.FUZZ
    split = split_records(request.activations, need_both=True)
    client = deps.llm.client(model=request.model, api_key=request.openrouter_key)
    outputs = await run_classifier(
        split,
        request.explanation,
        client,
        fuzz=fuzz,
        examples_per_prompt=EXAMPLES_PER_PROMPT,
        concurrency=deps.request_concurrency,
    )
    answered = [o for o in outputs if o.prediction is not None]
    truth = [bool(o.activating) for o in answered]
    require_answers(truth, client.errors)
    predicted = [bool(o.prediction) for o in answered]
    score = metrics.classifier_metrics(truth, predicted, [None] * len(truth), 0).balanced_accuracy
    return pb.ScoreFuzzDetectionResponse(
        score=metrics.finite(score, "Balanced accuracy"),
        breakdown=[_breakdown_item(o, highlighted=fuzz) for o in outputs],
    )
