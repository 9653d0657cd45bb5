"""ScoreEmbedding and ScoreFuzzDetection: delphi's scorers over the caller's records."""

from __future__ import annotations

import math
from collections.abc import Sequence

from sklearn.metrics import balanced_accuracy_score, roc_auc_score

from autointerp_grpc.delphi_compat import (
    ClassifierOutput,
    EmbeddingScorer,
    Latent,
    LatentRecord,
    embedding_samples,
)
from autointerp_grpc.errors import AutoInterpError, InvalidArgument, UpstreamBadResponse
from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2 as pb
from autointerp_grpc.handlers.classifiers import Detection, Fuzzing
from autointerp_grpc.handlers.deps import Deps
from autointerp_grpc.handlers.records import split_records
from autointerp_grpc.validation import check_activations

# The legacy server's batch size: examples shown to the model per prompt.
EXAMPLES_PER_PROMPT = 5

_CLASSIFIERS = {pb.FUZZ: Fuzzing, pb.DETECTION: Detection}


def _finite_unit_score(value: float, what: str) -> float:
    if not math.isfinite(value) or not 0.0 <= value <= 1.0:
        raise UpstreamBadResponse(f"{what} came out as {value}, outside [0, 1]")
    return float(value)


async def score_embedding(
    request: pb.ScoreEmbeddingRequest, deps: Deps
) -> pb.ScoreEmbeddingResponse:
    check_activations(request.activations, deps.limits)
    split = split_records(request.activations, need_both=True)
    backend = deps.embedding_model()
    scorer = EmbeddingScorer(backend.model)
    # delphi's EmbeddingScorer.__call__ shuffles with the global random module and encodes on
    # the event loop; its _query does the actual work, so it runs on the model's thread and
    # the breakdown keeps the request's order.
    samples = embedding_samples(split.in_order)
    outputs = await backend.run(scorer._query, request.explanation, samples)
    similarities = [float(o.similarity) for o in outputs]
    if not all(math.isfinite(s) for s in similarities):
        raise UpstreamBadResponse("The embedding model produced a non-finite similarity")
    truth = [o.distance > 0 for o in outputs]
    score = _finite_unit_score(float(roc_auc_score(truth, similarities)), "The ROC AUC")
    return pb.ScoreEmbeddingResponse(
        score=score,
        breakdown=[
            pb.ScoreEmbeddingBreakdownItem(text=o.text, distance=int(o.distance), similarity=s)
            for o, s in zip(outputs, similarities, strict=True)
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
    if output.prediction is not None:
        item.prediction = bool(output.prediction)
        item.correct = bool(output.prediction) == bool(output.activating)
    if output.probability is not None:
        item.probability = float(output.probability)
    return item


def balanced_accuracy(
    outputs: Sequence[ClassifierOutput], errors: Sequence[AutoInterpError]
) -> float:
    """Balanced accuracy over the answered examples.

    Nothing answered raises the first upstream error (rejected key, no credits, rate limit,
    provider down) or, when every answer arrived but none could be parsed, says so. Answers
    for only one class leave balanced accuracy undefined and raise too, rather than report a
    one-sided number as the score.
    """
    answered = [o for o in outputs if o.prediction is not None]
    if not answered:
        if errors:
            raise errors[0]
        raise UpstreamBadResponse(
            "The scorer model returned no usable predictions: none of its answers was a list "
            "of 0/1 of the right length. Try again or use another model"
        )
    truth = [bool(o.activating) for o in answered]
    if len(set(truth)) < 2:
        raise UpstreamBadResponse(
            f"The scorer model answered only for {'activating' if truth[0] else 'non-activating'}"
            " examples; balanced accuracy needs answers for both kinds. Try again"
        )
    predicted = [bool(o.prediction) for o in answered]
    return _finite_unit_score(float(balanced_accuracy_score(truth, predicted)), "Balanced accuracy")


async def score_fuzz_detection(
    request: pb.ScoreFuzzDetectionRequest, deps: Deps
) -> pb.ScoreFuzzDetectionResponse:
    check_activations(request.activations, deps.limits)
    scorer_cls = _CLASSIFIERS.get(request.type)
    if scorer_cls is None:
        raise InvalidArgument("type must be FUZZ or DETECTION")
    split = split_records(request.activations, need_both=True)
    record = LatentRecord(Latent("latent", 0))
    record.test = split.activating
    record.not_active = split.non_activating
    record.explanation = request.explanation
    client = deps.llm.client(model=request.model, api_key=request.openrouter_key)
    scorer = scorer_cls(
        client, verbose=False, n_examples_shown=EXAMPLES_PER_PROMPT, log_prob=False, temperature=0.0
    )
    result = await scorer(record)
    outputs: list[ClassifierOutput] = result.score
    score = balanced_accuracy(outputs, client.errors)
    highlighted = scorer_cls is Fuzzing
    return pb.ScoreFuzzDetectionResponse(
        score=score, breakdown=[_breakdown_item(o, highlighted) for o in outputs]
    )
