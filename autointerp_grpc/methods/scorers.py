"""The scorers: delphi's detection, fuzzing, embedding, simulation, intruder and
example-embedding scorers, and an LLM-judge recall scorer.

Every scorer turns its per-item results into a ScoreResult: a finite headline score, a
breakdown, and, where the items are a sample, a 95% bootstrap confidence interval. Items the
model gave no usable answer for are marked unanswered and left out of every number; nothing
answered at all is an error that says why (the provider's own error when there was one).
"""

from __future__ import annotations

import asyncio
import json
import random
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import numpy as np

from autointerp_grpc import prompts
from autointerp_grpc.backends.embedding import EmbeddingBackend
from autointerp_grpc.backends.llm import LLMClient
from autointerp_grpc.delphi_compat import (
    JSON_MAX_TOKENS,
    ClassifierOutput,
    EmbeddingOutput,
    ExampleEmbeddingScorer,
    IntruderResult,
    IntruderScorer,
    IntruderSentence,
    Latent,
    LatentRecord,
    NeuronSimulator,
    embedding_samples,
)
from autointerp_grpc.errors import AutoInterpError, InvalidArgument, UpstreamBadResponse
from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2 as pb
from autointerp_grpc.methods import metrics
from autointerp_grpc.methods.classifiers import Detection, Fuzzing
from autointerp_grpc.methods.spec import MethodSpec, Metric, Needs, ScoreContext, ScoreResult
from autointerp_grpc.records import Split

T = TypeVar("T")

SIMULATION_MAX = 10.0
LOGPROBS_MISSING_NOTE = (
    "The provider returned no log probabilities for this model, so per-example probabilities "
    "and AUC are not available; the score uses the answers alone."
)


async def _bounded_gather(calls: Sequence[Callable[[], Awaitable[T]]], limit: int) -> list[T]:
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


def _index_by_tokens(split: Split) -> dict[int, int]:
    # delphi's classifier samples carry the example's own str_tokens list object, which maps
    # each output back to its record in the request.
    return {id(example.str_tokens): i for i, example in enumerate(split.in_order)}


# --- detection and fuzz ---------------------------------------------------------------------


async def run_classifier(
    split: Split,
    explanation: str,
    client: LLMClient,
    *,
    fuzz: bool,
    examples_per_prompt: int = 5,
    use_logprobs: bool = False,
    seed: int = 42,
    concurrency: int = 1,
) -> list[ClassifierOutput]:
    """delphi's fuzzing or detection scorer over the split records."""
    record = LatentRecord(Latent("latent", 0))
    record.test = split.activating
    record.not_active = split.non_activating
    record.explanation = explanation
    scorer_cls = Fuzzing if fuzz else Detection
    scorer = scorer_cls(
        client,
        verbose=False,
        n_examples_shown=examples_per_prompt,
        log_prob=use_logprobs,
        temperature=0.0,
    )
    scorer.rng = random.Random(seed)
    scorer.request_concurrency = concurrency
    return (await scorer(record)).score


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


def _classifier_item(output: ClassifierOutput, index: int) -> pb.ScoreBreakdownItem:
    item = pb.ScoreBreakdownItem(
        record_index=index,
        text="".join(output.str_tokens),
        str_tokens=output.str_tokens,
        activating=bool(output.activating),
    )
    set_answer(item, output)
    return item


def _classifier_scorer(fuzz: bool) -> Callable[[ScoreContext], Awaitable[ScoreResult]]:
    async def run(ctx: ScoreContext) -> ScoreResult:
        assert ctx.client is not None
        p = ctx.params
        outputs = await run_classifier(
            ctx.split,
            ctx.explanation,
            ctx.client,
            fuzz=fuzz,
            examples_per_prompt=p.examples_per_prompt,
            use_logprobs=p.use_logprobs,
            seed=p.seed,
            concurrency=ctx.request_concurrency,
        )
        index = _index_by_tokens(ctx.split)
        items = [_classifier_item(o, index.get(id(o.str_tokens), -1)) for o in outputs]
        notes = [LOGPROBS_MISSING_NOTE] if p.use_logprobs and ctx.client.logprobs_missing else []
        return classifier_result(items, ctx.client.errors, notes)

    return run


# --- embedding ------------------------------------------------------------------------------


async def embedding_similarities(
    split: Split, explanation: str, backend: EmbeddingBackend
) -> list[EmbeddingOutput]:
    """Similarities as delphi's EmbeddingScorer computes them, in request order.

    delphi's samples (texts, distances) are used as they are; the encoding goes through the
    backend so it runs off the event loop, with the explanation and the texts in one encode
    call that concurrent requests share (EmbeddingScorer.__call__ would shuffle with the
    global random module and encode twice on the event loop).
    """
    samples = embedding_samples(split.in_order)
    similarities = await backend.explanation_similarities(explanation, [s.text for s in samples])
    outputs = []
    for sample, similarity in zip(samples, similarities, strict=True):
        sample.data.similarity = similarity
        outputs.append(sample.data)
    if not all(np.isfinite(float(o.similarity)) for o in outputs):
        raise UpstreamBadResponse("The embedding model produced a non-finite similarity")
    return outputs


def embedding_auc(outputs: Sequence[EmbeddingOutput]) -> float:
    """ROC AUC of similarity as a predictor of activating."""
    truth = [o.distance > 0 for o in outputs]
    similarities = [float(o.similarity) for o in outputs]
    return metrics.finite(metrics.roc_auc(truth, similarities), "The ROC AUC")


async def _score_embedding(ctx: ScoreContext) -> ScoreResult:
    assert ctx.embedding is not None
    outputs = await embedding_similarities(ctx.split, ctx.explanation, ctx.embedding)
    truth = [o.distance > 0 for o in outputs]
    similarities = [float(o.similarity) for o in outputs]
    items = [
        pb.ScoreBreakdownItem(
            record_index=i,
            text=o.text,
            str_tokens=ctx.split.in_order[i].str_tokens,
            activating=t,
            similarity=s,
        )
        for i, (o, t, s) in enumerate(zip(outputs, truth, similarities, strict=True))
    ]
    return ScoreResult(
        score=embedding_auc(outputs),
        breakdown=items,
        confidence_interval=metrics.auc_interval(truth, similarities),
    )


# --- simulation -----------------------------------------------------------------------------

_SIMULATION_FORMAT: dict[str, Any] = {
    "type": "json_schema",
    "json_schema": {
        "name": "simulated_activations",
        "schema": {
            "type": "object",
            "properties": {
                "to_find": {"type": "string"},
                "document": {"type": "string"},
                "activations": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "token": {"type": "string"},
                            "activation": {"type": "number"},
                        },
                        "required": ["token", "activation"],
                    },
                },
            },
            "required": ["activations"],
        },
    },
}
_FENCE_RE = re.compile(r"^```(?:json)?\s*|\s*```$")


def parse_simulation(text: str, n_tokens: int) -> list[float]:
    """The simulated activations in a JSON answer; ValueError unless there is exactly one
    number in [0, 10] per token (delphi's own parser answers zeros instead, which would be
    indistinguishable from a real prediction)."""
    data = json.loads(_FENCE_RE.sub("", text.strip()))
    entries = data.get("activations") if isinstance(data, dict) else None
    if not isinstance(entries, list) or len(entries) != n_tokens:
        got = len(entries) if isinstance(entries, list) else "no"
        raise ValueError(f"{got} activations for {n_tokens} tokens")
    values = []
    for entry in entries:
        value = entry.get("activation") if isinstance(entry, dict) else None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError("an activation is not a number")
        if not 0 <= value <= SIMULATION_MAX:
            raise ValueError("an activation is outside 0 to 10")
        values.append(float(value))
    return values


async def _score_simulation(ctx: ScoreContext) -> ScoreResult:
    client = ctx.client
    assert client is not None
    simulator = NeuronSimulator(client, ctx.explanation, use_logprobs=False)
    structured = [bool(ctx.params.structured_output)]
    notes: list[str] = []

    async def simulate(tokens: list[str]) -> list[float] | None:
        prompt = simulator._make_json_prompt(tokens)
        kwargs: dict[str, Any] = {"max_tokens": JSON_MAX_TOKENS}
        if structured[0]:
            kwargs["response_format"] = _SIMULATION_FORMAT
        try:
            response = await client.generate(prompt, **kwargs)
        except InvalidArgument:
            if not structured[0]:
                return None
            # The provider rejected the request; most often it does not do structured output.
            structured[0] = False
            notes.append("The provider rejected structured output; asked for plain JSON instead.")
            return await simulate(tokens)
        except AutoInterpError:
            return None
        try:
            return parse_simulation(response.text, len(tokens))
        except (ValueError, TypeError, AttributeError):
            return None

    records = ctx.split.in_order
    predictions = await _bounded_gather(
        [lambda e=e: simulate(list(e.str_tokens)) for e in records], ctx.request_concurrency
    )
    return _simulation_result(ctx.split, predictions, client.errors, notes)


def _simulation_result(
    split: Split,
    predictions: list[list[float] | None],
    errors: Sequence[AutoInterpError],
    notes: list[str],
) -> ScoreResult:
    records = split.in_order
    activating = split.activating_indices
    items: list[pb.ScoreBreakdownItem] = []
    answered: list[tuple[list[float], list[float]]] = []
    for i, (example, predicted) in enumerate(zip(records, predictions, strict=True)):
        true = example.activations.tolist()
        item = pb.ScoreBreakdownItem(
            record_index=i,
            text="".join(example.str_tokens),
            str_tokens=example.str_tokens,
            activating=i in activating,
        )
        if predicted is not None:
            item.predicted_activations.extend(predicted)
            correlation = metrics.pearson(true, predicted)
            if correlation is not None:
                item.correlation = correlation
            answered.append((true, predicted))
        items.append(item)
    if not answered:
        if errors:
            raise errors[0]
        raise UpstreamBadResponse(
            "The simulator model gave no usable answer for any record (each must list one "
            "activation from 0 to 10 per token)"
        )
    if len(answered) < len(records):
        notes.append(f"{len(records) - len(answered)} record(s) unanswered and left out.")

    def pooled(indices: Sequence[int]) -> float:
        true = [v for i in indices for v in answered[i][0]]
        predicted = [v for i in indices for v in answered[i][1]]
        value = metrics.pearson(true, predicted)
        if value is None:
            raise ValueError("constant")
        return value

    try:
        score = pooled(range(len(answered)))
    except ValueError:
        score = 0.0
        notes.append(
            "The correlation is undefined (the simulated or the true activations are constant "
            "over the answered records); reported as 0."
        )
    return ScoreResult(
        score=metrics.finite(score, "The correlation", low=-1.0),
        breakdown=items,
        confidence_interval=metrics.bootstrap_interval(len(answered), pooled),
        notes=notes,
    )


# --- intruder -------------------------------------------------------------------------------

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
        return await _bounded_gather(
            [lambda s=s: self._generate(s) for s in samples], self.request_concurrency
        )

    async def _generate(self, sample: IntruderSentence) -> IntruderResult:
        result = await super()._generate(sample)
        if result.sample is None:
            return IntruderResult(
                sample=sample,
                prediction=_UNANSWERED,
                correct_index=sample.intruder_index,
                correct=False,
            )
        return result


async def _score_intruder(ctx: ScoreContext) -> ScoreResult:
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
    correct: list[bool] = []
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
            correct.append(bool(result.correct))
        items.append(item)
    if not correct:
        if ctx.client.errors:
            raise ctx.client.errors[0]
        raise UpstreamBadResponse(
            "The scorer model gave no usable answer ('[RESPONSE]: <index>') for any prompt"
        )
    return ScoreResult(
        score=metrics.finite(float(np.mean(correct)), "Intruder accuracy"),
        breakdown=items,
        confidence_interval=metrics.mean_interval([float(c) for c in correct]),
    )


# --- example embedding ----------------------------------------------------------------------

EXAMPLE_EMBEDDING_MIN_ACTIVATING = 10
EXAMPLE_EMBEDDING_MIN_NON_ACTIVATING = 11


async def _score_example_embedding(ctx: ScoreContext) -> ScoreResult:
    assert ctx.embedding is not None
    n_act, n_non = len(ctx.split.activating), len(ctx.split.non_activating)
    if n_act < EXAMPLE_EMBEDDING_MIN_ACTIVATING or n_non < EXAMPLE_EMBEDDING_MIN_NON_ACTIVATING:
        raise InvalidArgument(
            f"the example_embedding scorer needs at least {EXAMPLE_EMBEDDING_MIN_ACTIVATING} "
            f"activating and {EXAMPLE_EMBEDDING_MIN_NON_ACTIVATING} non-activating records "
            f"(got {n_act} and {n_non})"
        )
    record = LatentRecord(Latent("latent", 0))
    record.train = ctx.split.activating
    record.test = ctx.split.activating
    record.not_active = ctx.split.non_activating
    scorer = ExampleEmbeddingScorer(ctx.embedding.model, seed=ctx.params.seed)

    def compute() -> list[tuple[Any, float, float]]:
        batches = scorer._create_batches(record, number_batches=ctx.params.batches)
        return [(b, *scorer.compute_batch_deltas(b)) for b in batches]

    deltas = await ctx.embedding.run(compute)
    items = []
    hits: list[float] = []
    for batch, positive, negative in deltas:
        # Two decisions per batch: the activating query sits closer to the activating examples
        # (delta_positive > 0), and the non-activating query does not (delta_negative < 0).
        hit = ((positive > 0) + (negative < 0)) / 2
        hits.append(hit)
        items.append(
            pb.ScoreBreakdownItem(
                record_index=-1,
                text=batch.positive_query,
                delta_positive=float(positive),
                delta_negative=float(negative),
                correct=hit == 1.0,
            )
        )
    return ScoreResult(
        score=metrics.finite(float(np.mean(hits)), "Example-embedding accuracy"),
        breakdown=items,
        confidence_interval=metrics.mean_interval(hits),
    )


# --- recall (LLM judge) ---------------------------------------------------------------------


async def _score_recall(ctx: ScoreContext) -> ScoreResult:
    client = ctx.client
    assert client is not None
    p = ctx.params
    activating = ctx.split.activating_indices
    items = [
        pb.ScoreBreakdownItem(
            record_index=i,
            text="".join(e.str_tokens),
            str_tokens=e.str_tokens,
            activating=i in activating,
        )
        for i, e in enumerate(ctx.split.in_order)
    ]
    if p.include_decoys:
        items += [
            pb.ScoreBreakdownItem(record_index=-1, text=t, activating=False, decoy=True)
            for t in prompts.RECALL_DECOYS
        ]
    order = list(range(len(items)))
    random.Random(42).shuffle(order)
    k = p.examples_per_prompt
    batches = [order[i : i + k] for i in range(0, len(order), k)]

    async def judge(batch: list[int]) -> None:
        texts = [items[i].text for i in batch]
        try:
            response = await client.generate(
                prompts.recall_messages(ctx.explanation, texts),
                temperature=0.0,
                response_format=prompts.RECALL_RESPONSE_FORMAT,
            )
            answers = prompts.parse_recall_answer(response.text, len(batch))
        except (AutoInterpError, ValueError):
            return
        for i, answer in zip(batch, answers, strict=True):
            items[i].prediction = answer
            items[i].correct = answer == items[i].activating

    await _bounded_gather([lambda b=b: judge(b) for b in batches], ctx.request_concurrency)
    return classifier_result(items, client.errors, [])


_CLASSIFIER_METRIC = Metric("balanced_accuracy", 0.0, 1.0, 0.5)

SCORERS: tuple[MethodSpec, ...] = (
    MethodSpec(
        name="detection",
        kind=pb.METHOD_KIND_SCORER,
        description="delphi's detection scorer: does each example contain what the "
        "explanation describes?",
        needs=Needs(llm=True, non_activating=True, logprobs=True, explanation=True),
        run=_classifier_scorer(fuzz=False),
        metric=_CLASSIFIER_METRIC,
    ),
    MethodSpec(
        name="fuzz",
        kind=pb.METHOD_KIND_SCORER,
        description="delphi's fuzzing scorer: are the highlighted tokens of each example the "
        "ones the explanation describes?",
        needs=Needs(llm=True, non_activating=True, logprobs=True, explanation=True),
        run=_classifier_scorer(fuzz=True),
        metric=_CLASSIFIER_METRIC,
    ),
    MethodSpec(
        name="embedding",
        kind=pb.METHOD_KIND_SCORER,
        description="delphi's embedding scorer: ROC AUC of explanation-to-text similarity, "
        "activating vs non-activating.",
        needs=Needs(embedding_model=True, non_activating=True, explanation=True),
        run=_score_embedding,
        metric=Metric("roc_auc", 0.0, 1.0, 0.5),
    ),
    MethodSpec(
        name="simulation",
        kind=pb.METHOD_KIND_SCORER,
        description="OpenAI-style simulation (delphi's simulator, JSON mode): correlation of "
        "predicted (0-10) and true activations, pooled over all tokens.",
        needs=Needs(llm=True, non_activating=True, explanation=True),
        run=_score_simulation,
        metric=Metric("pearson_correlation", -1.0, 1.0, 0.0),
    ),
    MethodSpec(
        name="intruder",
        kind=pb.METHOD_KIND_SCORER,
        description="delphi's intruder scorer (explanation-free): can the model spot the "
        "non-activating example among activating ones?",
        needs=Needs(llm=True, non_activating=True),
        run=_score_intruder,
        metric=Metric("accuracy", 0.0, 1.0, 0.2),
    ),
    MethodSpec(
        name="example_embedding",
        kind=pb.METHOD_KIND_SCORER,
        description="delphi's example-embedding scorer (explanation-free): do activating "
        "examples embed closer to each other than to non-activating ones?",
        needs=Needs(embedding_model=True, non_activating=True),
        run=_score_example_embedding,
        metric=Metric("accuracy", 0.0, 1.0, 0.5),
    ),
    MethodSpec(
        name="recall",
        kind=pb.METHOD_KIND_SCORER,
        description="An LLM judge says, per text, whether the explanation fits it (activating, "
        "non-activating and fixed decoy texts); balanced accuracy.",
        needs=Needs(llm=True, non_activating=True, explanation=True),
        run=_score_recall,
        metric=_CLASSIFIER_METRIC,
    ),
)
