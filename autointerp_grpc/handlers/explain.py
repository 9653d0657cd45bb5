"""Explaining: :func:`prepare_explain`, the one place an explain job's inputs are checked,
:func:`explain_records`, the one way every explainer runs (the Explain RPC, the legacy
ExplainDefault and each bulk feature call both), and the Explain RPC itself."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from autointerp_grpc.backends.llm import LLMClient
from autointerp_grpc.delphi_compat import Explainer, LatentRecord
from autointerp_grpc.errors import InvalidArgument, UpstreamBadResponse
from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2 as pb
from autointerp_grpc.handlers.deps import Deps
from autointerp_grpc.handlers.llm_options import CheckedLlm, checked_llm, llm_client
from autointerp_grpc.handlers.lookup import ResolvedExplainer, resolve_explainer
from autointerp_grpc.methods.explainers import answer_shape
from autointerp_grpc.methods.spec import ExplainContext
from autointerp_grpc.offload import off_loop
from autointerp_grpc.records import (
    activating_example,
    max_over_records,
    non_activating_example,
)
from autointerp_grpc.validation import (
    check_activations,
    check_attention,
    check_request_tokens,
    check_top_logits,
    token_count,
)

log = logging.getLogger(__name__)

# What delphi returns instead of raising when the model's answer cannot be parsed.
DELPHI_PARSE_FAILURE = "Explanation could not be parsed."
# One retry on an unparsable answer: models occasionally drop the format once.
ATTEMPTS = 2


def _has_words(explanation: str) -> bool:
    """An explanation says something in letters or digits: an answer of only brackets,
    punctuation or spaces (a broken or hostile model's "[[[[...") is not one."""
    return any(char.isalnum() for char in explanation)


async def run_explainer(
    explainer: Explainer, record: LatentRecord, max_chars: int | None = None
) -> str:
    """Run a delphi explainer; retry an unparsable answer once, then fail.

    delphi's placeholder "Explanation could not be parsed." is never returned as an
    explanation, nor an answer without a letter or digit, nor one longer than ``max_chars``
    (the server's explanation limit, which every scorer applies to what it is sent: an
    explanation this service wrote must be one it would accept back). The failure names the
    answer this explainer's format asks for
    (:func:`~autointerp_grpc.methods.explainers.answer_shape`): each format has its own, and
    naming another's misleads the caller.
    """
    too_long = 0
    unparsable = 0
    for attempt in range(1, ATTEMPTS + 1):
        result = await explainer(record)
        explanation = result.explanation.strip()
        if explanation == DELPHI_PARSE_FAILURE or not _has_words(explanation):
            # Checked before the length: 60,000 brackets are no explanation, not a long one.
            unparsable += 1
            log.warning("explainer answer had no parsable explanation (attempt %d)", attempt)
            continue
        if max_chars is not None and len(explanation) > max_chars:
            too_long = len(explanation)
            log.warning(
                "explanation of %d characters over the limit (attempt %d)", too_long, attempt
            )
            continue
        return explanation
    if too_long and not unparsable:
        raise UpstreamBadResponse(
            f"The model's explanation was longer than the server's limit of {max_chars} "
            f"characters ({too_long}) in {ATTEMPTS} attempts (expected "
            f"{answer_shape(explainer)}); try again or use another model"
        )
    raise UpstreamBadResponse(
        f"The model gave no parsable explanation in {ATTEMPTS} attempts (expected "
        f"{answer_shape(explainer)}); try again or use another model"
    )


async def explain_records(
    method: ResolvedExplainer[Any],
    client: LLMClient,
    train: Sequence[pb.Activation],
    non_activating: Sequence[pb.Activation] = (),
    top_positive_logits: Sequence[str] = (),
    *,
    attention: Sequence[pb.AttentionRecord] = (),
    temperature: float | None = None,
    latent_max: float | None = None,
    max_chars: int | None = None,
) -> str:
    """An explanation of already-validated records by an already-resolved explainer.

    Every record of ``train`` is shown as a training example (the explainer highlights its
    tokens by their own values); ``non_activating`` are the explicitly labelled contrast
    records; ``attention`` the attention records of explainers that read them. Activations
    are normalised on the latent's scale, ``latent_max`` (the maximum
    over all the latent's records; by default over ``train``). ``temperature`` overrides the
    explainer's (bulk best-of-k sampling); ``max_chars`` is the longest explanation
    accepted (:func:`run_explainer`).
    """

    def build() -> tuple[Explainer, LatentRecord]:
        peak = (max_over_records(train) if train else 0.0) if latent_max is None else latent_max
        ctx = ExplainContext(
            params=method.params,
            client=client,
            activating=[activating_example(r, latent_max=peak) for r in train],
            non_activating=[non_activating_example(r, latent_max=peak) for r in non_activating],
            top_positive_logits=list(top_positive_logits),
            attention=list(attention),
        )
        # An explainer's build makes its delphi explainer and record (synchronously).
        return method.spec.build(ctx)

    explainer, record = await off_loop(token_count(train, non_activating, attention), build)
    if temperature is not None:
        explainer.temperature = temperature
    return await run_explainer(explainer, record, max_chars)


def check_explain_records(
    method: ResolvedExplainer[Any],
    activations: Sequence[pb.Activation],
    non_activating: Sequence[pb.Activation],
    top_positive_logits: Sequence[str],
    deps: Deps,
    *,
    attention: Sequence[pb.AttentionRecord] = (),
    activations_required: bool = False,
) -> None:
    """The Explain rules on records: valid, within the limits (the lists share one character
    budget), and at least one activating record with a positive activation.

    A method that needs top positive logits (``needs.logits``) requires them. An explainer
    that reads attention records (``needs.attention``) requires ``attention``
    and takes ``activations`` only where ``activations_required`` (bulk runs score them);
    ``attention`` is refused by every other explainer rather than silently ignored.
    """
    reads_attention = method.spec.needs.attention
    check_request_tokens(deps.limits, activations, non_activating, attention)
    chars = 0
    if reads_attention:
        chars = check_attention(attention, deps.limits)
    elif attention:
        raise InvalidArgument(
            f"attention is read only by attention-head explainers, not by {method.name}"
        )
    if activations or not reads_attention or activations_required:
        chars = check_activations(activations, deps.limits, chars_so_far=chars)
        if not any(max(r.values) > 0 for r in activations):
            raise InvalidArgument(
                "activations must include at least one record with a positive activation value"
            )
    if non_activating:
        check_activations(non_activating, deps.limits, "non_activating", chars_so_far=chars)
    check_top_logits(top_positive_logits, deps.limits)
    if method.spec.needs.logits and not top_positive_logits:
        raise InvalidArgument(f"top_positive_logits is required by the {method.name} explainer")


async def prepare_explain(
    method: ResolvedExplainer[Any],
    llm: pb.LlmOptions | CheckedLlm,
    deps: Deps,
    activations: Sequence[pb.Activation],
    *,
    non_activating: Sequence[pb.Activation] = (),
    top_positive_logits: Sequence[str] = (),
    attention: Sequence[pb.AttentionRecord] = (),
    activations_required: bool = False,
) -> CheckedLlm:
    """Every check of an explain job, whatever door, RPC or bulk feature it comes from: the
    records (:func:`check_explain_records`, off the event loop for big requests), then the
    LLM options; returns the checked options the job's clients are made from. The legacy
    ExplainDefault goes through here too, so an all-zero request is refused before any LLM
    call, as Explain(default) refuses it."""
    size = token_count(activations, non_activating, attention)
    await off_loop(
        size,
        check_explain_records,
        method,
        activations,
        non_activating,
        top_positive_logits,
        deps,
        attention=attention,
        activations_required=activations_required,
    )
    return checked_llm(llm)


async def explain(request: pb.ExplainRequest, deps: Deps) -> pb.ExplainResponse:
    """The Explain RPC."""
    method = resolve_explainer(request)
    llm = await prepare_explain(
        method,
        request.llm,
        deps,
        request.activations,
        non_activating=request.non_activating,
        top_positive_logits=request.top_positive_logits,
        attention=request.attention,
    )
    client = llm_client(llm.options, deps)
    explanation = await explain_records(
        method,
        client,
        request.activations,
        request.non_activating,
        request.top_positive_logits,
        attention=request.attention,
        max_chars=deps.limits.max_explanation_chars,
    )
    return pb.ExplainResponse(
        explanation=explanation,
        raw_answer=client.answers[-1] if client.answers else "",
        usage=client.usage.to_proto(),
        method=method.name,
    )
