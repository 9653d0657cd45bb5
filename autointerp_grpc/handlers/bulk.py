"""ExplainAndScore: many features through one explainer and several scorers, streamed.

The explainer, the scorers and the LLM options are resolved and checked once per run; each
feature's records are validated once, split once (its ``nonActivating`` records stay
non-activating whatever their values), and go through the same preparations, runs and
converter as single requests (:func:`~autointerp_grpc.handlers.explain.prepare_explain` and
:func:`~autointerp_grpc.handlers.explain.explain_records`;
:func:`~autointerp_grpc.handlers.score.prepare_score`,
:func:`~autointerp_grpc.handlers.score.run_score` and
:func:`~autointerp_grpc.handlers.score.result_proto` per scorer), so a rule of a single
request holds for each feature and scorer with the same message. By default each class of records is
held out in part and scored on records the explainer never saw; best-of-k candidates are
ranked on a validation split and the chosen one scored on the test split
(:mod:`~autointerp_grpc.handlers.holdout`); where they cannot be ranked (too few records for
a validation split, or no candidate could be scored on it) the first draft is kept and the
result's ``notes`` say why, and ``validationRecords`` counts only records that did rank.
Features run ``options.concurrency`` at a time; each result is streamed as soon as its
feature finishes, followed by a progress event. A feature's failure becomes its result's
``error`` and the run goes on: whatever a feature's work raises (a bug, an overflow in a
provider's numbers) ends that feature with a typed error, or INTERNAL naming the request id,
never the exception's text; a worker never dies with its feature unreported, so the stream
always ends with its summary (the last progress event, ``done == total``).

Batch mode (``llm.batch``, :mod:`~autointerp_grpc.backends.batch`): the run first collects
the provider's finished batches into the store; a feature that needs a call the store cannot
answer is reported ``pending`` (no explanation, no score, no error); just before the last
progress event, the pending calls are submitted as batches and a ``batch`` event reports the
round.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import AsyncIterator, Awaitable, Sequence
from dataclasses import dataclass
from typing import Any

from autointerp_grpc.backends import store
from autointerp_grpc.backends.batch import PendingCalls, RoundReport, pending_calls
from autointerp_grpc.backends.llm import LLMClient
from autointerp_grpc.descriptors import descriptor_of
from autointerp_grpc.errors import (
    AutoInterpError,
    DeadlineExceeded,
    InvalidArgument,
    as_wire_error,
)
from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2 as pb
from autointerp_grpc.gen.params import BulkOptions
from autointerp_grpc.handlers.deps import Deps
from autointerp_grpc.handlers.explain import explain_records, prepare_explain
from autointerp_grpc.handlers.holdout import FeatureSplit, split_feature
from autointerp_grpc.handlers.llm_options import checked_llm, llm_client
from autointerp_grpc.handlers.lookup import ResolvedScorer, resolve_explainer, resolve_scorer
from autointerp_grpc.handlers.score import (
    check_control_text,
    prepare_score,
    result_proto,
    run_score,
)
from autointerp_grpc.methods import params as method_params
from autointerp_grpc.observability import current_request
from autointerp_grpc.offload import off_loop
from autointerp_grpc.records import Split
from autointerp_grpc.usage import Usage
from autointerp_grpc.validation import check_required, token_count

log = logging.getLogger(__name__)

# A bulk request's features in flight at once, whatever the request asks for.
MAX_FEATURE_CONCURRENCY = 64


def _feature_error(exc: BaseException, feature_id: str) -> pb.FeatureError:
    stats = current_request.get()
    request_id = stats.request_id if stats is not None else ""
    error = as_wire_error(exc, request_id, f"feature {feature_id!r}")
    return pb.FeatureError(code=error.code_name, message=error.message)


def _failed(feature_id: str, exc: BaseException) -> pb.FeatureResult:
    """A result that is only ``exc``, as the caller may see it."""
    return pb.FeatureResult(id=feature_id, error=_feature_error(exc, feature_id))


def _usage_proto(usage: Usage) -> pb.Usage:
    """``usage`` on the wire; its cost left out (unknown) when it cannot be summed (costs
    whose sum overflows a float), never an exception."""
    try:
        return usage.to_proto()
    except (OverflowError, ValueError):
        log.warning("LLM cost left out of the usage: the reported costs cannot be summed")
        return Usage(usage.llm_calls, usage.prompt_tokens, usage.completion_tokens).to_proto()


IN_SAMPLE_NOTE = (
    "Scored in-sample: the explainer saw these records (holdout 0, or too few records to hold "
    "any out), so the score overstates how well the explanation generalises."
)


IN_SAMPLE_SELECTION_NOTE = (
    "best-of-k ranked its candidates on the records they are scored on (in-sample): the "
    "selection inflates the chosen explanation's scores further."
)


@dataclass(frozen=True)
class Choice:
    """What best-of-k made of its candidates' validation scores."""

    best: int | None
    """The kept candidate's index; None when none could be scored (no ranking happened)."""
    notes: list[str]


def choose_candidate(scorer: str, results: Sequence[float | pb.FeatureError]) -> Choice:
    """The best of the candidates' validation ``results`` (a score, or why scoring failed),
    ranked among those that got a score; ties keep the earliest. A caller reading only the
    explanation cannot tell a selection from a default, so every way the ranking falls short
    is a note: no candidate scored (no ranking; the caller keeps the first draft), some not
    scored (ranked among the rest), every ranked candidate on the same score (the ranking
    told them apart no better than the draft order)."""
    scored = [(i, r) for i, r in enumerate(results) if not isinstance(r, pb.FeatureError)]
    errors = [r for r in results if isinstance(r, pb.FeatureError)]
    why = f" ({errors[0].code}: {errors[0].message})" if errors else ""
    n = len(results)
    if not scored:
        return Choice(
            None,
            [
                f"best-of-k kept the first of {n} drafts: the candidate scorer {scorer} could "
                f"not score any of them on the validation records{why}"
            ],
        )
    best, top = max(scored, key=lambda item: item[1])  # the first of equal maxima
    notes = []
    if len(scored) < n:
        notes.append(
            f"best-of-k ranked {len(scored)} of {n} candidates: the candidate scorer {scorer} "
            f"could not score the others on the validation records{why}"
        )
    if len(scored) > 1 and all(score == top for _, score in scored):
        notes.append(
            f"best-of-k could not tell its candidates apart: all {len(scored)} ranked "
            f"candidates scored {top:g} on the validation records, and the first was kept"
        )
    return Choice(best, notes)


def _score_or_error(outcome: pb.ScorerOutcome) -> float | pb.FeatureError:
    """A ranking outcome as :func:`choose_candidate` takes it (a score that is not finite
    cannot be ranked, so it counts as a failure)."""
    if outcome.HasField("score") and math.isfinite(outcome.score):
        return outcome.score
    if outcome.HasField("error"):
        return outcome.error
    return pb.FeatureError(code="INTERNAL", message="the scorer returned no finite score")


def _drafts_failed_note(k: int, written: int, error: pb.FeatureError) -> str:
    why = f"({error.code}: {error.message})"
    if written == 1:
        return (
            f"best-of-k kept the only one of {k} drafts that was written: the others failed {why}"
        )
    return f"best-of-k chose among {written} of {k} drafts: the others failed {why}"


async def _as_draft(index: int, work: Awaitable[str]) -> str:
    """``work`` as best-of-k's ``index``-th draft: the drafts are distinct samples of one
    prompt, so each is its own entry in the response store."""
    with store.candidate(index):
        return await work


class _Run:
    """One ExplainAndScore request: its resolved settings and per-feature work."""

    def __init__(self, request: pb.ExplainAndScoreRequest, deps: Deps) -> None:
        self.request = request
        self.deps = deps
        # Everything shared by the features is checked up front: one bad setting fails the
        # request at once rather than every feature in turn.
        self.llm = checked_llm(request.llm)  # checked once; every job of the run takes these
        llm_client(self.llm.options, deps)  # an unknown provider fails the run, not each one
        self.explainer = resolve_explainer(request.explainer)
        limits = deps.limits
        for name, items, limit in (
            ("scorers", request.scorers, limits.max_bulk_scorers),
            ("features", request.features, limits.max_bulk_features),
        ):
            if len(items) > limit:
                raise InvalidArgument(f"{name} holds {len(items)} entries; the limit is {limit}")
        self.scorers: list[ResolvedScorer[Any]] = []
        for i, choice in enumerate(request.scorers):
            try:
                self.scorers.append(resolve_scorer(choice))
            except InvalidArgument as exc:
                raise InvalidArgument(f"scorers[{i}]: {exc.message}") from None
        options = request.options if request.HasField("options") else None
        self.options = method_params.resolve(
            options, descriptor_of(pb.BulkOptions), BulkOptions, "options"
        )
        self.candidate_scorer = self._candidate_scorer()
        self.batch = request.llm.batch and not request.llm.dry_run
        if self.batch and request.llm.fresh:
            raise InvalidArgument(
                "llm.batch and llm.fresh cannot be combined: batch mode replays the store's "
                "answers, which fresh skips"
            )
        self.given_up: dict[str, str] = {}
        self.collected: dict[str, dict[str, Any]] = {}
        ids = [f.id for f in request.features]
        if any(not i.strip() for i in ids):
            raise InvalidArgument("every feature needs an id")
        if len(set(ids)) != len(ids):
            raise InvalidArgument("features must have distinct ids")

    def _candidate_scorer(self) -> ResolvedScorer[Any] | None:
        """The scorer that ranks best-of-k candidates. One that reads no explanation
        (intruder, example_embedding) gives every candidate the same expected score: its
        ranking would be noise presented as a selection, so it is refused up front."""
        if self.options.candidates <= 1:
            return None
        name = self.request.options.candidate_scorer
        if not name:
            if not self.scorers:
                raise InvalidArgument(
                    "options.candidateScorer (or at least one scorer) is required when "
                    "options.candidates > 1"
                )
            # The default is the first scorer that reads the explanation.
            readers = [m for m in self.scorers if m.spec.needs.explanation]
            ranker = readers[0] if readers else self.scorers[0]
            field = "the default candidateScorer (the first of scorers reading an explanation)"
        else:
            ranker = next((m for m in self.scorers if m.name == name), None)
            if ranker is None:
                ranker = resolve_scorer(pb.ScorerChoice(method=name))
            field = "options.candidateScorer"
        if not ranker.spec.needs.explanation:
            raise InvalidArgument(
                f"{field} is {ranker.name}, which reads no explanation, so it cannot rank "
                "best-of-k candidates; set options.candidateScorer to a scorer that reads the "
                "explanation"
            )
        return ranker

    def _client(self) -> LLMClient:
        return llm_client(self.llm.options, self.deps)

    async def _explain(
        self,
        feature: pb.Feature,
        parts: FeatureSplit,
        usage: Usage,
        temperature: float | None,
    ) -> str:
        client = self._client()
        try:
            return await explain_records(
                self.explainer,
                client,
                parts.explain_activating,
                parts.explain_non_activating,
                feature.top_positive_logits,
                attention=feature.attention,
                temperature=temperature,
                latent_max=parts.latent_max,
                max_chars=self.deps.limits.max_explanation_chars,
            )
        finally:
            usage.add(client.usage)

    async def _score(
        self,
        method: ResolvedScorer[Any],
        explanation: str,
        split: Split,
        usage: Usage,
        control_explanation: str = "",
    ) -> pb.ScorerOutcome:
        """One scorer's outcome; with ``control_explanation`` (applied to scorers that read an
        explanation, the others ignore it) its ``control`` too. The job is prepared, run and
        converted as a Score request's is, so an input the Score RPC refuses is this
        outcome's error with the same message."""
        outcome = pb.ScorerOutcome(method=method.name)
        if not method.spec.needs.explanation:
            control_explanation = ""
        try:
            job = await prepare_score(
                method,
                explanation,
                split,
                self.deps.limits,
                llm=self.llm,
                min_answered=self.options.min_answered,
                control_explanation=control_explanation,
            )
            result = await run_score(job, self.deps, usage)
        except AutoInterpError as exc:
            outcome.error.CopyFrom(pb.FeatureError(code=exc.code_name, message=exc.message))
            return outcome
        return result_proto(result, outcome, method)

    async def feature(self, feature: pb.Feature) -> pb.FeatureResult:
        if not self.batch:
            return await self._one(feature)
        calls = PendingCalls(self.given_up)
        token = pending_calls.set(calls)
        try:
            result = await self._one(feature)
        finally:
            pending_calls.reset(token)
        if not calls.calls:
            return result
        # Waiting for a batch: whatever the feature's work made of the missing answers
        # (an error, a scorer's low coverage) is not a result.
        self.collected.update(calls.calls)
        waiting = pb.FeatureResult(id=feature.id, pending=True, seconds=result.seconds)
        waiting.usage.CopyFrom(result.usage)
        waiting.notes.append(f"{len(calls.calls)} LLM call(s) wait for the provider's batch")
        return waiting

    async def _one(self, feature: pb.Feature) -> pb.FeatureResult:
        began = time.perf_counter()
        result = pb.FeatureResult(id=feature.id)
        usage = Usage()
        try:
            check_required(feature)
            check_control_text(feature.control_explanation, self.deps.limits)
            await prepare_explain(
                self.explainer,
                self.llm,
                self.deps,
                feature.activations,
                non_activating=feature.non_activating,
                top_positive_logits=feature.top_positive_logits,
                attention=feature.attention,
                activations_required=True,
            )
            limit = self.deps.feature_timeout_s
            try:
                async with asyncio.timeout(limit):
                    await self._feature(feature, result, usage)
            except TimeoutError:
                raise DeadlineExceeded(
                    f"The feature did not finish within the server's limit of {limit:g} s"
                ) from None
        except Exception as exc:  # one feature's failure is reported in its result
            result.explanation = ""
            del result.scores[:]
            result.error.CopyFrom(_feature_error(exc, feature.id))
        result.usage.CopyFrom(_usage_proto(usage))
        result.seconds = time.perf_counter() - began
        return result

    async def settled(self, feature: pb.Feature) -> pb.FeatureResult:
        """:meth:`feature`, whatever it raises: an exception that escaped it (a bug) ends the
        feature with an error instead of the worker that ran it."""
        try:
            return await self.feature(feature)
        except Exception as exc:  # reported as the feature's error
            return _failed(feature.id, exc)

    async def _feature(self, feature: pb.Feature, result: pb.FeatureResult, usage: Usage) -> None:
        options = self.options
        k = options.candidates
        ranker = self.candidate_scorer
        parts = await off_loop(
            token_count(feature.activations, feature.non_activating),
            split_feature,
            feature,
            options.holdout,
            f"{options.seed}:{feature.id}",
            explainer_reads_non_activating=self.explainer.spec.needs.non_activating,
            candidates=k,
            ranker_needs_non_activating=ranker is not None and ranker.spec.needs.non_activating,
        )
        result.train_records, result.test_records = parts.train_records, parts.test_records
        result.in_sample = parts.in_sample
        temperature = options.candidate_temperature if k > 1 else None
        drafts = await asyncio.gather(
            *(_as_draft(i, self._explain(feature, parts, usage, temperature)) for i in range(k)),
            return_exceptions=True,
        )
        explanations = [d for d in drafts if isinstance(d, str)]
        if not explanations:
            raise next(d for d in drafts if isinstance(d, BaseException))
        result.explanation = explanations[0]
        if ranker is not None:
            await self._select(parts, drafts, ranker, result, usage)
        scores = await asyncio.gather(
            *(
                self._score(m, result.explanation, parts.test, usage, feature.control_explanation)
                for m in self.scorers
            )
        )
        if parts.in_sample:
            for outcome in scores:
                outcome.notes.append(IN_SAMPLE_NOTE)
        result.scores.extend(scores)

    async def _select(
        self,
        parts: FeatureSplit,
        drafts: list[str | BaseException],
        ranker: ResolvedScorer[Any],
        result: pb.FeatureResult,
        usage: Usage,
    ) -> None:
        """Best-of-k: rank the written ``drafts`` on the validation records and keep the best
        as ``result.explanation``; every reported score is then measured on the test records,
        which no candidate was selected on. Whenever no ranking happens the first draft stays
        and ``result.notes`` says why; ``validationRecords`` counts only records that
        actually ranked candidates."""
        explanations = [d for d in drafts if isinstance(d, str)]
        for explanation in explanations:
            result.candidates.add(explanation=explanation)
        k = len(drafts)
        failed = [d for d in drafts if isinstance(d, BaseException)]
        if failed:
            error = _feature_error(failed[0], result.id)
            result.notes.append(_drafts_failed_note(k, len(explanations), error))
        if len(explanations) < 2:
            return  # nothing to choose between (the note above says why)
        if parts.validation is None:
            result.notes.append(
                f"best-of-k kept the first of {len(explanations)} drafts: {parts.no_validation}"
            )
            return
        validation = parts.validation
        outcomes = await asyncio.gather(
            *(self._score(ranker, e, validation, usage) for e in explanations)
        )
        results = [_score_or_error(o) for o in outcomes]
        choice = choose_candidate(ranker.name, results)
        result.notes.extend(choice.notes)
        if choice.best is None:
            return
        for candidate, score in zip(result.candidates, results, strict=True):
            if not isinstance(score, pb.FeatureError):
                candidate.score = score
        result.explanation = explanations[choice.best]
        result.validation_records = parts.validation_records
        result.validation_seen_records = parts.validation_seen_records
        if parts.in_sample:
            result.notes.append(IN_SAMPLE_SELECTION_NOTE)

    async def stream(self) -> AsyncIterator[pb.ExplainAndScoreEvent]:
        if not self.batch:
            async for event in self._stream():
                yield event
            return
        llm = self.request.llm
        batches = self.deps.llm.batch_round(llm.model, llm.api_key, llm.provider)
        try:
            self.given_up = await batches.begin()
            async for event in self._stream():
                if event.HasField("progress") and event.progress.done == event.progress.total:
                    await batches.submit(self.collected)
                    yield pb.ExplainAndScoreEvent(batch=_round_proto(batches.report))
                yield event
        finally:
            await batches.aclose()

    async def _stream(self) -> AsyncIterator[pb.ExplainAndScoreEvent]:
        features = list(self.request.features)
        total, done, failed, waiting = len(features), 0, 0, 0
        usage = Usage()
        queue: asyncio.Queue[pb.FeatureResult] = asyncio.Queue()
        pending = iter(features)

        async def worker() -> None:
            for feature in pending:
                await queue.put(await self.settled(feature))

        workers = [
            asyncio.create_task(worker())
            for _ in range(min(self.options.concurrency, MAX_FEATURE_CONCURRENCY, total))
        ]
        try:
            # A first event at once: the stream (and its REST response) starts before any
            # feature finishes, so a client that leaves is noticed and its work cancelled.
            start = pb.Progress(done=0, total=total, failed=0, usage=pb.Usage())
            yield pb.ExplainAndScoreEvent(progress=start)
            while done < total:
                result = await queue.get()
                done += 1
                failed += result.HasField("error")
                waiting += result.pending
                usage.add(result.usage)
                yield pb.ExplainAndScoreEvent(result=result)
                progress = pb.Progress(done=done, total=total, failed=failed, pending=waiting)
                progress.usage.CopyFrom(_usage_proto(usage))
                yield pb.ExplainAndScoreEvent(progress=progress)
        finally:
            # The caller went away (or the run ended): stop every feature still running.
            for task in workers:
                task.cancel()
            await asyncio.gather(*workers, return_exceptions=True)


def _round_proto(report: RoundReport) -> pb.BatchRound:
    cost = report.collected_cost
    return pb.BatchRound(
        collected_cost=cost if cost is not None and math.isfinite(cost) else None,
        collected_answers=report.collected_answers,
        collected_prompt_tokens=report.collected_prompt_tokens,
        collected_completion_tokens=report.collected_completion_tokens,
        failed_requests=report.failed_requests,
        submitted_requests=report.submitted_requests,
        submitted_batch_ids=report.submitted_batch_ids,
        open_batches=report.open_batches,
        open_requests=report.open_requests,
        open_completed=report.open_completed,
        expected_wait_s=report.expected_wait_s,
        notes=report.notes,
    )


async def explain_and_score(
    request: pb.ExplainAndScoreRequest, deps: Deps
) -> AsyncIterator[pb.ExplainAndScoreEvent]:
    """The ExplainAndScore RPC: validates the request, then streams results and progress."""
    run = _Run(request, deps)
    async for event in run.stream():
        yield event
