"""Our numpy metrics agree with sklearn's, and the bootstrap behaves."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)

from autointerp_grpc.methods import metrics


@pytest.mark.parametrize("seed", range(20))
def test_classifier_metrics_match_sklearn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(4, 60))
    truth = rng.random(n) < 0.5
    truth[0], truth[1] = True, False
    predicted = rng.random(n) < 0.5
    probabilities = rng.random(n).round(1)  # ties on purpose
    got = metrics.classifier_metrics(truth.tolist(), predicted.tolist(), probabilities.tolist(), 3)
    assert got.balanced_accuracy == pytest.approx(balanced_accuracy_score(truth, predicted))
    assert got.accuracy == pytest.approx(accuracy_score(truth, predicted))
    assert got.precision == pytest.approx(precision_score(truth, predicted, zero_division=0))
    assert got.recall == pytest.approx(recall_score(truth, predicted, zero_division=0))
    assert got.f1 == pytest.approx(f1_score(truth, predicted, zero_division=0))
    assert got.auc == pytest.approx(roc_auc_score(truth, probabilities))
    assert got.true_positives + got.false_negatives == truth.sum()
    assert got.answered == n and got.unanswered == 3


def test_auc_is_absent_without_probabilities() -> None:
    got = metrics.classifier_metrics([True, False], [True, True], [None, None], 0)
    assert not got.HasField("auc")
    assert got.balanced_accuracy == 0.5


def test_roc_auc_single_class_is_nan() -> None:
    assert np.isnan(metrics.roc_auc([True, True], [0.1, 0.2]))


def test_intervals_contain_the_estimate_and_are_deterministic() -> None:
    truth = [True] * 10 + [False] * 10
    predicted = [True] * 8 + [False] * 2 + [False] * 9 + [True]
    first = metrics.balanced_accuracy_interval(truth, predicted)
    again = metrics.balanced_accuracy_interval(truth, predicted)
    assert first == again
    estimate = balanced_accuracy_score(truth, predicted)
    assert first.lower <= estimate <= first.upper
    assert first.level == 0.95 and first.resamples > 900
    scores = list(np.linspace(0, 1, 20))
    auc = metrics.auc_interval(truth, scores)
    assert auc.lower <= roc_auc_score(truth, scores) <= auc.upper


def test_interval_needs_enough_usable_resamples() -> None:
    assert metrics.balanced_accuracy_interval([True], [True]) is None
    # One activating item among 301: about a third of the resamples miss it and are skipped.
    assert metrics.balanced_accuracy_interval([True] + [False] * 300, [True] * 301) is not None
    assert metrics.mean_interval([1.0]) is None
