"""The explainers: delphi's default and contrastive explainers, and the OpenAI token/activation
and Neuronpedia max-activation formats as delphi ``Explainer`` subclasses.

Each entry's ``build`` makes the explainer and the latent record for one request; the Explain
handler runs it (retrying an unparsable answer once).

Each explainer class names the answer its format asks for in ``answer_shape`` (read by
:func:`answer_shape`), so a failure says what that format expected. Each format's parser also
refuses an answer shaped like its prompt's data (a model that continues the records instead of
explaining them: ``names of day<TAB>0`` for the OpenAI format, ``Example 4: ...`` for
delphi's): such an answer is unparsable, retried, then an error, never stored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, ClassVar

from autointerp_grpc import prompts
from autointerp_grpc.delphi_compat import (
    ContrastiveExplainer,
    DefaultExplainer,
    Explainer,
    Latent,
    LatentRecord,
)
from autointerp_grpc.errors import InvalidArgument
from autointerp_grpc.gen.params import (
    ContrastiveExplainerParams,
    DefaultExplainerParams,
    NpMaxActParams,
    OaiTokenActPairParams,
)
from autointerp_grpc.methods.spec import ExplainContext, ExplainerSpec, Needs
from autointerp_grpc.prompts.neuronpedia import NP_ANSWER_SHAPE, NP_TEXTS, NP_WINDOW
from autointerp_grpc.prompts.oai import OAI_ANSWER_SHAPE

DELPHI_ANSWER_SHAPE = (
    "a last line '[EXPLANATION]: <explanation>' (delphi's format), not a copy of the "
    "examples' 'Example N:' or 'Activations:' lines"
)
"""What delphi's default and contrastive explainers ask for, as failure messages name it."""
ANY_ANSWER_SHAPE = "an explanation in the format its prompt asks for"
"""The shape named for an explainer that does not name its own."""


def answer_shape(explainer: Explainer) -> str:
    """The answer ``explainer``'s format asks for: its class's ``answer_shape``."""
    shape = getattr(explainer, "answer_shape", None)
    if isinstance(shape, str) and shape:
        return shape
    return ANY_ANSWER_SHAPE


# The lines delphi writes for its examples (prompt_builder, contrastive_explainer): "Example
# 3:  text with <<marked>> tokens", "Activations: ("tok" : 8), ...", the section names.
_DELPHI_DATA_RE = re.compile(
    r"\s*+(?:Example\s++\d++\s*+:|Activations\s*+:|(?:NON-)?ACTIVATING EXAMPLES\s*+:)"
)


def is_delphi_data_line(line: str) -> bool:
    """Whether a line of a delphi explanation is shaped like its prompt's example lines."""
    return _DELPHI_DATA_RE.match(line) is not None


def _not_examples(explanation: str) -> str:
    """``explanation`` (delphi's parse: what follows ``[EXPLANATION]:``); ``ValueError`` when a
    line of it is one of the prompt's example lines (delphi's ``__call__`` then answers its
    "could not be parsed" placeholder, which the Explain handler retries)."""
    if any(is_delphi_data_line(line) for line in explanation.splitlines()):
        raise ValueError("the explanation copies the examples instead of explaining them")
    return explanation


@dataclass
class DelphiDefaultExplainer(DefaultExplainer):
    """delphi's default explainer, refusing an explanation shaped like its examples."""

    answer_shape: ClassVar[str] = DELPHI_ANSWER_SHAPE

    def parse_explanation(self, text: str) -> str:
        return _not_examples(super().parse_explanation(text))


@dataclass
class DelphiContrastiveExplainer(ContrastiveExplainer):
    """delphi's contrastive explainer, refusing an explanation shaped like its examples."""

    answer_shape: ClassVar[str] = DELPHI_ANSWER_SHAPE

    def parse_explanation(self, text: str) -> str:
        return _not_examples(super().parse_explanation(text))


def latent_record(ctx: ExplainContext[Any]) -> LatentRecord:
    """The delphi latent record an explainer reads: ``train`` the activating examples,
    ``not_active`` the non-activating ones."""
    record = LatentRecord(Latent("latent", 0))
    record.train = ctx.activating
    record.not_active = ctx.non_activating
    return record


def token_value_pairs(examples: list[Any]) -> list[tuple[list[str], list[float]]]:
    """Each example as (its tokens, its activation values), what the prompt builders take."""
    return [(list(e.str_tokens), e.activations.tolist()) for e in examples]


def _build_default(ctx: ExplainContext[DefaultExplainerParams]) -> tuple[Explainer, LatentRecord]:
    p = ctx.params
    explainer = DelphiDefaultExplainer(
        ctx.client, threshold=p.threshold, activations=p.show_activations, cot=p.chain_of_thought
    )
    return explainer, latent_record(ctx)


def _fires(example: Any) -> bool:
    return example.activations.numel() > 0 and float(example.activations.max()) > 0


def _build_contrastive(
    ctx: ExplainContext[ContrastiveExplainerParams],
) -> tuple[Explainer, LatentRecord]:
    """delphi's ContrastiveExplainer lists ``record.train`` under "ACTIVATING EXAMPLES" and
    ``record.not_active`` under "NON-ACTIVATING EXAMPLES".

    Only records of ``activations`` with a positive activation go under activating examples;
    records that never exceed 0 are left out of the prompt altogether. They are not moved to
    the non-activating side: the caller's ``non_activating`` records are required here (so
    that side is never empty) and stay the only negatives shown, labelled by the caller.
    """
    if not ctx.non_activating:
        raise InvalidArgument("non_activating is required by the contrastive explainer")
    activating = [e for e in ctx.activating if _fires(e)]
    if not activating:
        raise InvalidArgument(
            "the contrastive explainer needs at least one record of activations with a "
            "positive activation value"
        )
    p = ctx.params
    explainer = DelphiContrastiveExplainer(
        ctx.client,
        threshold=p.threshold,
        activations=p.show_activations,
        max_examples=p.max_examples,
        max_non_activating=p.max_non_activating,
    )
    record = latent_record(ctx)
    record.train = activating
    return explainer, record


@dataclass
class OaiTokenActPairExplainer(Explainer):
    """The OpenAI neuron-explainer format: token<TAB>activation lines, 0 to 10."""

    answer_shape: ClassVar[str] = OAI_ANSWER_SHAPE
    max_records: int = 20

    def _build_prompt(self, examples: list[Any]) -> list[dict]:
        return prompts.oai_token_act_pair_messages(
            token_value_pairs(examples), max_records=self.max_records
        )

    def parse_explanation(self, text: str) -> str:
        return prompts.parse_oai_answer(text)


@dataclass
class NpMaxActExplainer(Explainer):
    """Neuronpedia's max-activation format (optionally with next tokens and top logits); see
    :mod:`autointerp_grpc.prompts.neuronpedia` for the anchor files (hijohnnylin/neuronpedia
    apps/webapp/lib/external/autointerp-explainer-acts.ts and -logits.ts)."""

    answer_shape: ClassVar[str] = NP_ANSWER_SHAPE
    top_tokens: int = NP_TEXTS
    top_texts: int = NP_TEXTS
    window: int = NP_WINDOW
    logits: bool = False
    next_tokens: int = NP_TEXTS
    top_positive_logits: list[str] = field(default_factory=list)

    def _build_prompt(self, examples: list[Any]) -> list[dict]:
        return prompts.np_max_act_messages(
            token_value_pairs(examples),
            top_tokens=self.top_tokens,
            top_texts=self.top_texts,
            window=self.window,
            logits=self.logits,
            top_positive_logits=self.top_positive_logits or None,
            next_tokens=self.next_tokens,
        )

    def parse_explanation(self, text: str) -> str:
        return prompts.parse_short_explanation(text)


def _build_oai(ctx: ExplainContext[OaiTokenActPairParams]) -> tuple[Explainer, LatentRecord]:
    explainer = OaiTokenActPairExplainer(ctx.client, max_records=ctx.params.max_records)
    return explainer, latent_record(ctx)


def _np_max_act(
    ctx: ExplainContext[NpMaxActParams], logits: bool
) -> tuple[Explainer, LatentRecord]:
    # check_explain_records has made sure a method that needs logits (needs.logits) has them.
    top_logits = list(ctx.top_positive_logits)
    p = ctx.params
    explainer = NpMaxActExplainer(
        ctx.client,
        top_tokens=p.top_tokens,
        top_texts=p.top_texts,
        window=p.window,
        logits=logits,
        next_tokens=p.next_tokens,
        top_positive_logits=top_logits,
    )
    return explainer, latent_record(ctx)


def _build_np_max_act(ctx: ExplainContext[NpMaxActParams]) -> tuple[Explainer, LatentRecord]:
    return _np_max_act(ctx, logits=False)


def _build_np_max_act_logits(ctx: ExplainContext[NpMaxActParams]) -> tuple[Explainer, LatentRecord]:
    return _np_max_act(ctx, logits=True)


# Not annotated as ExplainerSpec[Any]: that expected type would let pyright accept an entry
# whose build takes another method's parameters; inferred, each entry is checked.
EXPLAINERS = (
    ExplainerSpec(
        name="default",
        params_type=DefaultExplainerParams,
        description="delphi's default explainer: highlighted activating tokens in context.",
        needs=Needs(llm=True),
        build=_build_default,
    ),
    ExplainerSpec(
        name="contrastive",
        params_type=ContrastiveExplainerParams,
        description="delphi's contrastive explainer: activating records set against "
        "non-activating ones.",
        needs=Needs(llm=True, non_activating=True),
        build=_build_contrastive,
    ),
    ExplainerSpec(
        name="oai_token_act_pair",
        params_type=OaiTokenActPairParams,
        description="OpenAI neuron-explainer format: token<TAB>activation (0-10) lines; "
        'completes "the main thing this neuron does is find".',
        needs=Needs(llm=True),
        build=_build_oai,
    ),
    ExplainerSpec(
        name="np_max_act",
        params_type=NpMaxActParams,
        description="Neuronpedia max-activation format (np_max-act): each top text's max "
        "token and the text around it; a 1-6 word explanation.",
        needs=Needs(llm=True),
        build=_build_np_max_act,
    ),
    ExplainerSpec(
        name="np_max_act_logits",
        params_type=NpMaxActParams,
        description="Neuronpedia np_max-act-logits: np_max_act plus the token right after "
        "each max token and the top positive logits.",
        needs=Needs(llm=True, logits=True),
        build=_build_np_max_act_logits,
    ),
)
