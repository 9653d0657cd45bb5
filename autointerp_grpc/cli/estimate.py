"""``autointerp run --estimate`` and ``--max-cost``: what a run will cost before it starts, and
a run that stops when its budget is spent.

The estimate sends a sample of the features through the same ExplainAndScore request as the
run, as a dry run (``LlmOptions.dry_run``): the server renders every prompt the run would send
and counts its tokens, and makes no LLM call. Calls the server's response store already
answered are counted as such (they will cost nothing). The sample's counts per feature,
times the features still to do, are the projection; dollars come from the server's price table
(``AUTOINTERP_LLM__PRICES``), live and at a Batch API's discount.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TextIO

import grpc

from autointerp_grpc.client import bulk
from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2 as pb
from autointerp_grpc.pricing import DEFAULT_BATCH_DISCOUNT, DRY_RUN_COMPLETION_TOKENS
from autointerp_grpc.usage import Usage

BUDGET_REACHED = 3
"""``run``'s exit status when ``--max-cost`` stopped it (results so far kept)."""


class BudgetReached(bulk.FatalRunError):
    """The run spent its ``--max-cost``."""

    def __init__(self, message: str) -> None:
        super().__init__(message, grpc.StatusCode.RESOURCE_EXHAUSTED)


class CostUnknown(bulk.FatalRunError):
    """``--max-cost`` cannot be enforced: the server reports no cost for the calls."""

    def __init__(self, message: str) -> None:
        super().__init__(message, grpc.StatusCode.FAILED_PRECONDITION)


def sample(features: list[pb.Feature], size: int) -> list[pb.Feature]:
    """``size`` features spread evenly over ``features`` (all of them when there are no more),
    always the same ones for the same input."""
    if size >= len(features):
        return list(features)
    step = len(features) / size
    return [features[math.floor(i * step)] for i in range(size)]


@dataclass
class Estimate:
    """A dry run's counts over a sample, and the projection to the whole input."""

    sampled: int
    todo: int
    usage: Usage
    failed: int = 0
    notes: list[str] = field(default_factory=list)
    counter: str = "by the server"

    def per_feature(self, value: float) -> float:
        return value / self.sampled if self.sampled else 0.0

    def projected(self, value: float) -> float:
        return self.per_feature(value) * self.todo

    def print(self, out: TextIO, model: str) -> None:
        usage = self.usage
        print("\n== estimate (dry run: no LLM call was made)", file=out)
        print(
            f"sampled {self.sampled} of {self.todo} features to run; the server rendered "
            f"their prompts and counted the tokens ({model})",
            file=out,
        )
        rows = [
            ("", "per feature", "whole run"),
            *(
                (name, f"{self.per_feature(v):,.1f}", f"{self.projected(v):,.0f}")
                for name, v in (
                    ("LLM calls", usage.llm_calls),
                    ("prompt tokens", usage.prompt_tokens),
                    ("completion tokens", usage.completion_tokens),
                    ("already in the store", usage.cached_responses),
                )
            ),
        ]
        cost = usage.cost
        if cost is not None:
            batch = cost * (1 - DEFAULT_BATCH_DISCOUNT)
            live = ("dollars, live", f"{self.per_feature(cost):.6f}", f"{self.projected(cost):.2f}")
            rows.append(live)
            rows.append(
                (
                    f"dollars, batch (-{DEFAULT_BATCH_DISCOUNT:.0%})",
                    f"{self.per_feature(batch):.6f}",
                    f"{self.projected(batch):.2f}",
                )
            )
        width = [max(len(r[i]) for r in rows) for i in range(3)]
        for row in rows:
            print(
                f"{row[0].ljust(width[0])}  {row[1].rjust(width[1])}  {row[2].rjust(width[2])}",
                file=out,
            )
        if cost is None:
            print(
                "dollars: unknown (the server has no price for this model; set "
                "AUTOINTERP_LLM__PRICES on the server)",
                file=out,
            )
        print(
            f"prompt tokens are counted ({self.counter}); completion tokens are an assumption "
            f"({DRY_RUN_COMPLETION_TOKENS} a call)",
            file=out,
        )
        for note in self.notes:
            print(f"note: {note}", file=out)


async def estimate(
    servers: list[bulk.Server],
    template: pb.ExplainAndScoreRequest,
    todo: list[pb.Feature],
    sample_size: int,
) -> Estimate:
    """Dry-run a sample of ``todo`` (see the module's docstring)."""
    chosen = [f for f in sample(todo, sample_size) if bulk.local_error(f) is None]
    request = pb.ExplainAndScoreRequest()
    request.CopyFrom(template)
    request.llm.dry_run = True
    result = Estimate(sampled=len(chosen), todo=len(todo), usage=Usage())

    def finished(feature: pb.FeatureResult) -> None:
        # A dry run's answers are placeholders, so scorers fail on them: their calls are
        # counted all the same (the usage comes with the result). A feature that ends in an
        # error skipped the calls after it.
        if feature.HasField("error"):
            result.failed += 1

    runner = bulk.BulkRunner(
        servers,
        request,
        [bulk.Job(f) for f in chosen],
        batch_size=max(1, len(chosen)),
        streams=1,
        retries=0,
        stream_timeout=None,
        on_result=finished,
        on_usage=result.usage.add,
    )
    await runner.run()
    if result.failed:
        result.notes.append(
            f"{result.failed} sampled feature(s) ended in an error in the dry run (bad input, "
            "or an explainer that cannot read the placeholder answer): the calls after the "
            "error are not counted, so the projection is low"
        )
    return result


class Budget:
    """``--max-cost``: adds each result's usage and stops the run once the total reaches the
    budget, or at once when a call's cost is unknown (a budget that cannot be counted is not
    kept)."""

    def __init__(self, runner: bulk.BulkRunner, limit: float, total: Usage) -> None:
        self.runner = runner
        self.limit = limit
        self.total = total

    def add(self, usage: pb.Usage) -> None:
        self.total.add(usage)
        if usage.llm_calls and not usage.HasField("cost"):
            self.runner.stop(
                CostUnknown(
                    "--max-cost cannot be kept: the server reported no cost for the calls "
                    "(the provider reports none and AUTOINTERP_LLM__PRICES has no price for the "
                    "model)"
                )
            )
            return
        spent = self.total.cost or 0.0
        if spent >= self.limit:
            self.runner.stop(
                BudgetReached(f"--max-cost reached: {spent:.6g} spent of {self.limit:g}")
            )


def budget_status(error: bulk.FatalRunError) -> int | None:
    """The exit status of a run stopped by its budget, or None for other stops."""
    if isinstance(error, BudgetReached):
        return BUDGET_REACHED
    if isinstance(error, CostUnknown):
        return 2
    return None
