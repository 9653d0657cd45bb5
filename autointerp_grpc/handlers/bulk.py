"""ExplainAndScore: many features through one explainer and several scorers, streamed.

Each feature goes through the same Explain and Score handlers as single requests (so the
same validation, methods and errors), with, optionally, a holdout split (explain on some
activating records, score on the rest) and best-of-k candidates (k explanations, the best by
one scorer kept). Features run ``options.concurrency`` at a time; each result is streamed as
soon as its feature finishes, followed by a progress event. A feature's failure becomes its
result's ``error`` and the run goes on.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator, Sequence
from types import SimpleNamespace
from typing import Any

from autointerp_grpc.errors import AutoInterpError, InvalidArgument
from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2 as pb
from autointerp_grpc.handlers.deps import Deps
from autointerp_grpc.handlers.standard import (
    explain,
    llm_client,
    lookup,
    resolve_params,
    score,
)
from autointerp_grpc.methods import params as method_params
from autointerp_grpc.methods.registry import EXPLAINER_REGISTRY, SCORER_REGISTRY
from autointerp_grpc.validation import check_required

log = logging.getLogger(__name__)

# A bulk request's features in flight at once, whatever the request asks for.
MAX_FEATURE_CONCURRENCY = 64


def _copy_params(choice: Any, target: Any) -> None:
    member = choice.WhichOneof("params")
    if member is not None:
        getattr(target, member).CopyFrom(getattr(choice, member))


def _feature_error(exc: BaseException, feature_id: str) -> pb.FeatureError:
    if isinstance(exc, AutoInterpError):
        return pb.FeatureError(code=exc.code_name, message=exc.message)
    log.error("feature %r failed unexpectedly", feature_id, exc_info=exc)
    return pb.FeatureError(code="INTERNAL", message=f"Internal error on feature {feature_id!r}")


def _add_usage(total: pb.Usage, part: pb.Usage) -> None:
    total.llm_calls += part.llm_calls
    total.prompt_tokens += part.prompt_tokens
    total.completion_tokens += part.completion_tokens
    if part.HasField("cost"):
        total.cost = (total.cost if total.HasField("cost") else 0.0) + part.cost


def split_holdout(
    records: Sequence[pb.Activation], fraction: float, seed: str
) -> tuple[list[pb.Activation], list[pb.Activation]]:
    """(train, test): ``fraction`` of the records (at least one, leaving at least one) held
    out at random, deterministically per seed; no holdout when fraction is 0 or there are
    fewer than two records."""
    records = list(records)
    if fraction <= 0 or len(records) < 2:
        return records, []
    n_test = min(len(records) - 1, max(1, round(len(records) * fraction)))
    order = list(range(len(records)))
    random.Random(seed).shuffle(order)
    test = set(order[:n_test])
    return (
        [r for i, r in enumerate(records) if i not in test],
        [r for i, r in enumerate(records) if i in test],
    )


class _Run:
    """One ExplainAndScore request: its validated settings and per-feature work."""

    def __init__(self, request: pb.ExplainAndScoreRequest, deps: Deps) -> None:
        self.request = request
        self.deps = deps
        # Everything shared by the features is checked up front: one bad setting fails the
        # request at once rather than every feature in turn.
        llm_client(request.llm, deps)
        explainer = lookup(EXPLAINER_REGISTRY, request.explainer.method, "explainer")
        resolve_params(request.explainer, explainer)  # rejects bad parameters up front
        for i, choice in enumerate(request.scorers):
            spec = lookup(SCORER_REGISTRY, choice.method, "scorer")
            try:
                resolve_params(choice, spec)
            except InvalidArgument as exc:
                raise InvalidArgument(f"scorers[{i}]: {exc.message}") from None
        options = request.options if request.HasField("options") else None
        self.options: SimpleNamespace = method_params.resolve(
            options, pb.BulkOptions.DESCRIPTOR, "options"
        )
        self.candidate_scorer = self._candidate_scorer()
        ids = [f.id for f in request.features]
        if any(not i.strip() for i in ids):
            raise InvalidArgument("every feature needs an id")
        if len(set(ids)) != len(ids):
            raise InvalidArgument("features must have distinct ids")

    def _candidate_scorer(self) -> pb.ScorerChoice | None:
        if self.options.candidates <= 1:
            return None
        name = self.request.options.candidate_scorer
        if not name:
            if not self.request.scorers:
                raise InvalidArgument(
                    "options.candidateScorer (or at least one scorer) is required when "
                    "options.candidates > 1"
                )
            return self.request.scorers[0]
        for choice in self.request.scorers:
            if choice.method == name:
                return choice
        lookup(SCORER_REGISTRY, name, "scorer")
        return pb.ScorerChoice(method=name)

    async def _explain(
        self,
        feature: pb.Feature,
        train: list[pb.Activation],
        usage: pb.Usage,
        temperature: float | None,
    ) -> str:
        choice = self.request.explainer
        request = pb.ExplainRequest(
            method=choice.method,
            activations=train,
            non_activating=feature.non_activating,
            top_positive_logits=feature.top_positive_logits,
            llm=self.request.llm,
        )
        _copy_params(choice, request)
        response = await explain(request, self.deps, temperature=temperature)
        _add_usage(usage, response.usage)
        return response.explanation

    async def _score(
        self,
        choice: pb.ScorerChoice,
        explanation: str,
        records: list[pb.Activation],
        usage: pb.Usage,
    ) -> pb.ScorerOutcome:
        request = pb.ScoreRequest(
            method=choice.method, explanation=explanation, activations=records, llm=self.request.llm
        )
        _copy_params(choice, request)
        outcome = pb.ScorerOutcome(method=choice.method)
        try:
            response = await score(request, self.deps)
        except AutoInterpError as exc:
            outcome.error.CopyFrom(pb.FeatureError(code=exc.code_name, message=exc.message))
            return outcome
        _add_usage(usage, response.usage)
        outcome.score = response.score
        outcome.metric = response.metric
        if response.HasField("confidence_interval"):
            outcome.confidence_interval.CopyFrom(response.confidence_interval)
        return outcome

    async def feature(self, feature: pb.Feature) -> pb.FeatureResult:
        began = time.perf_counter()
        result = pb.FeatureResult(id=feature.id)
        try:
            check_required(feature)
            await self._feature(feature, result)
        except Exception as exc:  # one feature's failure is reported in its result
            result.explanation = ""
            del result.scores[:]
            result.error.CopyFrom(_feature_error(exc, feature.id))
        result.seconds = time.perf_counter() - began
        return result

    async def _feature(self, feature: pb.Feature, result: pb.FeatureResult) -> None:
        options = self.options
        train, test = split_holdout(
            feature.activations, options.holdout, f"{options.seed}:{feature.id}"
        )
        result.train_records, result.test_records = len(train), len(test)
        # Scoring sees the held-out activating records (or, without holdout, all of them)
        # and every non-activating record.
        score_records = [*(test or train), *feature.non_activating]
        usage = result.usage
        k = options.candidates
        temperature = options.candidate_temperature if k > 1 else None
        drafts = await asyncio.gather(
            *(self._explain(feature, train, usage, temperature) for _ in range(k)),
            return_exceptions=True,
        )
        explanations = [d for d in drafts if isinstance(d, str)]
        if not explanations:
            raise next(d for d in drafts if isinstance(d, BaseException))
        ranked: dict[str, pb.ScorerOutcome] = {}
        if self.candidate_scorer is not None:
            outcomes = await asyncio.gather(
                *(self._score(self.candidate_scorer, e, score_records, usage) for e in explanations)
            )
            for explanation, outcome in zip(explanations, outcomes, strict=True):
                candidate = result.candidates.add(explanation=explanation)
                if outcome.HasField("score"):
                    candidate.score = outcome.score
                ranked.setdefault(explanation, outcome)
            best = max(
                range(len(explanations)),
                key=lambda i: outcomes[i].score if outcomes[i].HasField("score") else -2.0,
            )
            result.explanation = explanations[best]
        else:
            result.explanation = explanations[0]
        # The candidate scorer's verdict on the chosen explanation is not asked for twice.
        reuse = ranked.get(result.explanation)

        async def outcome(choice: pb.ScorerChoice) -> pb.ScorerOutcome:
            if reuse is not None and choice == self.candidate_scorer:
                return reuse
            return await self._score(choice, result.explanation, score_records, usage)

        result.scores.extend(await asyncio.gather(*(outcome(c) for c in self.request.scorers)))

    async def stream(self) -> AsyncIterator[pb.ExplainAndScoreEvent]:
        features = list(self.request.features)
        total, done, failed = len(features), 0, 0
        usage = pb.Usage()
        queue: asyncio.Queue[pb.FeatureResult] = asyncio.Queue()
        pending = iter(features)

        async def worker() -> None:
            for feature in pending:
                await queue.put(await self.feature(feature))

        workers = [
            asyncio.create_task(worker())
            for _ in range(min(self.options.concurrency, MAX_FEATURE_CONCURRENCY, total))
        ]
        try:
            while done < total:
                result = await queue.get()
                done += 1
                failed += result.HasField("error")
                _add_usage(usage, result.usage)
                yield pb.ExplainAndScoreEvent(result=result)
                progress = pb.Progress(done=done, total=total, failed=failed)
                progress.usage.CopyFrom(usage)
                yield pb.ExplainAndScoreEvent(progress=progress)
        finally:
            # The caller went away (or the run ended): stop every feature still running.
            for task in workers:
                task.cancel()
            await asyncio.gather(*workers, return_exceptions=True)


async def explain_and_score(
    request: pb.ExplainAndScoreRequest, deps: Deps
) -> AsyncIterator[pb.ExplainAndScoreEvent]:
    """The ExplainAndScore RPC: validates the request, then streams results and progress."""
    run = _Run(request, deps)
    async for event in run.stream():
        yield event
