"""What every scorer shares: bounded concurrency, the answered-items rules, and the classifier
result (balanced accuracy, every classifier metric and an interval) from breakdown items."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from autointerp_grpc.delphi_compat import (
    ClassifierOutput,
)
from autointerp_grpc.errors import AutoInterpError, UpstreamBadResponse
from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2 as pb
from autointerp_grpc.methods import metrics
from autointerp_grpc.methods.spec import ScoreResult
from autointerp_grpc.records import Split

T = TypeVar("T")

LOGPROBS_MISSING_NOTE = (
    "The provider returned no log probabilities for this model, so per-example probabilities "
    "and AUC are not available; the score uses the answers alone."
)


async def bounded_gather(calls: Sequence[Callable[[], Awaitable[T]]], limit: int) -> list[T]:
    semaphore = asyncio.Semaphore(limit)

    async def run(call: Callable[[], Awaitable[T]]) -> T:
        async with semaphore:
            return await call()

    return await asyncio.gather(*(run(c) for c in calls))


def require_answers(truth: Sequence[bool], errors: Sequence[AutoInterpError]) -> None:
    """Raise unless the answered items hold both classes.

    Nothing answered raises the first upstream error (rejected key, no credits, rate limit,
    provider down) or, when every answer arrived but none could be used, says so. Answers for
    only one class leave balanced accuracy undefined and raise too, rather than report a
    one-sided number as the score.
    """
    if not truth:
        if errors:
            raise errors[0]
        raise UpstreamBadResponse(
            "The scorer model returned no usable predictions: none of its answers had the "
            "expected format. Try again or use another model"
        )
    if len(set(truth)) < 2:
        kind = "activating" if truth[0] else "non-activating"
        raise UpstreamBadResponse(
            f"The scorer model answered only for {kind} examples; balanced accuracy needs "
            "answers for both kinds. Try again"
        )


def index_by_tokens(split: Split) -> dict[int, int]:
    # delphi's classifier samples carry the example's own str_tokens list object, which maps
    # each output back to its record in the request.
    return {id(example.str_tokens): i for i, example in enumerate(split.in_order)}


def classifier_result(
    items: list[pb.ScoreBreakdownItem], errors: Sequence[AutoInterpError], notes: list[str]
) -> ScoreResult:
    """Balanced accuracy, every classifier metric and its interval, from breakdown items."""
    answered = [i for i in items if i.HasField("prediction")]
    truth = [i.activating for i in answered]
    require_answers(truth, errors)
    predicted = [i.prediction for i in answered]
    probabilities = [i.probability if i.HasField("probability") else None for i in answered]
    classifier = metrics.classifier_metrics(
        truth, predicted, probabilities, unanswered=len(items) - len(answered)
    )
    return ScoreResult(
        score=metrics.finite(classifier.balanced_accuracy, "Balanced accuracy"),
        breakdown=items,
        classifier=classifier,
        confidence_interval=metrics.balanced_accuracy_interval(truth, predicted),
        notes=notes,
    )


def set_answer(
    item: pb.ScoreBreakdownItem | pb.ScoreFuzzDetectionBreakdownItem, output: ClassifierOutput
) -> None:
    """Copy a classifier output's answer (prediction, correctness, probability) onto a
    breakdown item of either shape; unanswered stays unset (null in JSON)."""
    if output.prediction is not None:
        item.prediction = bool(output.prediction)
        item.correct = bool(output.prediction) == bool(output.activating)
    if output.probability is not None:
        item.probability = float(output.probability)
