"""The embedding scorers: delphi's embedding scorer (ROC AUC of explanation-to-text similarity)
and its example-embedding scorer (explanation-free)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from autointerp_grpc.backends.embedding import EmbeddingBackend
from autointerp_grpc.delphi_compat import (
    EmbeddingOutput,
    ExampleEmbeddingScorer,
    Latent,
    LatentRecord,
    embedding_samples,
)
from autointerp_grpc.errors import InvalidArgument, UpstreamBadResponse
from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2 as pb
from autointerp_grpc.methods import metrics
from autointerp_grpc.methods.spec import ScoreContext, ScoreResult
from autointerp_grpc.records import Split


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


async def run_embedding(ctx: ScoreContext) -> ScoreResult:
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


EXAMPLE_EMBEDDING_MIN_ACTIVATING = 10
EXAMPLE_EMBEDDING_MIN_NON_ACTIVATING = 11


async def run_example_embedding(ctx: ScoreContext) -> ScoreResult:
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
