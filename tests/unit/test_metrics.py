"""Our numpy metrics agree with sklearn's, and the intervals behave (their coverage is
measured in test_interval_coverage.py)."""

from __future__ import annotations

import math

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
    # Closed-form now (a continuity-corrected Wilson interval), so no resamples are drawn.
    assert first.level == 0.95 and first.resamples == 0
    scores = list(np.linspace(0, 1, 20))
    auc = metrics.auc_interval(truth, scores)
    assert auc.lower <= roc_auc_score(truth, scores) <= auc.upper


def test_intervals_need_both_classes_or_some_values() -> None:
    assert metrics.balanced_accuracy_interval([True], [True]) is None
    assert metrics.balanced_accuracy_interval([False, False], [True, False]) is None
    assert metrics.auc_interval([True, True], [0.1, 0.2]) is None
    assert metrics.mean_interval([]) is None
    # One activating item among 301 is enough for an interval (a wide one: one item).
    one = metrics.balanced_accuracy_interval([True] + [False] * 300, [True] * 301)
    assert one is not None and one.upper - one.lower > 0.3
    # A single outcome gives an interval too: it is just very wide (the old bootstrap had none).
    single = metrics.mean_interval([1.0])
    assert single is not None and single.upper == 1.0 and single.lower < 0.1


PROMPTS_OF_5 = {n: [i // 5 for i in range(n)] for n in (10, 20, 25, 40)}


@pytest.mark.parametrize(("n_act", "n_non"), [(5, 20), (10, 10), (20, 20), (3, 30)])
@pytest.mark.parametrize("clustered", [False, True])
def test_a_perfect_score_never_gets_a_zero_width_interval(
    n_act: int, n_non: int, clustered: bool
) -> None:
    truth = [True] * n_act + [False] * n_non
    clusters = [i // 5 for i in range(len(truth))] if clustered else None
    perfect = metrics.balanced_accuracy_interval(truth, truth, clusters)
    assert perfect.upper == 1.0 and perfect.upper - perfect.lower > 0.05
    inverted = metrics.balanced_accuracy_interval(truth, [not t for t in truth], clusters)
    assert inverted.lower == 0.0 and inverted.upper - inverted.lower > 0.05
    separated = metrics.auc_interval(truth, [float(t) for t in truth])
    assert separated.upper == 1.0 and separated.upper - separated.lower > 0.05
    all_right = metrics.mean_interval([1.0] * len(truth), clusters)
    assert all_right.upper == 1.0 and all_right.upper - all_right.lower > 0.02


def test_five_of_five_right_is_far_from_certain() -> None:
    interval = metrics.mean_interval([1.0] * 5)
    assert interval.upper == 1.0
    assert 0.4 < interval.lower < 0.5  # continuity-corrected Wilson: 0.463


@pytest.mark.parametrize("seed", range(30))
def test_intervals_stay_in_range_and_hold_the_estimate(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 80))
    truth = rng.random(n) < rng.uniform(0.1, 0.9)
    truth[0], truth[1] = True, False
    predicted = np.where(rng.random(n) < rng.uniform(0.3, 1.0), truth, ~truth)
    clusters = (np.arange(n) // int(rng.integers(1, 8))).tolist()
    scores = (truth * rng.uniform(0, 3) + rng.standard_normal(n)).round(1)  # ties on purpose
    values = rng.choice([0.0, 0.5, 1.0], size=n)
    checks = [
        (
            metrics.balanced_accuracy_interval(truth.tolist(), predicted.tolist(), clusters),
            balanced_accuracy_score(truth, predicted),
        ),
        (
            metrics.balanced_accuracy_interval(truth.tolist(), predicted.tolist()),
            balanced_accuracy_score(truth, predicted),
        ),
        (metrics.auc_interval(truth.tolist(), scores.tolist()), roc_auc_score(truth, scores)),
        (metrics.mean_interval(values.tolist(), clusters), values.mean()),
        (metrics.mean_interval(values.tolist()), values.mean()),
    ]
    for interval, estimate in checks:
        assert 0.0 <= interval.lower <= estimate + 1e-12
        assert estimate - 1e-12 <= interval.upper <= 1.0
        assert interval.upper > interval.lower
        assert interval.level == 0.95


def test_prompts_answered_alike_widen_the_interval() -> None:
    # Four prompts of 5: prompts 0 and 2 all right, 1 and 3 all wrong (answers alike within a
    # prompt), against the same answers spread over the prompts.
    truth = [True, False] * 10
    alike = [t if (i // 5) % 2 == 0 else not t for i, t in enumerate(truth)]
    spread = [t if i % 2 == 0 or i % 4 == 1 else not t for i, t in enumerate(truth)]
    alike_ci = metrics.balanced_accuracy_interval(truth, alike, PROMPTS_OF_5[20])
    plain_ci = metrics.balanced_accuracy_interval(truth, alike)
    assert alike_ci.upper - alike_ci.lower > 1.5 * (plain_ci.upper - plain_ci.lower)
    # Answers that do not cluster: the prompt ids cost no more than the few-prompt floor (a
    # design effect of t_3/z = 1.62 at 4 prompts, about 1.27 times the width).
    spread_ci = metrics.balanced_accuracy_interval(truth, spread, PROMPTS_OF_5[20])
    spread_plain = metrics.balanced_accuracy_interval(truth, spread)
    width = spread_plain.upper - spread_plain.lower
    assert spread_ci.upper - spread_ci.lower <= 1.3 * width
    # The same for accuracy.
    outcomes = [1.0] * 5 + [0.0] * 5 + [1.0] * 5 + [0.0] * 5
    clustered = metrics.mean_interval(outcomes, PROMPTS_OF_5[20])
    plain = metrics.mean_interval(outcomes)
    assert clustered.upper - clustered.lower > 1.5 * (plain.upper - plain.lower)


def test_a_single_prompt_counts_as_one_item() -> None:
    # Everything in one prompt: the interval is that of a single answer, whatever the count.
    single = metrics.mean_interval([1.0] * 20, [7] * 20)
    assert single == metrics.mean_interval([1.0])


def test_cluster_ids_must_match_the_items() -> None:
    with pytest.raises(ValueError, match="cluster ids"):
        metrics.balanced_accuracy_interval([True, False], [True, False], [0])
    with pytest.raises(ValueError, match="cluster ids"):
        metrics.mean_interval([1.0, 0.0], [0, 1, 2])


def test_cluster_ids_may_be_any_hashable() -> None:
    numbers = metrics.mean_interval([1.0, 1.0, 0.0, 1.0], [0, 0, 1, 1])
    names = metrics.mean_interval([1.0, 1.0, 0.0, 1.0], ["q-a", "q-a", "q-b", "q-b"])
    assert numbers == names


def test_small_sample_note() -> None:
    assert metrics.small_sample_note(10, 10) is None
    assert metrics.small_sample_note(40, 200) is None
    for counts in [(9, 20), (20, 9), (0, 0), (3, 30)]:
        note = metrics.small_sample_note(*counts)
        assert note is not None and note.endswith(".") and note.count(". ") == 0
        assert f"{counts[0]} activating" in note and f"{counts[1]} non-activating" in note
        assert str(metrics.SMALL_SAMPLE_MIN) in note


def test_bootstrap_interval_is_deterministic_and_holds_the_estimate() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal(30)
    y = -x + rng.standard_normal(30)

    def correlation(indices: object) -> float:
        value = metrics.pearson(x[indices], y[indices])
        if value is None:
            raise ValueError("constant")
        return value

    first = metrics.bootstrap_interval(30, correlation)
    assert first == metrics.bootstrap_interval(30, correlation)
    estimate = correlation(np.arange(30))
    # A correlation's interval stays in its own range (here negative), not [0, 1].
    assert -1.0 <= first.lower <= estimate <= first.upper < 0.0
    assert first.level == 0.95 and first.resamples > 900


def test_bootstrap_resamples_whole_clusters() -> None:
    clusters = [0, 0, 0, 1, 1, 2, 3, 3, 3, 3]
    members = {c: {i for i, k in enumerate(clusters) if k == c} for c in set(clusters)}
    seen: list[list[int]] = []

    def statistic(indices: object) -> float:
        seen.append(list(indices))  # type: ignore[call-overload]
        return float(len(seen) % 7)

    assert metrics.bootstrap_interval(len(clusters), statistic, clusters) is not None
    resamples = seen[1 : 1 + metrics.BOOTSTRAP_RESAMPLES]
    for indices in resamples:
        counts = {c: sum(1 for i in indices if i in m) for c, m in members.items()}
        # Each cluster appears whole, a whole number of times; four clusters drawn in all.
        assert all(count % len(members[c]) == 0 for c, count in counts.items())
        assert sum(count // len(members[c]) for c, count in counts.items()) == 4
    assert {i for indices in resamples for i in indices} == set(range(len(clusters)))


def test_bootstrap_interval_needs_clusters_a_defined_statistic_and_usable_resamples() -> None:
    assert metrics.bootstrap_interval(1, lambda _: 0.5) is None
    assert metrics.bootstrap_interval(5, lambda _: 0.5, [0] * 5) is None

    def undefined(_: object) -> float:
        raise ValueError("constant")

    assert metrics.bootstrap_interval(10, undefined) is None
    # Defined on all items but on almost no resample (it needs item 0 exactly once).
    assert (
        metrics.bootstrap_interval(
            10,
            lambda idx: 1.0 if list(idx).count(0) == 1 and len(set(idx)) == 10 else math.nan,
        )
        is None
    )
