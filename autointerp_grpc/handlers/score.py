"""Scoring: :func:`score_split`, the one way every scorer runs (the Score RPC, the legacy
ScoreEmbedding / ScoreFuzzDetection and bulk runs all call it), and the Score RPC itself."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Sequence

from autointerp_grpc.backends.llm import LLMClient
from autointerp_grpc.errors import AutoInterpError, InvalidArgument
from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2 as pb
from autointerp_grpc.handlers.deps import Deps
from autointerp_grpc.handlers.methods import (
    Resolved,
    check_llm_options,
    llm_client,
    resolve_scorer,
)
from autointerp_grpc.methods import params as method_params
from autointerp_grpc.methods.spec import ScoreContext, ScoreResult
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

# The coverage floor when a request does not set one (ScoreRequest.min_answered's default).
DEFAULT_MIN_ANSWERED = 0.8


def check_explanation(method: Resolved, explanation: str, limits: Limits) -> None:
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


def check_control(method: Resolved, control_explanation: str, limits: Limits) -> None:
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


def check_split(method: Resolved, split: Split) -> None:
    """A scorer that contrasts the two kinds needs records of both."""
    if method.spec.needs.non_activating:
        split.require_both()


def check_llm(method: Resolved, llm: pb.LlmOptions | None) -> None:
    if method.spec.needs.llm:
        if llm is None:
            raise InvalidArgument(
                f"llm (model and api_key) is required by the {method.name} scorer"
            )
        check_llm_options(llm)


async def score_split(
    method: Resolved,
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
            request_concurrency=deps.request_concurrency,
            client=llm if spec.needs.llm else None,
            embedding=deps.embedding_model() if spec.needs.embedding_model else None,
            min_answered=min_answered,
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


def control_proto(control: ScoreResult) -> pb.ControlScore:
    """A control's result as it goes on the wire (ScoreResponse and bulk outcomes alike)."""
    message = pb.ControlScore(score=control.score, notes=control.notes)
    if control.confidence_interval is not None:
        message.confidence_interval.CopyFrom(control.confidence_interval)
    if control.coverage is not None:
        message.coverage.CopyFrom(control.coverage)
    return message


def score_response(method: Resolved, result: ScoreResult, usage: Usage) -> pb.ScoreResponse:
    assert method.spec.metric is not None
    response = pb.ScoreResponse(
        score=result.score,
        metric=method.spec.metric.name,
        method=method.name,
        breakdown=result.breakdown,
        usage=usage.to_proto(),
        notes=result.notes,
    )
    if result.classifier is not None:
        response.classifier.CopyFrom(result.classifier)
    if result.confidence_interval is not None:
        response.confidence_interval.CopyFrom(result.confidence_interval)
    response.chance = result.chance
    if result.coverage is not None:
        response.coverage.CopyFrom(result.coverage)
    response.extra_metrics.update(result.extra_metrics)
    if result.control is not None:
        response.control.CopyFrom(control_proto(result.control))
    return response


def _checked_split(records: Sequence[pb.Activation], limits: Limits) -> Split:
    check_request_records(records, limits)
    return split_records(records)


async def score_records(
    method: Resolved,
    explanation: str,
    records: Sequence[pb.Activation],
    llm: pb.LlmOptions | None,
    deps: Deps,
    *,
    min_answered: float = DEFAULT_MIN_ANSWERED,
    control_explanation: str = "",
) -> tuple[ScoreResult, Usage]:
    """Validate and split unlabelled records (the legacy sum > 0 rule), then score them (and
    the control explanation, if any): what the Score RPC and the legacy scoring RPCs share."""
    check_explanation(method, explanation, deps.limits)
    check_control(method, control_explanation, deps.limits)
    split = await off_loop(token_count(records), _checked_split, records, deps.limits)
    check_split(method, split)
    check_llm(method, llm)
    client = control_client = None
    if method.spec.needs.llm and llm is not None:
        client = llm_client(llm, deps)
        control_client = llm_client(llm, deps) if control_explanation else None
    usage = Usage()
    try:
        result = await score_split(
            method,
            explanation,
            split,
            deps,
            client,
            min_answered=min_answered,
            control_explanation=control_explanation,
            control_client=control_client,
        )
    finally:
        for used in (client, control_client):
            if used is not None:
                usage.add(used.usage)
    return result, usage


async def score(request: pb.ScoreRequest, deps: Deps) -> pb.ScoreResponse:
    """The Score RPC."""
    method = resolve_scorer(request)
    llm = request.llm if request.HasField("llm") else None
    min_answered = method_params.field_value(request, "min_answered", "minAnswered")
    result, usage = await score_records(
        method,
        request.explanation,
        request.activations,
        llm,
        deps,
        min_answered=min_answered,
        control_explanation=request.control_explanation,
    )
    # The breakdown repeats every record's tokens: as big as the request.
    return await off_loop(token_count(request.activations), score_response, method, result, usage)
