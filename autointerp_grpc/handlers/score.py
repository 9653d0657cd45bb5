"""Scoring: :func:`prepare_score`, the one place a score job's inputs are checked,
:func:`score_split`, the one way every scorer runs, and :func:`result_proto`, the one
converter from a scorer's result to the wire. The Score RPC, the legacy ScoreEmbedding /
ScoreFuzzDetection and each scorer of a bulk feature all go through the three, so a rule
added to one holds on every door (the legacy handlers only rename fields)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from autointerp_grpc.backends.llm import LLMClient
from autointerp_grpc.errors import AutoInterpError, InvalidArgument
from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2 as pb
from autointerp_grpc.handlers.deps import Deps
from autointerp_grpc.handlers.llm_options import CheckedLlm, checked_llm, llm_client
from autointerp_grpc.handlers.lookup import ResolvedScorer, resolve_scorer
from autointerp_grpc.methods import params as method_params
from autointerp_grpc.methods.spec import DEFAULT_MIN_ANSWERED, ScoreContext, ScoreResult
from autointerp_grpc.observability import current_request
from autointerp_grpc.offload import off_loop
from autointerp_grpc.records import Split, split_records
from autointerp_grpc.usage import Usage
from autointerp_grpc.validation import (
    Limits,
    check_explanation_size,
    check_request_records,
    token_count,
)

log = logging.getLogger(__name__)

__all__ = ["DEFAULT_MIN_ANSWERED"]


def check_explanation(method: ResolvedScorer[Any], explanation: str, limits: Limits) -> None:
    if method.spec.needs.explanation and not explanation.strip():
        raise InvalidArgument(f"explanation is required by the {method.name} scorer")
    check_explanation_size(explanation, limits)


def check_control_text(control_explanation: str, limits: Limits) -> None:
    """A control explanation, when set, is text of an explanation's size."""
    if not control_explanation:
        return
    if not control_explanation.strip():
        raise InvalidArgument("controlExplanation is blank")
    check_explanation_size(control_explanation, limits)


def check_control(method: ResolvedScorer[Any], control_explanation: str, limits: Limits) -> None:
    """A control explanation is scored like the explanation: only by scorers that read one."""
    if control_explanation and not method.spec.needs.explanation:
        raise InvalidArgument(
            f"controlExplanation applies to scorers that read an explanation; {method.name} "
            "reads none"
        )
    check_control_text(control_explanation, limits)


def control_failed_note(exc: AutoInterpError) -> str:
    return (
        f"The control explanation could not be scored ({exc.code_name}: {exc.message}); no "
        "control is reported."
    )


def check_split(method: ResolvedScorer[Any], split: Split) -> None:
    """A scorer that contrasts the two kinds needs records of both."""
    if method.spec.needs.non_activating:
        split.require_both()


def _checked_split(records: Sequence[pb.Activation], limits: Limits) -> Split:
    check_request_records(records, limits)
    return split_records(records)


@dataclass(frozen=True)
class ScoreJob:
    """One explanation to score with one scorer, every input checked
    (:func:`prepare_score`): the only thing :func:`run_score` takes."""

    method: ResolvedScorer[Any]
    explanation: str
    split: Split
    llm: CheckedLlm | None
    """Set exactly when the scorer needs an LLM."""
    min_answered: float
    control_explanation: str = ""


async def prepare_score(
    method: ResolvedScorer[Any],
    explanation: str,
    records: Sequence[pb.Activation] | Split,
    limits: Limits,
    *,
    llm: pb.LlmOptions | CheckedLlm | None,
    min_answered: float = DEFAULT_MIN_ANSWERED,
    control_explanation: str = "",
) -> ScoreJob:
    """Every check of a score job, whatever door, RPC or bulk feature it comes from: the
    explanation (required by scorers that read one, within the size limit), the control
    explanation, the records (unlabelled request records are validated and split the legacy
    way here; a bulk feature hands its already-validated held-out ``Split``), both kinds
    where the scorer contrasts them, and the LLM options where it needs an LLM. The order is
    the order of the checks' messages on input that breaks several rules."""
    check_explanation(method, explanation, limits)
    check_control(method, control_explanation, limits)
    if isinstance(records, Split):
        split = records
    else:
        split = await off_loop(token_count(records), _checked_split, records, limits)
    check_split(method, split)
    checked = None
    if method.spec.needs.llm:
        if llm is None:
            raise InvalidArgument(
                f"llm (model and api_key) is required by the {method.name} scorer"
            )
        checked = checked_llm(llm)
    return ScoreJob(method, explanation, split, checked, min_answered, control_explanation)


async def score_split(
    method: ResolvedScorer[Any],
    explanation: str,
    split: Split,
    deps: Deps,
    client: LLMClient | None = None,
    *,
    min_answered: float = DEFAULT_MIN_ANSWERED,
    control_explanation: str = "",
    control_client: LLMClient | None = None,
) -> ScoreResult:
    """Score an explanation on already-validated, already-split records with an
    already-resolved scorer; ``client`` is required by the scorers that need an LLM;
    ``min_answered`` is the coverage floor.

    With ``control_explanation`` (checked by :func:`check_control`), the control is scored
    alongside on the same split with its own client (``control_client``, so its provider
    errors and usage stay apart) and returned as the result's ``control``. Layouts derive
    from the records, never the explanation, so both are judged on the same prompts'
    layout. The control's failure is a note on the result, never the request's failure: the
    headline score stands on its own."""
    spec = method.spec
    if spec.needs.llm and client is None:
        raise ValueError(f"the {spec.name} scorer needs an LLM client")

    def run(text: str, llm: LLMClient | None) -> Awaitable[ScoreResult]:
        ctx = ScoreContext(
            explanation=text,
            params=method.params,
            split=split,
            limits=deps.limits,
            min_answered=min_answered,
            request_concurrency=deps.request_concurrency,
            client=llm if spec.needs.llm else None,
            embedding=deps.embedding_model() if spec.needs.embedding_model else None,
        )
        return spec.run(ctx)

    if not control_explanation:
        return await run(explanation, client)
    if spec.needs.llm and control_client is None:
        raise ValueError(f"the {spec.name} scorer's control needs its own LLM client")
    result, control = await asyncio.gather(
        run(explanation, client),
        run(control_explanation, control_client),
        return_exceptions=True,
    )
    if isinstance(result, BaseException):
        raise result
    if isinstance(control, AutoInterpError):
        result.notes.append(control_failed_note(control))
    elif isinstance(control, BaseException):
        raise control
    else:
        result.control = control
    return result


async def run_score(job: ScoreJob, deps: Deps, usage: Usage) -> ScoreResult:
    """:func:`score_split` on a prepared job, with its own LLM clients (one for the
    explanation, one for the control, so their errors stay apart); what they used is added
    to ``usage`` whether or not scoring succeeds."""
    stats = current_request.get()
    if stats is not None:
        # What is answered by the deadline is scored (coverage), not lost with the rest.
        stats.cut_calls_before_deadline()
    client = control_client = None
    if job.llm is not None:
        client = llm_client(job.llm.options, deps)
        if job.control_explanation:
            control_client = llm_client(job.llm.options, deps)
    try:
        return await score_split(
            job.method,
            job.explanation,
            job.split,
            deps,
            client,
            min_answered=job.min_answered,
            control_explanation=job.control_explanation,
            control_client=control_client,
        )
    finally:
        for used in (client, control_client):
            if used is not None:
                usage.add(used.usage)


Result = TypeVar("Result", pb.ScoreResponse, pb.ScorerOutcome, pb.ControlScore)


def result_proto(
    result: ScoreResult, message: Result, method: ResolvedScorer[Any] | None = None
) -> Result:
    """The one converter from a scorer's result to the wire: fills ``message``, a
    ScoreResponse, a bulk ScorerOutcome or a ControlScore, with the fields it has, so the
    three cannot drift apart. ``method`` (required but for a control) names the scorer and
    its metric; the control itself goes through this same function."""
    message.score = result.score
    if result.confidence_interval is not None:
        message.confidence_interval.CopyFrom(result.confidence_interval)
    if result.coverage is not None:
        message.coverage.CopyFrom(result.coverage)
    message.notes.extend(result.notes)
    if isinstance(message, pb.ControlScore):
        return message
    if method is None:
        raise ValueError("a score's message names its scorer and metric")
    message.method = method.name
    message.metric = method.spec.metric.name
    message.chance = result.chance
    message.extra_metrics.update(result.extra_metrics)
    if result.control is not None:
        message.control.CopyFrom(result_proto(result.control, pb.ControlScore()))
    if isinstance(message, pb.ScoreResponse):
        message.breakdown.extend(result.breakdown)
        if result.classifier is not None:
            message.classifier.CopyFrom(result.classifier)
    return message


def score_response(
    method: ResolvedScorer[Any], result: ScoreResult, usage: Usage
) -> pb.ScoreResponse:
    """A single request's response: the result (:func:`result_proto`) and the usage."""
    response = result_proto(result, pb.ScoreResponse(), method)
    response.usage.CopyFrom(usage.to_proto())
    return response


async def score(request: pb.ScoreRequest, deps: Deps) -> pb.ScoreResponse:
    """The Score RPC."""
    method = resolve_scorer(request)
    job = await prepare_score(
        method,
        request.explanation,
        request.activations,
        deps.limits,
        llm=request.llm if request.HasField("llm") else None,
        min_answered=method_params.field_value(request, "min_answered", "minAnswered"),
        control_explanation=request.control_explanation,
    )
    usage = Usage()
    result = await run_score(job, deps, usage)
    # The breakdown repeats every record's tokens: as big as the request.
    return await off_loop(token_count(request.activations), score_response, method, result, usage)
