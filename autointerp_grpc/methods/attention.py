"""The attention-head explainer: OpenAI's ``oai_attention_head`` format, as Neuronpedia's webapp
sends it, as a delphi ``Explainer`` subclass.

It reads the request's attention records (``ExplainContext.attention``), not activation
records; see :mod:`autointerp_grpc.prompts.oai_attention` for the format and its anchors
(hijohnnylin/neuronpedia ``apps/webapp/lib/external/autointerp-explainer-att.ts`` and
``autointerp-shared.ts``; PyPI automated-interpretability ``AttentionHeadExplainer``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from autointerp_grpc.delphi_compat import Explainer, Latent, LatentRecord
from autointerp_grpc.errors import InvalidArgument
from autointerp_grpc.gen.params import OaiAttentionHeadParams
from autointerp_grpc.methods.spec import ExplainContext, ExplainerSpec, Needs
from autointerp_grpc.prompts.oai_attention import (
    ATTENTION_ANSWER_SHAPE,
    oai_attention_head_messages,
    parse_attention_head_answer,
)


@dataclass
class OaiAttentionHeadExplainer(Explainer):
    """OpenAI's attention-head format: "to" tokens as ``**tok**``, "from" tokens as ``[[tok]]``;
    the answer completes "this attention head".

    The prompt is built once, from the attention records, when the explainer is made
    (:func:`build_oai_attention_head`). delphi's ``Explainer.__call__`` passes
    ``record.train`` to :meth:`_build_prompt`; that list is empty here and not read.
    """

    answer_shape: ClassVar[str] = ATTENTION_ANSWER_SHAPE
    messages: list[dict[str, str]] = field(default_factory=list)

    def _build_prompt(self, examples: list[Any]) -> list[dict]:
        return [dict(message) for message in self.messages]

    def parse_explanation(self, text: str) -> str:
        # A ValueError here makes delphi answer "Explanation could not be parsed.", which the
        # Explain handler retries once and then reports as an upstream error.
        return parse_attention_head_answer(text)


def build_oai_attention_head(
    ctx: ExplainContext[OaiAttentionHeadParams],
) -> tuple[Explainer, LatentRecord]:
    """The explainer for ``ctx.attention`` (already validated by ``check_attention``) and an
    empty latent record (the explainer never reads its examples)."""
    if not ctx.attention:
        raise InvalidArgument("attention is required by the oai_attention_head explainer")
    try:
        messages = oai_attention_head_messages(ctx.attention, max_records=ctx.params.max_records)
    except ValueError as exc:
        # check_attention refuses what the builder refuses; this only guards a caller that
        # skipped it.
        raise InvalidArgument(f"attention records cannot be shown: {exc}") from exc
    return OaiAttentionHeadExplainer(ctx.client, messages=messages), LatentRecord(
        Latent("latent", 0)
    )


ATTENTION_EXPLAINERS = (  # inferred, so the entry's build is checked against its params
    ExplainerSpec(
        name="oai_attention_head",
        params_type=OaiAttentionHeadParams,
        description="OpenAI attention-head format as Neuronpedia sends it (oai_attention-head): "
        'each record\'s "to" token as **tok**, its "from" token as [[tok]]; completes "this '
        'attention head".',
        needs=Needs(llm=True, attention=True),
        build=build_oai_attention_head,
    ),
)
