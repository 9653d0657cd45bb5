"""ExplainDefault (legacy) and the shared explainer loop."""

from __future__ import annotations

import logging

from autointerp_grpc.delphi_compat import DefaultExplainer, Explainer, Latent, LatentRecord
from autointerp_grpc.errors import UpstreamBadResponse
from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2 as pb
from autointerp_grpc.handlers.deps import Deps
from autointerp_grpc.records import activating_example
from autointerp_grpc.validation import check_activations

log = logging.getLogger(__name__)

# Legacy settings: highlight tokens above 60% of the record's peak, no activation values shown.
HIGHLIGHT_THRESHOLD = 0.6
# What delphi returns instead of raising when the model's answer cannot be parsed.
DELPHI_PARSE_FAILURE = "Explanation could not be parsed."
# One retry on an unparsable answer: models occasionally drop the format once.
ATTEMPTS = 2


async def run_explainer(explainer: Explainer, record: LatentRecord) -> str:
    """Run a delphi explainer; retry an unparsable answer once, then fail.

    delphi's placeholder "Explanation could not be parsed." is never returned as an
    explanation.
    """
    for attempt in range(1, ATTEMPTS + 1):
        result = await explainer(record)
        explanation = result.explanation.strip()
        if explanation and explanation != DELPHI_PARSE_FAILURE:
            return explanation
        log.warning("explainer answer had no parsable explanation (attempt %d)", attempt)
    raise UpstreamBadResponse(
        f"The model gave no parsable explanation in {ATTEMPTS} attempts (for the default "
        "explainers: no '[EXPLANATION]:' line); try again or use another model"
    )


async def explain_default(
    request: pb.ExplainDefaultRequest, deps: Deps
) -> pb.ExplainDefaultResponse:
    check_activations(request.activations, deps.limits)
    record = LatentRecord(Latent("latent", 0))
    # Legacy semantics: every record is a training example, activating or not.
    record.train = [activating_example(r) for r in request.activations]
    client = deps.llm.client(model=request.model, api_key=request.openrouter_key)
    explainer = DefaultExplainer(client, threshold=HIGHLIGHT_THRESHOLD, activations=False)
    return pb.ExplainDefaultResponse(explanation=await run_explainer(explainer, record))
