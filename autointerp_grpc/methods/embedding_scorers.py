"""The embedding scorers: delphi's embedding scorer (ROC AUC of explanation-to-text similarity)
and its example-embedding scorer (explanation-free)."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import numpy as np

from autointerp_grpc.backends.embedding import EmbeddingBackend
from autointerp_grpc.delphi_compat import (
    EmbeddingOutput,
    ExampleEmbeddingBatch,
    ExampleEmbeddingScorer,
    embedding_samples,
    highlighted_text,
)
from autointerp_grpc.errors import InvalidArgument, UpstreamBadResponse
from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2 as pb
from autointerp_grpc.methods import metrics
from autointerp_grpc.methods.spec import ScoreContext, ScoreResult
from autointerp_grpc.offload import off_loop
from autointerp_grpc.records import Split, example_token_count


async def embedding_similarities(
    split: Split, explanation: str, backend: EmbeddingBackend
) -> list[EmbeddingOutput]:
    """Similarities as delphi's EmbeddingScorer computes them, in request order.

    delphi's samples (texts, distances) are used as they are; the encoding goes through the
    backend so it runs off the event loop, with the explanation and the texts in one encode
    call that concurrent requests share (EmbeddingScorer.__call__ would shuffle with the
    global random module and encode twice on the event loop).
    """
    size = example_token_count(split.in_order)
    # Joining every record's tokens into its text: off the loop when big (in a bulk run it
    # competes for the GIL with the other scorers' work and took 0.27 s on the loop).
    samples = await off_loop(size, embedding_samples, split.in_order)
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


async def run_embedding(ctx: ScoreContext) -> ScoreResult:
    assert ctx.embedding is not None
    outputs = await embedding_similarities(ctx.split, ctx.explanation, ctx.embedding)
    # The breakdown repeats every record's tokens: build it off the loop when big.
    size = example_token_count(ctx.split.in_order)
    return await off_loop(size, _embedding_result, ctx, outputs)


def _embedding_result(ctx: ScoreContext, outputs: list[EmbeddingOutput]) -> ScoreResult:
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
HIGHLIGHT_THRESHOLD = 0.3  # delphi's, for this scorer


def example_batches(
    split: Split, number_batches: int, rng: random.Random
) -> list[tuple[ExampleEmbeddingBatch, int]]:
    """delphi's example-embedding batches, with its sampling replaced.

    delphi 0.1.3 keeps min(n_activating, n_non_activating) non-activating records as context
    and queries with the rest, so 11+11, 12+11 or 20+15 records leave no query to draw and
    fail ("Sample larger than population"); and its activating queries are compared with
    themselves among their context. Here each batch draws one activating and one
    non-activating query, and compares each with up to 10 *other* records of each kind, so
    any request with two records of each kind works. Returns (batch, activating query
    index): batches that share a query are not independent.
    """
    activating, negatives = split.activating, split.non_activating
    batches = []
    for _ in range(number_batches):
        q_pos, q_neg = rng.randrange(len(activating)), rng.randrange(len(negatives))
        positive_query = activating[q_pos]
        n_active = int((positive_query.activations > 0).sum().item())
        others = [e for i, e in enumerate(activating) if i != q_pos]
        contrast = [e for i, e in enumerate(negatives) if i != q_neg]
        others = rng.sample(others, min(EXAMPLE_EMBEDDING_CONTEXT, len(others)))
        contrast = rng.sample(contrast, min(EXAMPLE_EMBEDDING_CONTEXT, len(contrast)))

        def text(example: Any, n_incorrect: int) -> str:
            shown, _ = highlighted_text(
                example, n_incorrect=n_incorrect, threshold=HIGHLIGHT_THRESHOLD, highlighted=True
            )
            return shown

        batch = ExampleEmbeddingBatch(
            negative_examples=[text(e, n_active) for e in contrast],
            positive_examples=[text(e, 0) for e in others],
            positive_query=text(positive_query, 0),
            negative_query=text(negatives[q_neg], n_active),
            quantile_positive_query=positive_query.quantile,
            distance_negative_query=float(negatives[q_neg].distance),
        )
        batches.append((batch, q_pos))
    return batches


async def run_example_embedding(ctx: ScoreContext) -> ScoreResult:
    assert ctx.embedding is not None
    n_act, n_non = len(ctx.split.activating), len(ctx.split.non_activating)
    if n_act < EXAMPLE_EMBEDDING_MIN_ACTIVATING or n_non < EXAMPLE_EMBEDDING_MIN_NON_ACTIVATING:
        raise InvalidArgument(
            f"the example_embedding scorer needs at least {EXAMPLE_EMBEDDING_MIN_ACTIVATING} "
            f"activating and {EXAMPLE_EMBEDDING_MIN_NON_ACTIVATING} non-activating records "
            f"(got {n_act} and {n_non})"
        )
    scorer = ExampleEmbeddingScorer(ctx.embedding.model)
    rng = random.Random(ctx.params.seed)

    def compute() -> list[tuple[Any, int, float, float]]:
        batches = example_batches(ctx.split, ctx.params.batches, rng)
        return [(b, q, *scorer.compute_batch_deltas(b)) for b, q in batches]

    deltas = await ctx.embedding.run(compute)
    items = []
    hits: list[float] = []
    for batch, _, positive, negative in deltas:
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
    small = metrics.small_sample_note(n_act, n_non)
    return ScoreResult(
        score=metrics.finite(float(np.mean(hits)), "Example-embedding accuracy"),
        breakdown=items,
        chance=0.5,
        # Batches that share an activating query are one cluster.
        confidence_interval=metrics.mean_interval(hits, [q for _, q, _, _ in deltas]),
        notes=[small] if small else [],
    )
