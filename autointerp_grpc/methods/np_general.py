"""Neuronpedia's newer explainer types as delphi ``Explainer`` subclasses:
``np_acts_logits_general`` (Neuronpedia's ``np_acts-logits-general``) and ``python_code``
(``python-code``).

See :mod:`autointerp_grpc.prompts.np_general` for the format and its anchors
(automated-interpretability 0.0.24 ``neuron_explainer/explanations/explainer.py``
``MaxActivationAndLogitsGeneralExplainer`` and ``PythonCodeExplainer``, called by
hijohnnylin/neuronpedia ``utils/neuronpedia-utils/neuronpedia_utils/batch-autointerp.py``).

Neuronpedia's batch always passes the feature's top positive logits (``feature.pos_str``) to
both. ``np_acts_logits_general`` shows them, so it requires ``top_positive_logits``;
``python_code`` never puts them in its prompt, so it does not read them. ``python_code`` only
shows code to the model: nothing is executed, here or in the anchor.

Neuronpedia's third newer type name, ``baez``, has no format in any anchor we could read, so
it is not offered.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from autointerp_grpc.delphi_compat import Explainer, LatentRecord
from autointerp_grpc.gen.params import NpActsLogitsGeneralParams, PythonCodeParams
from autointerp_grpc.methods.explainers import latent_record, token_value_pairs
from autointerp_grpc.methods.spec import ExplainContext, ExplainerSpec, Needs
from autointerp_grpc.prompts.np_general import (
    NP_GENERAL_ANSWER_SHAPE,
    NP_GENERAL_TEXTS,
    NP_GENERAL_WINDOW,
    PYTHON_CODE_ANSWER_SHAPE,
    PYTHON_CODE_WINDOW,
    np_acts_logits_general_messages,
    parse_np_general_answer,
    parse_python_code_answer,
    python_code_messages,
)


class _WholeAnswerExplainer(Explainer):
    """An explainer whose whole answer is the explanation. An unusable answer (empty, giving
    up, too long) parses to delphi's placeholder, which the Explain handler retries once and
    then fails: never returned as an explanation."""

    def parse_explanation(self, text: str) -> str:
        return parse_np_general_answer(text)


@dataclass
class NpActsLogitsGeneralExplainer(_WholeAnswerExplainer):
    """Neuronpedia's ``np_acts-logits-general``: max tokens, the tokens after them, top positive
    logits and top texts; a 3-20 word phrase, no few-shot examples."""

    answer_shape: ClassVar[str] = NP_GENERAL_ANSWER_SHAPE
    top_texts: int = NP_GENERAL_TEXTS
    window: int = NP_GENERAL_WINDOW
    top_positive_logits: list[str] = field(default_factory=list)

    def _build_prompt(self, examples: list[Any]) -> list[dict]:
        return np_acts_logits_general_messages(
            token_value_pairs(examples),
            self.top_positive_logits,
            top_texts=self.top_texts,
            window=self.window,
        )


@dataclass
class PythonCodeExplainer(_WholeAnswerExplainer):
    """Neuronpedia's ``python-code``: the general format for models trained on Python code,
    each snippet's max token between ``★`` marks, no logits, a 96-token window. An answer
    holding a ``★`` mark copies a snippet: unparsable."""

    answer_shape: ClassVar[str] = PYTHON_CODE_ANSWER_SHAPE
    top_texts: int = NP_GENERAL_TEXTS
    window: int = PYTHON_CODE_WINDOW

    def parse_explanation(self, text: str) -> str:
        return parse_python_code_answer(text)

    def _build_prompt(self, examples: list[Any]) -> list[dict]:
        return python_code_messages(
            token_value_pairs(examples), top_texts=self.top_texts, window=self.window
        )


def _build_np_acts_logits_general(
    ctx: ExplainContext[NpActsLogitsGeneralParams],
) -> tuple[Explainer, LatentRecord]:
    # check_explain_records has made sure the logits this method needs (needs.logits) are there.
    p = ctx.params
    explainer = NpActsLogitsGeneralExplainer(
        ctx.client,
        top_texts=p.top_texts,
        window=p.window,
        top_positive_logits=list(ctx.top_positive_logits),
    )
    return explainer, latent_record(ctx)


def _build_python_code(ctx: ExplainContext[PythonCodeParams]) -> tuple[Explainer, LatentRecord]:
    p = ctx.params
    explainer = PythonCodeExplainer(ctx.client, top_texts=p.top_texts, window=p.window)
    return explainer, latent_record(ctx)


NP_GENERAL_EXPLAINERS = (  # inferred, so each entry's build is checked against its params
    ExplainerSpec(
        name="np_acts_logits_general",
        params_type=NpActsLogitsGeneralParams,
        description="Neuronpedia np_acts-logits-general: max tokens, the tokens after them, "
        "top positive logits and top texts, no examples; a 3-20 word phrase.",
        needs=Needs(llm=True, logits=True),
        build=_build_np_acts_logits_general,
    ),
    ExplainerSpec(
        name="python_code",
        params_type=PythonCodeParams,
        description="Neuronpedia python-code: for models of Python code, snippets with the "
        "max token between \u2605 marks (shown, never run); a 3-20 word phrase.",
        needs=Needs(llm=True),
        build=_build_python_code,
    ),
)
