"""delphi's intruder scorer (explanation-free): can the model spot the non-activating example
among activating ones? Unusable answers are unanswered, never wrong.

delphi's prompt format, answer parsing and metric are kept; how each prompt is laid out is not
(``intruder_prompts``): delphi's layout lets a judge that never reads the examples' content
find the intruder by how it is highlighted or where it sits (DESIGN.md §3a, issue 18 item 3).
"""

from __future__ import annotations

import bisect
import random
from collections.abc import Sequence

import numpy as np

from autointerp_grpc.delphi_compat import (
    ActivatingExample,
    IntruderResult,
    IntruderScorer,
    IntruderSentence,
    Latent,
    LatentRecord,
    NonActivatingExample,
    ScorerResult,
    highlight_tokens,
)
from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2 as pb
from autointerp_grpc.gen.params import IntruderScorerParams
from autointerp_grpc.methods import metrics
from autointerp_grpc.methods.classifiers import correct_highlight, highlight_spans, place_spans
from autointerp_grpc.methods.scorer_common import (
    bounded_gather,
    coverage_of,
    require_coverage,
)
from autointerp_grpc.methods.seeding import content_seed
from autointerp_grpc.methods.spec import ScoreContext, ScoreResult
from autointerp_grpc.offload import off_loop
from autointerp_grpc.records import example_token_count, str_tokens_of

_UNANSWERED = -1
THRESHOLD = 0.3
"""delphi's highlight rule for the real examples: tokens at 0.3 of the record's maximum."""


def real_examples_per_prompt(n_activating: int, examples_per_prompt: int) -> int:
    """How many activating examples each prompt shows beside its intruder.

    delphi shows ``min(examples_per_prompt - 1, n_activating)``. Here one activating record
    is always left out of each prompt (when there are two or more), because the intruder's
    highlight copies the shape of a record *not* shown beside it (see
    :func:`intruder_prompts`): with every activating record on show, that shape would repeat
    one in the prompt, and a judge picking the example whose shape repeats would find it.
    """
    if n_activating <= 1:
        return n_activating
    return min(examples_per_prompt - 1, n_activating - 1)


class _ByLength:
    """Activating records' indices grouped by token count, to find a record of the length
    nearest a given one."""

    def __init__(self, lengths: Sequence[int]) -> None:
        self.groups: dict[int, list[int]] = {}
        for index, length in enumerate(lengths):
            self.groups.setdefault(length, []).append(index)
        self.sorted = sorted(self.groups)

    def nearest(self, length: int, excluded: set[int], rng: random.Random) -> int | None:
        """A record drawn uniformly among those not in ``excluded`` whose length is nearest
        ``length`` (both sides at equal distance count); None when all are excluded."""
        at = bisect.bisect_left(self.sorted, length)
        below, above = at - 1, at
        while below >= 0 or above < len(self.sorted):
            gap_below = length - self.sorted[below] if below >= 0 else None
            gap_above = self.sorted[above] - length if above < len(self.sorted) else None
            gap = min(g for g in (gap_below, gap_above) if g is not None)
            candidates = []
            if gap_below == gap:
                candidates += [i for i in self.groups[self.sorted[below]] if i not in excluded]
                below -= 1
            if gap_above == gap:
                candidates += [i for i in self.groups[self.sorted[above]] if i not in excluded]
                above += 1
            if candidates:
                return rng.choice(candidates)
        return None


def intruder_prompts(
    activating: Sequence[ActivatingExample],
    non_activating: Sequence[NonActivatingExample],
    examples_per_prompt: int,
    rng: random.Random,
) -> list[IntruderSentence]:
    """One prompt per non-activating record (as delphi): that record, the intruder, among
    :func:`real_examples_per_prompt` activating records drawn at random, at a position drawn
    uniformly over the prompt's places.

    Every example is highlighted the same way. The real examples keep delphi's rule
    (:func:`correct_highlight`). The intruder copies the highlight shape (its runs:
    :func:`highlight_spans`) of another activating record, one *not* shown in the prompt,
    drawn at random among those whose length is nearest the intruder's (the same length
    where there is one; otherwise :func:`place_spans` keeps the runs' sizes and relative
    places). So the intruder's highlight is a fresh draw from the same distribution of count,
    run lengths and positions as the real examples', never a copy of a sibling beside it,
    and nothing in it depends on the intruder's own activations.

    delphi instead highlights an intruder whose values are all at most 0 on as many tokens
    as the real examples have *non-zero* activations on average, one of them always token
    ``len - len // 4`` (issue 18: a judge picking that start scored 0.93 against chance 0.2);
    highlights an intruder with any positive value by its own activations (on dense latents
    its highlight count gives it away: 0.98 for the fewest-highlighted pick); turns a
    one-token intruder into its fixed filler sentence; and with its constant seed puts the
    intruder on the same places for every latent of one size. The layout's ``rng`` here is
    seeded from the records' content (``run_intruder``).
    """
    if not activating or not non_activating:
        raise ValueError("the intruder scorer needs activating and non-activating records")
    masks = [correct_highlight(example, THRESHOLD) for example in activating]
    tokens = [str_tokens_of(example) for example in activating]
    texts = [
        highlight_tokens(toks, mask.__getitem__) for toks, mask in zip(tokens, masks, strict=True)
    ]
    values = [example.activations.tolist() for example in activating]
    by_length = _ByLength([len(mask) for mask in masks])
    shown = real_examples_per_prompt(len(activating), examples_per_prompt)
    prompts = []
    for intruder in non_activating:
        chosen = rng.sample(range(len(activating)), shown)
        length = len(str_tokens_of(intruder))
        donor = by_length.nearest(length, set(chosen), rng)
        if donor is None:  # a single activating record: it is its own only shape
            donor = chosen[0]
        spans = place_spans(highlight_spans(masks[donor]), len(masks[donor]), length)
        marked = {i for start, size in spans for i in range(start, start + size)}
        intruder_text = highlight_tokens(str_tokens_of(intruder), marked.__contains__)
        place = rng.randrange(shown + 1)
        order: list[int | None] = [*chosen[:place], None, *chosen[place:]]
        prompts.append(
            IntruderSentence(
                examples=[intruder_text if i is None else texts[i] for i in order],
                intruder_index=place,
                chosen_quantile=activating[chosen[0]].quantile,
                activations=[
                    intruder.activations.tolist() if i is None else values[i] for i in order
                ],
                tokens=[str_tokens_of(intruder) if i is None else tokens[i] for i in order],
                intruder_distance=intruder.distance,
            )
        )
    return prompts


class Intruder(IntruderScorer):
    """delphi's IntruderScorer with its prompts laid out by :func:`intruder_prompts` (off the
    event loop for big requests), sent concurrently, and an unanswered prompt kept as such.

    delphi returns an empty ``IntruderResult()`` (correct=False) when the model's answer
    cannot be used, which would count as a wrong answer; here it is marked unanswered.
    """

    request_concurrency: int = 1

    async def __call__(self, record: LatentRecord) -> ScorerResult:
        size = example_token_count([*record.test, *record.not_active])
        samples = await off_loop(size, self._prepare_and_batch, record)
        return ScorerResult(record=record, score=await self._query(samples))

    def _prepare_and_batch(self, record: LatentRecord) -> list[IntruderSentence]:
        return intruder_prompts(record.test, record.not_active, self.n_examples_shown, self.rng)

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


async def run_intruder(ctx: ScoreContext[IntruderScorerParams]) -> ScoreResult:
    assert ctx.client is not None
    p = ctx.params
    record = LatentRecord(Latent("latent", 0))
    record.test = ctx.split.activating
    record.not_active = ctx.split.non_activating
    scorer = Intruder(
        ctx.client,
        n_examples_shown=p.examples_per_prompt,
        cot=p.chain_of_thought,
        temperature=0.0,
    )
    # The caller's seed mixed with the records' content: reproducible for one request, and
    # another layout for every latent, so a judge's position bias averages out over latents.
    size = example_token_count(ctx.split.in_order)
    scorer.rng = random.Random(await off_loop(size, content_seed, p.seed, ctx.split, "intruder"))
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
    notes = require_coverage(
        coverage,
        ctx.min_answered,
        ctx.client.errors,
        what="prompts",
        expected="reasoning, then [RESPONSE]: <the intruder's example number>",
    )
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
