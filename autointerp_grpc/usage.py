"""LLM usage: the one type the service, bulk runs and the CLI count calls, tokens and cost in.

A request's :class:`~autointerp_grpc.backends.llm.LLMClient` adds each upstream call to one;
a bulk run adds its features' usage to a total; the CLI adds the totals of its streams. The
wire form is the proto's ``Usage`` (:meth:`Usage.to_proto`, :meth:`Usage.from_proto`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2 as pb

MAX_PLAUSIBLE_COST = 1e6
"""More than any one call (or run) could cost, in the provider's currency: a reported cost
past it, negative, not finite or not a number is not a cost and reads as unknown. Sums of
plausible costs stay finite (a list of them would need 1e302 entries to overflow)."""


def plausible_cost(value: object) -> float | None:
    """``value`` as a cost, or None when it is not one: not a real number (a bool, a string,
    None), negative, not finite, or over :data:`MAX_PLAUSIBLE_COST`. Never raises (an int too
    big for a float is simply implausible)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, int) and not 0 <= value <= MAX_PLAUSIBLE_COST:
        return None
    cost = float(value)
    if not (math.isfinite(cost) and 0 <= cost <= MAX_PLAUSIBLE_COST):
        return None
    return cost


@dataclass
class Usage:
    """LLM calls, tokens and provider-reported cost, summed."""

    llm_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    costs: list[float] = field(default_factory=list)
    """Each reported cost (plausible ones only, see :func:`plausible_cost`); summed with fsum,
    which is exact, so the total does not depend on the order concurrent calls finished in."""
    cached_responses: int = 0
    """Calls the response store answered (not in ``llm_calls`` or the token counts)."""
    cached_prompt_tokens: int = 0
    """Prompt tokens the provider served from its prompt cache (part of ``prompt_tokens``)."""
    saved_costs: list[float] = field(default_factory=list)
    """The known costs of the store's answers when they were first paid for."""
    estimated: bool = False
    """The counts are a dry run's estimate (no call was made)."""

    @property
    def cost(self) -> float | None:
        """Total provider-reported cost; None when no call reported a plausible one. Always
        finite: a cost that is not plausible was never kept."""
        kept = [c for c in self.costs if plausible_cost(c) is not None]
        return math.fsum(kept) if kept else None

    @property
    def saved_cost(self) -> float | None:
        """What the store's answers saved; None when none of their costs is known."""
        kept = [c for c in self.saved_costs if plausible_cost(c) is not None]
        return math.fsum(kept) if kept else None

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
        self.costs.extend(c for c in other.costs if plausible_cost(c) is not None)
        self.cached_responses += other.cached_responses
        self.cached_prompt_tokens += other.cached_prompt_tokens
        self.saved_costs.extend(c for c in other.saved_costs if plausible_cost(c) is not None)
        self.estimated = self.estimated or other.estimated

    def add_call(
        self, prompt_tokens: int = 0, completion_tokens: int = 0, cost: float | None = None
    ) -> None:
        """Count one upstream call with what its answer reported (nothing, if it failed); a
        cost that is not plausible (:func:`plausible_cost`) is not counted."""
        self.llm_calls += 1
        self.prompt_tokens += max(0, prompt_tokens)
        self.completion_tokens += max(0, completion_tokens)
        kept = plausible_cost(cost)
        if kept is not None:
            self.costs.append(kept)

    def add_prompt_cache(self, cached_prompt_tokens: int) -> None:
        """Count prompt tokens of a counted call that the provider served from its cache."""
        self.cached_prompt_tokens += max(0, cached_prompt_tokens)

    def add_stored(self, cost: float | None = None) -> None:
        """Count one call the response store answered, and what its answer had cost."""
        self.cached_responses += 1
        kept = plausible_cost(cost)
        if kept is not None:
            self.saved_costs.append(kept)

    def to_proto(self) -> pb.Usage:
        message = pb.Usage(
            llm_calls=self.llm_calls,
            prompt_tokens=self.prompt_tokens,
            completion_tokens=self.completion_tokens,
        )
        cost = self.cost
        if cost is not None:
            message.cost = cost
        message.cached_responses = self.cached_responses
        message.cached_prompt_tokens = self.cached_prompt_tokens
        saved = self.saved_cost
        if saved is not None:
            message.saved_cost = saved
        if self.estimated:
            message.estimated = True
        return message

    @classmethod
    def from_proto(cls, message: pb.Usage) -> Usage:
        return cls(
            llm_calls=message.llm_calls,
            prompt_tokens=message.prompt_tokens,
            completion_tokens=message.completion_tokens,
            costs=[c for c in [message.cost] if plausible_cost(c) is not None]
            if message.HasField("cost")
            else [],
            cached_responses=max(0, message.cached_responses),
            cached_prompt_tokens=max(0, message.cached_prompt_tokens),
            saved_costs=[c for c in [message.saved_cost] if plausible_cost(c) is not None]
            if message.HasField("saved_cost")
            else [],
            estimated=message.estimated,
        )

    def describe(self) -> str:
        """One line for people: calls, tokens and cost."""
        cost = self.cost
        shown_cost = f"cost {cost:.6g}" if cost is not None else "cost not reported"
        line = (
            f"{self.llm_calls} LLM calls, {self.prompt_tokens:,} prompt tokens, "
            f"{self.completion_tokens:,} completion tokens, {shown_cost}"
        )
        if self.cached_prompt_tokens:
            share = self.cached_prompt_tokens / max(self.prompt_tokens, 1)
            line += (
                f" ({self.cached_prompt_tokens:,} prompt tokens, {share:.0%}, from the "
                "provider's prompt cache)"
            )
        if self.cached_responses:
            saved = self.saved_cost
            line += f"; {self.cached_responses} answered by the response store" + (
                f" (saved {saved:.6g})" if saved is not None else ""
            )
        return line
