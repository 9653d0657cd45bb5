"""delphi's intruder scorer (explanation-free): can the model spot the non-activating example
among activating ones? Unusable answers are unanswered, never wrong."""

from __future__ import annotations

import numpy as np

from autointerp_grpc.delphi_compat import (
    IntruderResult,
    IntruderScorer,
    IntruderSentence,
    Latent,
    LatentRecord,
)
from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2 as pb
from autointerp_grpc.methods import metrics
from autointerp_grpc.methods.scoring import (
    bounded_gather,
    coverage_of,
    require_coverage,
)
from autointerp_grpc.methods.spec import ScoreContext, ScoreResult

_UNANSWERED = -1


class Intruder(IntruderScorer):
    """delphi's IntruderScorer, keeping the batch of an unanswered prompt, with its prompts
    sent concurrently.

    delphi returns an empty ``IntruderResult()`` (correct=False) when the model's answer
    cannot be used, which would count as a wrong answer; here it is marked unanswered.
    """

    request_concurrency: int = 1

    async def _query(self, samples: list[IntruderSentence]) -> list[IntruderResult]:
        # delphi's IntruderScorer._query with its Semaphore(1) widened; gather keeps the order.
        return await bounded_gather(
            [lambda s=s: self._generate(s) for s in samples], self.request_concurrency
        )

    async def _generate(self, sample: IntruderSentence) -> IntruderResult:
        result = await super()._generate(sample)
        # delphi checks the answer against n_examples_shown, but a prompt shows fewer examples
        # when the latent has few activating records: an index past the last one is no
        # answer, not a wrong one.
        if result.sample is None or not 0 <= result.prediction < len(sample.examples):
            return IntruderResult(
                sample=sample,
                prediction=_UNANSWERED,
                correct_index=sample.intruder_index,
                correct=False,
            )
        return result


async def run_intruder(ctx: ScoreContext) -> ScoreResult:
    assert ctx.client is not None
    p = ctx.params
    record = LatentRecord(Latent("latent", 0))
    record.test = ctx.split.activating
    record.not_active = ctx.split.non_activating
    scorer = Intruder(
        ctx.client,
        n_examples_shown=p.examples_per_prompt,
        cot=p.chain_of_thought,
        seed=p.seed,
        temperature=0.0,
    )
    scorer.request_concurrency = ctx.request_concurrency
    results: list[IntruderResult] = (await scorer(record)).score
    items = []
    correct: list[float] = []
    for result in results:
        sample = result.sample
        assert sample is not None
        item = pb.ScoreBreakdownItem(
            record_index=-1,
            text="\n".join(sample.examples),
            intruder_index=sample.intruder_index,
        )
        if result.prediction != _UNANSWERED:
            item.predicted_index = result.prediction
            item.correct = bool(result.correct)
            correct.append(float(result.correct))
        items.append(item)
    coverage = coverage_of(items, by_class=False)
    notes = require_coverage(coverage, ctx.min_answered, ctx.client.errors, what="prompts")
    # A blind pick is right once in as many options as its prompt shows.
    chance = float(np.mean([1 / len(r.sample.examples) for r in results if r.sample]))
    small = metrics.small_sample_note(len(correct), len(correct))
    return ScoreResult(
        score=metrics.finite(float(np.mean(correct)), "Intruder accuracy"),
        breakdown=items,
        chance=chance,
        confidence_interval=metrics.mean_interval(correct),
        notes=[*notes, *([small] if small else [])],
        coverage=coverage,
    )
