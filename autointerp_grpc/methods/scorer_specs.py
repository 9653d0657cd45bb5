"""The scorers' registry entries: delphi's detection, fuzzing, embedding, simulation, intruder
and example-embedding scorers, and an LLM-judge recall scorer, each a :class:`ScorerSpec` of
its implementation (one module per family), parameters class, metric and controls.

Every scorer turns its per-item results into a ScoreResult: a finite headline score, a
breakdown, and, where the items are a sample, a 95% bootstrap confidence interval. Items the
model gave no usable answer for are marked unanswered and left out of every number; nothing
answered at all is an error that says why (the provider's own error when there was one).
"""

from __future__ import annotations

from autointerp_grpc.gen.params import (
    ClassifierScorerParams,
    EmbeddingScorerParams,
    ExampleEmbeddingScorerParams,
    IntruderScorerParams,
    RecallScorerParams,
    SimulationScorerParams,
)
from autointerp_grpc.methods.classifiers import classifier_scorer
from autointerp_grpc.methods.embedding_scorers import run_embedding, run_example_embedding
from autointerp_grpc.methods.intruder import run_intruder
from autointerp_grpc.methods.recall import run_recall
from autointerp_grpc.methods.simulation import run_simulation
from autointerp_grpc.methods.spec import Metric, Needs, ScorerSpec

_CLASSIFIER_METRIC = Metric("balanced_accuracy", 0.0, 1.0, 0.5)

_LAYOUT = (
    "Layout: the examples are spread over the prompts in proportion to each prompt's size, "
    "at positions drawn with `seed` mixed with a hash of the records' content, so a judge's "
    "position bias averages to chance over latents; the breakdown is in request order."
)
_CONTROL = (
    "controlExplanation: an unrelated explanation scored on the same records and layout, "
    "reported in `control` (what the examples' content alone scores)."
)

# Inferred, not annotated ScorerSpec[Any]: so pyright checks each entry's run against its params.
SCORERS = (
    ScorerSpec(
        name="detection",
        params_type=ClassifierScorerParams,
        description="delphi's detection scorer: does each example contain what the "
        "explanation describes?",
        needs=Needs(llm=True, non_activating=True, logprobs=True, explanation=True),
        run=classifier_scorer(fuzz=False),
        metric=_CLASSIFIER_METRIC,
        controls=(_LAYOUT, _CONTROL),
    ),
    ScorerSpec(
        name="fuzz",
        params_type=ClassifierScorerParams,
        description="delphi's fuzzing scorer: are the highlighted tokens of each example the "
        "ones the explanation describes?",
        needs=Needs(llm=True, non_activating=True, logprobs=True, explanation=True),
        run=classifier_scorer(fuzz=True),
        metric=_CLASSIFIER_METRIC,
        controls=(
            _LAYOUT,
            "Highlights: each activating example lends its highlight shape (runs, sizes, "
            "relative positions) to an equal share of the non-activating examples, so no "
            "shape repeats more for one class than the other.",
            _CONTROL,
        ),
    ),
    ScorerSpec(
        name="embedding",
        params_type=EmbeddingScorerParams,
        description="delphi's embedding scorer: ROC AUC of explanation-to-text similarity, "
        "activating vs non-activating.",
        needs=Needs(embedding_model=True, non_activating=True, explanation=True),
        run=run_embedding,
        metric=Metric("roc_auc", 0.0, 1.0, 0.5),
        controls=(_CONTROL,),
    ),
    ScorerSpec(
        name="simulation",
        params_type=SimulationScorerParams,
        description="OpenAI-style simulation: correlation of predicted (0-10) and true "
        "activations, pooled over all tokens; predictions are expected values over the "
        "digits' top log probabilities (logprob_ev) where the provider sends them, else "
        "delphi's JSON point guesses (mode).",
        needs=Needs(llm=True, non_activating=True, logprobs=True, explanation=True),
        run=run_simulation,
        metric=Metric("pearson_correlation", -1.0, 1.0, 0.0),
        controls=(
            "A simulation that predicts one value everywhere is an error, not a correlation of 0.",
            _CONTROL,
        ),
    ),
    ScorerSpec(
        name="intruder",
        params_type=IntruderScorerParams,
        description="delphi's intruder scorer (explanation-free): can the model spot the "
        "non-activating example among activating ones?",
        needs=Needs(llm=True, non_activating=True),
        run=run_intruder,
        metric=Metric("accuracy", 0.0, 1.0, 0.2),
        controls=(
            "Explanation-free. The intruder is highlighted as the real examples are (its "
            "highlight shape copied from an activating record not shown in its prompt, one "
            "being left out of each prompt) and sits at a "
            "position drawn uniformly with `seed` mixed with the records' content; chance is "
            "1/options per prompt.",
        ),
    ),
    ScorerSpec(
        name="example_embedding",
        params_type=ExampleEmbeddingScorerParams,
        description="delphi's example-embedding scorer (explanation-free): do activating "
        "examples embed closer to each other than to non-activating ones?",
        needs=Needs(embedding_model=True, non_activating=True),
        run=run_example_embedding,
        metric=Metric("accuracy", 0.0, 1.0, 0.5),
        controls=(
            "Explanation-free. Records are compared as plain text (no highlight marks), "
            "and a query's own text is never its context.",
        ),
    ),
    ScorerSpec(
        name="recall",
        params_type=RecallScorerParams,
        description="An LLM judge says, per text, whether the explanation fits it (activating, "
        "non-activating and fixed decoy texts); balanced accuracy.",
        needs=Needs(llm=True, non_activating=True, explanation=True),
        run=run_recall,
        metric=_CLASSIFIER_METRIC,
        controls=(
            _LAYOUT,
            "The server's decoy texts are judged as non-activating and reported apart "
            "(`extraMetrics.decoy_rejection`).",
            _CONTROL,
        ),
    ),
)
