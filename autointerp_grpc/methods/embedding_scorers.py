"""The embedding scorers: delphi's embedding scorer (ROC AUC of explanation-to-text similarity)
and its example-embedding scorer (explanation-free)."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import numpy as np

from autointerp_grpc.backends.embedding import EmbeddingBackend
from autointerp_grpc.delphi_compat import (
    ActivatingExample,
    EmbeddingOutput,
    ExampleEmbeddingBatch,
    ExampleEmbeddingScorer,
)
from autointerp_grpc.errors import InvalidArgument, UpstreamBadResponse
from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2 as pb
from autointerp_grpc.gen.params import EmbeddingScorerParams, ExampleEmbeddingScorerParams
from autointerp_grpc.methods import metrics
from autointerp_grpc.methods.seeding import content_seed
from autointerp_grpc.methods.spec import ScoreContext, ScoreResult
from autointerp_grpc.offload import off_loop
from autointerp_grpc.records import Split, example_token_count, str_tokens_of


async def embedding_similarities(
    split: Split, explanation: str, backend: EmbeddingBackend
) -> list[EmbeddingOutput]:
    """Similarities as delphi's EmbeddingScorer computes them, in request order.

    The texts are delphi's (each record's tokens joined; its examples_to_samples also copies
    every record's activations into a list, unused here, so the outputs are built directly);
    the encoding goes through the backend so it runs off the event loop, with the
    explanation and the texts in one encode call that concurrent requests share
    (EmbeddingScorer.__call__ would shuffle with the global random module and encode twice
    on the event loop).
    """
    size = example_token_count(split.in_order)
    # Joining every record's tokens into its text: off the loop when big (in a bulk run it
    # competes for the GIL with the other scorers' work and took 0.27 s on the loop).
    outputs = await off_loop(size, _outputs, split.in_order)
    similarities = await backend.explanation_similarities(explanation, [o.text for o in outputs])
    for output, similarity in zip(outputs, similarities, strict=True):
        output.similarity = similarity
    if not all(np.isfinite(float(o.similarity)) for o in outputs):
        raise UpstreamBadResponse("The embedding model produced a non-finite similarity")
    return outputs


def _outputs(examples: Sequence[Any]) -> list[EmbeddingOutput]:
    return [
        EmbeddingOutput(
            text=_plain(e),
            distance=e.quantile if isinstance(e, ActivatingExample) else e.distance,
        )
        for e in examples
    ]


def embedding_auc(outputs: Sequence[EmbeddingOutput]) -> float:
    """ROC AUC of similarity as a predictor of activating."""
    truth = [o.distance > 0 for o in outputs]
    similarities = [float(o.similarity) for o in outputs]
    return metrics.finite(metrics.roc_auc(truth, similarities), "The ROC AUC")


async def run_embedding(ctx: ScoreContext[EmbeddingScorerParams]) -> ScoreResult:
    assert ctx.embedding is not None
    outputs = await embedding_similarities(ctx.split, ctx.explanation, ctx.embedding)
    # The breakdown repeats every record's tokens: build it off the loop when big.
    size = example_token_count(ctx.split.in_order)
    return await off_loop(size, _embedding_result, ctx, outputs)


def _embedding_result(ctx: ScoreContext[Any], outputs: list[EmbeddingOutput]) -> ScoreResult:
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
    small = metrics.small_sample_note(sum(truth), len(truth) - sum(truth))
    return ScoreResult(
        score=embedding_auc(outputs),
        breakdown=items,
        chance=0.5,
        confidence_interval=metrics.auc_interval(truth, similarities),
        notes=[small] if small else [],
    )


# A query and at least one other record to compare it with, on each side.
EXAMPLE_EMBEDDING_MIN_ACTIVATING = 2
EXAMPLE_EMBEDDING_MIN_NON_ACTIVATING = 2
# Records each query is compared with on each side (delphi's number).
EXAMPLE_EMBEDDING_CONTEXT = 10
# Deltas this close to 0 are ties (half a hit): float noise of the model, not a decision.
DELTA_TIE = 1e-6


def example_batches(
    split: Split, number_batches: int, rng: random.Random
) -> list[tuple[ExampleEmbeddingBatch, int]]:
    """delphi's example-embedding batches, with its sampling replaced and no markup.

    delphi 0.1.3 keeps min(n_activating, n_non_activating) non-activating records as context
    and queries with the rest, so 11+11, 12+11 or 20+15 records leave no query to draw and
    fail ("Sample larger than population"); and its activating queries are compared with
    themselves among their context. Here each batch draws one activating and one
    non-activating query, and compares each with up to 10 *other* records of each kind, so
    any request with two records of each kind works. Returns (batch, activating query
    index): batches that share a query are not independent.

    The texts are the records' plain text. delphi highlights the activating ones' real
    peaks and "incorrect" tokens in the others: an explanation-free comparison of such texts
    measures the highlight marks, not the text (identical texts scored 1.0). Neither query's
    own text is context on either side (a record is no evidence about its twin); a batch
    left with no context on a side is not drawn.
    """
    activating = [_plain(e) for e in split.activating]
    negatives = [_plain(e) for e in split.non_activating]
    batches = []
    for _ in range(number_batches):
        q_pos, q_neg = rng.randrange(len(activating)), rng.randrange(len(negatives))
        queries = {activating[q_pos], negatives[q_neg]}
        others = [t for i, t in enumerate(activating) if i != q_pos and t not in queries]
        contrast = [t for i, t in enumerate(negatives) if i != q_neg and t not in queries]
        if not others or not contrast:
            continue
        others = rng.sample(others, min(EXAMPLE_EMBEDDING_CONTEXT, len(others)))
        contrast = rng.sample(contrast, min(EXAMPLE_EMBEDDING_CONTEXT, len(contrast)))
        batch = ExampleEmbeddingBatch(
            negative_examples=contrast,
            positive_examples=others,
            positive_query=activating[q_pos],
            negative_query=negatives[q_neg],
            quantile_positive_query=split.activating[q_pos].quantile,
            distance_negative_query=float(split.non_activating[q_neg].distance),
        )
        batches.append((batch, q_pos))
    return batches


class _PassModel:
    """The backend's model as delphi's ExampleEmbeddingScorer uses it (``encode``,
    ``similarity``), encoding in the backend's passes of bounded size (delphi's own call
    would run all 22 texts of a batch in one pass)."""

    def __init__(self, backend: EmbeddingBackend) -> None:
        self._backend = backend

    def encode(self, texts: Sequence[str], **_: Any) -> np.ndarray:
        return self._backend.encode_now(texts)

    def similarity(self, a: Any, b: Any) -> Any:
        return self._backend.model.similarity(a, b)


def _plain(example: Any) -> str:
    return "".join(str_tokens_of(example))


def _decision(delta: float) -> float:
    """1 for a delta on the right side of 0, 0 on the wrong side, 1/2 for a tie."""
    return 1.0 if delta > DELTA_TIE else 0.0 if delta < -DELTA_TIE else 0.5


async def run_example_embedding(ctx: ScoreContext[ExampleEmbeddingScorerParams]) -> ScoreResult:
    assert ctx.embedding is not None
    n_act, n_non = len(ctx.split.activating), len(ctx.split.non_activating)
    if n_act < EXAMPLE_EMBEDDING_MIN_ACTIVATING or n_non < EXAMPLE_EMBEDDING_MIN_NON_ACTIVATING:
        raise InvalidArgument(
            f"the example_embedding scorer needs at least {EXAMPLE_EMBEDDING_MIN_ACTIVATING} "
            f"activating and {EXAMPLE_EMBEDDING_MIN_NON_ACTIVATING} non-activating records "
            f"(got {n_act} and {n_non})"
        )
    # delphi's deltas, with its encode calls in the backend's bounded passes.
    scorer = ExampleEmbeddingScorer(_PassModel(ctx.embedding))

    def compute() -> list[tuple[Any, int, float, float]]:
        # The sampling seed mixed with the records' content (methods.seeding): a constant
        # seed drew the same query and context indices for every latent of one size.
        seed = content_seed(ctx.params.seed, ctx.split, "example_embedding")
        batches = example_batches(ctx.split, ctx.params.batches, random.Random(seed))
        return [(b, q, *scorer.compute_batch_deltas(b)) for b, q in batches]

    deltas = await ctx.embedding.run(compute)
    if not deltas:
        raise InvalidArgument(
            "activations: the example_embedding scorer could draw no batch: every draw left a "
            "query with no record of another text to compare it with on one side (the "
            "activating or non-activating records repeat too few distinct texts)"
        )
    if not all(np.isfinite([p for _, _, p, _ in deltas] + [n for _, _, _, n in deltas])):
        raise UpstreamBadResponse("The embedding model produced a non-finite similarity")
    items = []
    hits: list[float] = []
    for batch, _, positive, negative in deltas:
        # Two decisions per batch: the activating query sits closer to the activating examples
        # (delta_positive > 0), and the non-activating query does not (delta_negative < 0).
        hit = (_decision(positive) + _decision(-negative)) / 2
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
    notes = [note for note in [metrics.small_sample_note(n_act, n_non)] if note]
    if len(deltas) < ctx.params.batches:
        notes.append(
            f"{ctx.params.batches - len(deltas)} of {ctx.params.batches} batches not drawn: "
            "a query had no record of another text to compare it with on one side"
        )
    return ScoreResult(
        score=metrics.finite(float(np.mean(hits)), "Example-embedding accuracy"),
        breakdown=items,
        chance=0.5,
        # Batches that share an activating query are one cluster.
        confidence_interval=metrics.mean_interval(hits, [q for _, q, _, _ in deltas]),
        notes=notes,
    )
