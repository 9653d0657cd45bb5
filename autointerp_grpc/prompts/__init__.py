"""Prompt builders and answer parsers for the explanation formats delphi does not ship.

Pure functions: no I/O, no delphi imports, deterministic output. A *record* is
``(tokens, values)``: a latent's string tokens and its activation on each of them.

* :func:`oai_token_act_pair_messages` / :func:`parse_oai_answer`: the OpenAI neuron-explainer
  style (``token<TAB>activation`` lines, activations scaled to integers 0-10, answer completes
  "the main thing this neuron does is find").
* :func:`np_max_act_messages` / :func:`parse_short_explanation`: the Neuronpedia "max
  activating" style (top tokens, windows around each record's strongest token, optionally the
  next tokens and the tokens the latent promotes), answered with a 1-6 word label.
* :func:`recall_messages` / :func:`parse_recall_answer`: an LLM judge that says, per text,
  whether an explanation describes something in it (used with :data:`RECALL_DECOYS`).
* :func:`strip_reasoning`: drops ``<think>`` blocks so answers are parsed from the final
  answer, never from a reasoning trace.

Prompts carry nothing but what the model needs to answer: no marker lines for test doubles
or logs (a fake LLM recognises each format by its content). Builders raise ``ValueError`` on
unusable input; parsers raise ``ValueError`` with a short reason when an answer is unusable.
"""

from __future__ import annotations

from autointerp_grpc.prompts.common import (
    EXPLANATION_PREFIX,
    MAX_SHORT_EXPLANATION_WORDS,
    Record,
    strip_reasoning,
)
from autointerp_grpc.prompts.neuronpedia import np_max_act_messages, parse_short_explanation
from autointerp_grpc.prompts.oai import oai_token_act_pair_messages, parse_oai_answer
from autointerp_grpc.prompts.recall import (
    RECALL_DECOYS,
    RECALL_RESPONSE_FORMAT,
    parse_recall_answer,
    recall_messages,
)

__all__ = [
    "EXPLANATION_PREFIX",
    "MAX_SHORT_EXPLANATION_WORDS",
    "RECALL_DECOYS",
    "RECALL_RESPONSE_FORMAT",
    "Record",
    "np_max_act_messages",
    "oai_token_act_pair_messages",
    "parse_oai_answer",
    "parse_recall_answer",
    "parse_short_explanation",
    "recall_messages",
    "strip_reasoning",
]
