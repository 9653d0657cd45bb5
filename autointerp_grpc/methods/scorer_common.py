"""What every scorer shares: bounded concurrency, the answered-items rules, and the classifier
result (balanced accuracy, every classifier metric and an interval) from breakdown items."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from autointerp_grpc.delphi_compat import (
    ClassifierOutput,
)
from autointerp_grpc.errors import AutoInterpError, Unavailable, UpstreamBadResponse
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


BALANCED_ACCURACY_CHANCE = 0.5


def coverage_of(items: Sequence[pb.ScoreBreakdownItem], *, by_class: bool) -> pb.Coverage:
    """Answered items (those with a prediction, or with predicted activations for the
    simulator, or a predicted index for the intruder), per class when ``by_class``."""

    def answered(item: pb.ScoreBreakdownItem) -> bool:
        return (
            item.HasField("prediction")
            or item.HasField("predicted_index")
            or len(item.predicted_activations) > 0
        )

    coverage = pb.Coverage(total=len(items), answered=sum(answered(i) for i in items))
    if by_class:
        for item in items:
            if item.activating:
                coverage.activating_total += 1
                coverage.activating_answered += answered(item)
            else:
                coverage.non_activating_total += 1
                coverage.non_activating_answered += answered(item)
    return coverage


def _fraction(answered: int, total: int) -> float:
    return answered / total if total else 1.0


CLASSIFIER_ANSWER_SHAPE = "a list of 0/1 predictions, one per example, e.g. [1, 0, 0, 1, 0]"
"""What delphi's detection and fuzzing prompts ask the judge to answer."""


def require_coverage(
    coverage: pb.Coverage,
    min_answered: float,
    errors: Sequence[AutoInterpError],
    what: str = "examples",
    expected: str = "",
) -> list[str]:
    """The coverage floor: unanswered items are not evidence.

    Nothing answered raises the first upstream error (rejected key, no credits, rate limit,
    provider down) or says that no answer had the expected format, naming it (``expected``,
    the answer shape the scorer's prompt asks for). Below ``min_answered``
    (per class when the coverage has classes) the scorer refuses with UNAVAILABLE naming the
    counts. Above it, the notes returned name what was left out and any provider failures.
    """
    if coverage.answered == 0:
        if errors:
            raise errors[0]
        shape = f" ({expected})" if expected else ""
        raise UpstreamBadResponse(
            f"The scorer model gave no usable answer for any of the {coverage.total} {what}: "
            f"none had the expected format{shape}. Try again or use another model"
        )
    by_class = coverage.activating_total + coverage.non_activating_total > 0
    if by_class:
        counts = (
            f"{coverage.activating_answered}/{coverage.activating_total} activating and "
            f"{coverage.non_activating_answered}/{coverage.non_activating_total} "
            f"non-activating {what}"
        )
        lowest = min(
            _fraction(coverage.activating_answered, coverage.activating_total),
            _fraction(coverage.non_activating_answered, coverage.non_activating_total),
        )
    else:
        counts = f"{coverage.answered}/{coverage.total} {what}"
        lowest = _fraction(coverage.answered, coverage.total)
    cause = (
        f"{len(errors)} LLM call(s) failed ({errors[0].message})"
        if errors
        else "the other answers did not have the expected format"
        + (f" ({expected})" if expected else "")
    )
    if lowest < min_answered:
        raise Unavailable(
            f"Only {counts} got a usable answer, below the floor of {min_answered:.0%}"
            f"{' per class' if by_class else ''} (minAnswered); {cause}. No score is reported "
            "from so few answers; try again or use another model"
        )
    if coverage.answered < coverage.total:
        return [f"Scored on the {counts} that got a usable answer; {cause}."]
    return []


def record_index(split: Split) -> Callable[[Sequence[str]], int]:
    """The request index of the record a delphi classifier output stands for.

    delphi's samples and outputs carry the example's own ``str_tokens`` list object and
    nothing else of it, so that list's identity is what links an output back to its record.
    An output whose list is not one of the split's (delphi copied it, or a filler replaced
    it) has lost its record: that is a bug, raised here as one (INTERNAL) rather than an
    index of -1 that a caller would read as the last record."""
    by_tokens = {id(example.str_tokens): i for i, example in enumerate(split.in_order)}
    if len(by_tokens) != len(split.in_order):
        raise RuntimeError("two examples of a split share one token list")

    def index_of(str_tokens: Sequence[str]) -> int:
        index = by_tokens.get(id(str_tokens))
        if index is None:
            raise RuntimeError(
                "a classifier output's tokens are not any record's of the request: its "
                "record index is lost"
            )
        return index

    return index_of


def classifier_result(
    items: list[pb.ScoreBreakdownItem],
    errors: Sequence[AutoInterpError],
    notes: list[str],
    min_answered: float,
    clusters: Sequence[int],
    *,
    expected: str = CLASSIFIER_ANSWER_SHAPE,
) -> ScoreResult:
    """Balanced accuracy, every classifier metric and its interval, from breakdown items;
    ``clusters[i]`` is the prompt item i was shown in (the interval treats a prompt's items
    as correlated); ``expected`` is the answer shape the judge's prompt asks for."""
    coverage = coverage_of(items, by_class=True)
    notes = [*notes, *require_coverage(coverage, min_answered, errors, expected=expected)]
    answered = [i for i, item in enumerate(items) if item.HasField("prediction")]
    truth = [items[i].activating for i in answered]
    if len(set(truth)) < 2:
        kind = "activating" if truth[0] else "non-activating"
        raise UpstreamBadResponse(
            f"The scorer model answered only for {kind} examples; balanced accuracy needs "
            "answers for both kinds. Try again"
        )
    predicted = [items[i].prediction for i in answered]
    probabilities = [
        items[i].probability if items[i].HasField("probability") else None for i in answered
    ]
    classifier = metrics.classifier_metrics(
        truth, predicted, probabilities, unanswered=len(items) - len(answered)
    )
    small = metrics.small_sample_note(
        coverage.activating_answered, coverage.non_activating_answered
    )
    return ScoreResult(
        score=metrics.finite(classifier.balanced_accuracy, "Balanced accuracy"),
        breakdown=items,
        chance=BALANCED_ACCURACY_CHANCE,
        classifier=classifier,
        confidence_interval=metrics.balanced_accuracy_interval(
            truth, predicted, [clusters[i] for i in answered]
        ),
        notes=[*notes, *([small] if small else [])],
        coverage=coverage,
    )


def set_answer(
    item: pb.ScoreBreakdownItem | pb.ScoreFuzzDetectionBreakdownItem, output: ClassifierOutput
) -> None:
    """Copy a classifier output's answer (prediction, correctness, probability) onto a
    breakdown item of either shape; unanswered stays unset (null in JSON)."""
    if output.prediction is not None:
        item.prediction = bool(output.prediction)
        item.correct = bool(output.prediction) == bool(output.activating)
    probability = output.probability
    # Only a real probability: anything else (NaN, inf, out of range) is no probability.
    if isinstance(probability, int | float) and 0.0 <= probability <= 1.0:
        item.probability = float(probability)
