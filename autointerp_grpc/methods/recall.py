"""The recall scorer: an LLM judge says, per text, whether the explanation fits it (activating,
non-activating and fixed decoy texts).

The texts are laid out in prompts as detection's examples are (``balanced_layout``, seeded by
the records' content and ``seed``): the decoys count as non-activating there, so they are
spread like the real non-activating texts, and no position of a prompt, nor the caller's
record order, says which texts are activating. A constant ``Random(42)`` permutation of the
caller's order did: with activating records first, a judge answering by position scored 0.65.
The breakdown lists the records in request order, then the decoys in their fixed order."""

from __future__ import annotations

import random

from autointerp_grpc import prompts
from autointerp_grpc.errors import AutoInterpError
from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2 as pb
from autointerp_grpc.gen.params import RecallScorerParams
from autointerp_grpc.methods.classifiers import balanced_layout
from autointerp_grpc.methods.scorer_common import (
    bounded_gather,
    classifier_result,
)
from autointerp_grpc.methods.seeding import content_seed
from autointerp_grpc.methods.spec import ScoreContext, ScoreResult
from autointerp_grpc.methods.structured import StructuredOutput
from autointerp_grpc.offload import off_loop
from autointerp_grpc.records import example_token_count, str_tokens_of


async def run_recall(ctx: ScoreContext[RecallScorerParams]) -> ScoreResult:
    client = ctx.client
    assert client is not None
    p = ctx.params
    activating = ctx.split.activating_indices
    items = [
        pb.ScoreBreakdownItem(
            record_index=i,
            text="".join(str_tokens_of(e)),
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
    size = example_token_count(ctx.split.in_order)
    rng = random.Random(await off_loop(size, content_seed, p.seed, ctx.split, "recall"))
    batches = balanced_layout([item.activating for item in items], p.examples_per_prompt, rng)
    structured = StructuredOutput(prompts.RECALL_RESPONSE_FORMAT)

    async def judge(batch: list[int]) -> None:
        texts = [items[i].text for i in batch]
        try:
            response = await structured.generate(
                client, prompts.recall_messages(ctx.explanation, texts), temperature=0.0
            )
            answers = prompts.parse_recall_answer(response.text, len(batch))
        except (AutoInterpError, ValueError):
            return
        for i, answer in zip(batch, answers, strict=True):
            items[i].prediction = answer
            items[i].correct = answer == items[i].activating

    await bounded_gather([lambda b=b: judge(b) for b in batches], ctx.request_concurrency)
    prompt_of = {i: number for number, batch in enumerate(batches) for i in batch}
    real = [i for i, item in enumerate(items) if not item.decoy]
    # The headline is measured on the caller's records alone; the decoys are reported apart.
    result = classifier_result(
        [items[i] for i in real],
        client.errors,
        [],
        ctx.min_answered,
        [prompt_of[i] for i in real],
        expected='JSON {"answers": [true, false, ...]}, one boolean per text',
    )
    result.notes.append(structured.note)
    result.breakdown = items
    judged = [item.prediction for item in items if item.decoy and item.HasField("prediction")]
    if judged:
        result.extra_metrics["decoy_rejection"] = sum(not p for p in judged) / len(judged)
    return result
