"""ExplainAndScore: many features through one explainer and several scorers, streamed.

The explainer, the scorers and the LLM options are resolved and checked once per run; each
feature's records are validated once, split once (its ``nonActivating`` records stay
non-activating whatever their values), and go through the same typed calls as single
requests (:func:`~autointerp_grpc.handlers.explain.explain_records`,
:func:`~autointerp_grpc.handlers.score.score_split`), optionally with a holdout split (explain
on some activating records, score on the rest) and best-of-k candidates (k explanations, the
best by one scorer kept). Features run ``options.concurrency`` at a time; each result is
streamed as soon as its feature finishes, followed by a progress event. A feature's failure
becomes its result's ``error`` and the run goes on.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator, Sequence
from types import SimpleNamespace

from autointerp_grpc.backends.llm import LLMClient
from autointerp_grpc.errors import AutoInterpError, InvalidArgument, as_wire_error
from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2 as pb
from autointerp_grpc.handlers.deps import Deps
from autointerp_grpc.handlers.explain import check_explain_records, explain_records
from autointerp_grpc.handlers.methods import (
    Resolved,
    check_llm_options,
    llm_client,
    resolve_explainer,
    resolve_scorer,
)
from autointerp_grpc.handlers.score import check_split, score_split
from autointerp_grpc.methods import params as method_params
from autointerp_grpc.observability import current_request
from autointerp_grpc.records import Split, split_records
from autointerp_grpc.usage import Usage
from autointerp_grpc.validation import check_required

log = logging.getLogger(__name__)

# A bulk request's features in flight at once, whatever the request asks for.
MAX_FEATURE_CONCURRENCY = 64


def _feature_error(exc: BaseException, feature_id: str) -> pb.FeatureError:
    stats = current_request.get()
    request_id = stats.request_id if stats is not None else ""
    error = as_wire_error(exc, request_id, f"feature {feature_id!r}")
    return pb.FeatureError(code=error.code_name, message=error.message)


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
    """One ExplainAndScore request: its resolved settings and per-feature work."""

    def __init__(self, request: pb.ExplainAndScoreRequest, deps: Deps) -> None:
        self.request = request
        self.deps = deps
        # Everything shared by the features is checked up front: one bad setting fails the
        # request at once rather than every feature in turn.
        check_llm_options(request.llm)
        llm_client(request.llm, deps)  # an unknown provider fails the run, not each feature
        self.explainer = resolve_explainer(request.explainer)
        self.scorers: list[Resolved] = []
        for i, choice in enumerate(request.scorers):
            try:
                self.scorers.append(resolve_scorer(choice))
            except InvalidArgument as exc:
                raise InvalidArgument(f"scorers[{i}]: {exc.message}") from None
        options = request.options if request.HasField("options") else None
        self.options: SimpleNamespace = method_params.resolve(
            options, pb.BulkOptions.DESCRIPTOR, "options"
        )
        self.candidate_scorer, self.candidate_index = self._candidate_scorer()
        ids = [f.id for f in request.features]
        if any(not i.strip() for i in ids):
            raise InvalidArgument("every feature needs an id")
        if len(set(ids)) != len(ids):
            raise InvalidArgument("features must have distinct ids")

    def _candidate_scorer(self) -> tuple[Resolved | None, int | None]:
        """The scorer that ranks best-of-k candidates, and its index among the scorers."""
        if self.options.candidates <= 1:
            return None, None
        name = self.request.options.candidate_scorer
        if not name:
            if not self.scorers:
                raise InvalidArgument(
                    "options.candidateScorer (or at least one scorer) is required when "
                    "options.candidates > 1"
                )
            return self.scorers[0], 0
        for i, method in enumerate(self.scorers):
            if method.name == name:
                return method, i
        return resolve_scorer(pb.ScorerChoice(method=name)), None

    def _client(self) -> LLMClient:
        return llm_client(self.request.llm, self.deps)

    async def _explain(
        self,
        feature: pb.Feature,
        train: list[pb.Activation],
        usage: Usage,
        temperature: float | None,
    ) -> str:
        client = self._client()
        try:
            return await explain_records(
                self.explainer,
                client,
                train,
                feature.non_activating,
                feature.top_positive_logits,
                temperature=temperature,
            )
        finally:
            usage.add(client.usage)

    async def _score(
        self, method: Resolved, explanation: str, split: Split, usage: Usage
    ) -> pb.ScorerOutcome:
        outcome = pb.ScorerOutcome(method=method.name)
        client = self._client() if method.spec.needs.llm else None
        try:
            check_split(method, split)
            result = await score_split(method, explanation, split, self.deps, client)
        except AutoInterpError as exc:
            outcome.error.CopyFrom(pb.FeatureError(code=exc.code_name, message=exc.message))
            return outcome
        finally:
            if client is not None:
                usage.add(client.usage)
        outcome.score = result.score
        assert method.spec.metric is not None
        outcome.metric = method.spec.metric.name
        if result.confidence_interval is not None:
            outcome.confidence_interval.CopyFrom(result.confidence_interval)
        return outcome

    async def feature(self, feature: pb.Feature) -> pb.FeatureResult:
        began = time.perf_counter()
        result = pb.FeatureResult(id=feature.id)
        usage = Usage()
        try:
            check_required(feature)
            check_explain_records(feature.activations, feature.non_activating, self.deps)
            await self._feature(feature, result, usage)
        except Exception as exc:  # one feature's failure is reported in its result
            result.explanation = ""
            del result.scores[:]
            result.error.CopyFrom(_feature_error(exc, feature.id))
        result.usage.CopyFrom(usage.to_proto())
        result.seconds = time.perf_counter() - began
        return result

    async def _feature(self, feature: pb.Feature, result: pb.FeatureResult, usage: Usage) -> None:
        options = self.options
        train, test = split_holdout(
            feature.activations, options.holdout, f"{options.seed}:{feature.id}"
        )
        result.train_records, result.test_records = len(train), len(test)
        # Scoring sees the held-out records (or, without holdout, all of them) split by the
        # sum rule, and every explicitly non-activating record as non-activating.
        split = split_records(test or train, non_activating=feature.non_activating)
        k = options.candidates
        temperature = options.candidate_temperature if k > 1 else None
        drafts = await asyncio.gather(
            *(self._explain(feature, train, usage, temperature) for _ in range(k)),
            return_exceptions=True,
        )
        explanations = [d for d in drafts if isinstance(d, str)]
        if not explanations:
            raise next(d for d in drafts if isinstance(d, BaseException))
        reuse: pb.ScorerOutcome | None = None
        if self.candidate_scorer is not None:
            ranker = self.candidate_scorer
            outcomes = await asyncio.gather(
                *(self._score(ranker, e, split, usage) for e in explanations)
            )
            for explanation, outcome in zip(explanations, outcomes, strict=True):
                candidate = result.candidates.add(explanation=explanation)
                if outcome.HasField("score"):
                    candidate.score = outcome.score
            best = max(
                range(len(explanations)),
                key=lambda i: outcomes[i].score if outcomes[i].HasField("score") else -2.0,
            )
            result.explanation = explanations[best]
            reuse = outcomes[best]
        else:
            result.explanation = explanations[0]

        async def outcome(index: int, method: Resolved) -> pb.ScorerOutcome:
            # The candidate scorer's verdict on the chosen explanation is not asked for twice.
            if reuse is not None and index == self.candidate_index:
                return reuse
            return await self._score(method, result.explanation, split, usage)

        result.scores.extend(
            await asyncio.gather(*(outcome(i, m) for i, m in enumerate(self.scorers)))
        )

    async def stream(self) -> AsyncIterator[pb.ExplainAndScoreEvent]:
        features = list(self.request.features)
        total, done, failed = len(features), 0, 0
        usage = Usage()
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
                usage.add(result.usage)
                yield pb.ExplainAndScoreEvent(result=result)
                progress = pb.Progress(done=done, total=total, failed=failed)
                progress.usage.CopyFrom(usage.to_proto())
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
