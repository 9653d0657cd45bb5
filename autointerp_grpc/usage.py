"""LLM usage: the one type the service, bulk runs and the CLI count calls, tokens and cost in.

A request's :class:`~autointerp_grpc.backends.llm.LLMClient` adds each upstream call to one;
a bulk run adds its features' usage to a total; the CLI adds the totals of its streams. The
wire form is the proto's ``Usage`` (:meth:`Usage.to_proto`, :meth:`Usage.from_proto`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2 as pb


@dataclass
class Usage:
    """LLM calls, tokens and provider-reported cost, summed."""

    llm_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    costs: list[float] = field(default_factory=list)
    """Each reported cost; summed with fsum, which is exact, so the total does not depend on
    the order concurrent calls finished in."""

    @property
    def cost(self) -> float | None:
        """Total provider-reported cost; None when no call reported one."""
        return math.fsum(self.costs) if self.costs else None

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def add(self, other: Usage | pb.Usage) -> None:
        """Add another count (ours, or the proto's from a response) to this one."""
        if isinstance(other, pb.Usage):
            other = Usage.from_proto(other)
        self.llm_calls += other.llm_calls
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.costs.extend(other.costs)

    def add_call(
        self, prompt_tokens: int = 0, completion_tokens: int = 0, cost: float | None = None
    ) -> None:
        """Count one upstream call with what its answer reported (nothing, if it failed)."""
        self.llm_calls += 1
        self.prompt_tokens += max(0, prompt_tokens)
        self.completion_tokens += max(0, completion_tokens)
        if cost is not None and math.isfinite(cost) and cost >= 0:
            self.costs.append(cost)

    def to_proto(self) -> pb.Usage:
        message = pb.Usage(
            llm_calls=self.llm_calls,
            prompt_tokens=self.prompt_tokens,
            completion_tokens=self.completion_tokens,
        )
        cost = self.cost
        if cost is not None:
            message.cost = cost
        return message

    @classmethod
    def from_proto(cls, message: pb.Usage) -> Usage:
        return cls(
            llm_calls=message.llm_calls,
            prompt_tokens=message.prompt_tokens,
            completion_tokens=message.completion_tokens,
            costs=[message.cost] if message.HasField("cost") else [],
        )

    def describe(self) -> str:
        """One line for people: calls, tokens and cost."""
        cost = self.cost
        shown_cost = f"cost {cost:.6g}" if cost is not None else "cost not reported"
        return (
            f"{self.llm_calls} LLM calls, {self.prompt_tokens:,} prompt tokens, "
            f"{self.completion_tokens:,} completion tokens, {shown_cost}"
        )
