"""A small bulk run's results file for the report tests, written by the CLI's own
``ResultWriter`` (so the lines are exactly what ``autointerp run`` writes) for the features of
examples/features.jsonl: three scorers with intervals, chance and coverage; a best-of-k
latent; an in-sample one; a feature that failed as a whole; one whose fuzz scorer failed; a
feature re-run after a failure (two lines: the last counts); and a line cut short."""

from __future__ import annotations

from pathlib import Path

from autointerp_grpc.cli.results import ResultWriter
from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2 as pb

REPO = Path(__file__).resolve().parents[1]
FEATURES = REPO / "examples" / "features.jsonl"

# id -> (explanation, detection, fuzz, embedding); None: that scorer failed / the feature did.
SCORES: dict[str, tuple[str, float | None, float | None, float | None]] = {
    "layer6/cat": ('Mentions of "cat"', 1.0, 0.95, 0.98),
    "layer6/numbers": ("Numbers written as digits", 0.9, 0.85, 0.94),
    "layer6/the": ('The word "the"', 0.6, 0.55, 0.71),
    "layer8/close-paren": ("Closing parentheses in code", 0.8, 0.9, 0.88),
    "layer8/weather": ("Weather words such as rain and snow", 0.7, None, 0.9),
    "layer8/python-keywords": ("", None, None, None),
    "layer10/money": ("Amounts of money and currency signs", 0.75, 0.65, 0.83),
    "layer10/french": ("Words in French", 0.5, 0.6, 0.66),
}
METRICS = {"detection": "balanced_accuracy", "fuzz": "balanced_accuracy", "embedding": "roc_auc"}
FAILED_WHOLE = "layer8/python-keywords"
FUZZ_FAILED = "layer8/weather"
BEST_OF_K = "layer6/cat"
IN_SAMPLE = "layer10/french"
RERUN = "layer6/numbers"


def _outcome(method: str, score: float | None, index: int) -> pb.ScorerOutcome:
    outcome = pb.ScorerOutcome(method=method, metric=METRICS[method], chance=0.5)
    if score is None:
        outcome.error.code = "UNAVAILABLE"
        outcome.error.message = "only 3/10 activating items answered (coverage floor 0.8)"
        return outcome
    outcome.score = score
    half = 0.05 + 0.01 * index
    outcome.confidence_interval.CopyFrom(
        pb.ConfidenceInterval(
            lower=max(0.0, score - half), upper=min(1.0, score + half), level=0.95, resamples=999
        )
    )
    if method != "embedding":
        outcome.coverage.CopyFrom(
            pb.Coverage(
                answered=9 if index == 2 else 10,
                total=10,
                activating_answered=4 if index == 2 else 5,
                activating_total=5,
                non_activating_answered=5,
                non_activating_total=5,
            )
        )
    if index == 2 and method == "detection":
        outcome.notes.append("1 of 2 batches answered no usable line")
    return outcome


def result_for(feature_id: str, index: int) -> pb.FeatureResult:
    """The final result of one feature of the fixture run."""
    explanation, *scores = SCORES[feature_id]
    result = pb.FeatureResult(
        id=feature_id, explanation=explanation, train_records=6, test_records=6, seconds=1.5
    )
    result.usage.CopyFrom(
        pb.Usage(llm_calls=7, prompt_tokens=4000 + 100 * index, completion_tokens=20, cost=0.004)
    )
    if feature_id == FAILED_WHOLE:
        result.error.code = "INVALID_ARGUMENT"
        result.error.message = "activations[2] must have one value per token (3 tokens, 2 values)"
        result.train_records = result.test_records = 0
        result.usage.CopyFrom(pb.Usage())
        return result
    for method, score in zip(("detection", "fuzz", "embedding"), scores, strict=True):
        result.scores.append(_outcome(method, score, index))
    if feature_id == BEST_OF_K:
        result.candidates.extend(
            [
                pb.Candidate(explanation="Animals", score=0.7),
                pb.Candidate(explanation='Mentions of "cat"', score=0.9),
                pb.Candidate(explanation="Pets at home"),
            ]
        )
        result.validation_records = 4
        result.test_records = 4
    if feature_id == IN_SAMPLE:
        result.in_sample = True
        result.test_records = 0
        result.train_records = 12
        result.notes.append("scored in-sample: too few records to hold any out")
    if index % 2 == 1:  # half the features answered partly from the response store
        result.usage.cached_responses = 3
        result.usage.saved_cost = 0.0015
    else:  # the others partly from the provider's prompt cache
        result.usage.cached_prompt_tokens = 1500
    return result


def write_run(directory: Path) -> Path:
    """Write the fixture run's results file into ``directory``; return its path."""
    path = directory / "results.jsonl"
    writer = ResultWriter(path)
    try:
        first_try = pb.FeatureResult(id=RERUN, seconds=0.2)
        first_try.error.code = "UNAVAILABLE"
        first_try.error.message = "provider down"
        writer.write(first_try)  # superseded by its re-run's line below
        for index, feature_id in enumerate(SCORES):
            writer.write(result_for(feature_id, index))
    finally:
        writer.close()
    with path.open("a", encoding="utf-8") as handle:
        handle.write('{"id": "layer9/cut-short", "explanation": "Cut sh')  # a crash mid-line
    return path
