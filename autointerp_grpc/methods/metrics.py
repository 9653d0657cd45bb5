"""Score arithmetic: classifier metrics, ROC AUC and confidence intervals that cover.

Everything is computed with numpy (and scipy's ranking) from confusion counts and ranks:
sklearn's metric functions validate their inputs on every call (milliseconds each), which
matters on the request path. The unit tests check these against sklearn's own results.

The intervals (DESIGN.md section 3a, "Intervals that cover") are closed-form where a formula
covers at small n (balanced accuracy, accuracy, AUC: well under a millisecond each) and a
cluster BCa bootstrap for any other statistic; the comment above ``CONFIDENCE_LEVEL`` says
which method and why, and tests/unit/test_interval_coverage.py measures their coverage.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Hashable, Sequence
from statistics import NormalDist

import numpy as np
from scipy.stats import rankdata
from scipy.stats import t as student_t

from autointerp_grpc.errors import UpstreamBadResponse
from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2 as pb


def finite(value: float, what: str, low: float = 0.0, high: float = 1.0) -> float:
    """``value`` as a float, or UpstreamBadResponse when it is not finite or out of range."""
    value = float(value)
    if not math.isfinite(value) or not low <= value <= high:
        raise UpstreamBadResponse(f"{what} came out as {value}, outside [{low:g}, {high:g}]")
    return value


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denominator > 0, numerator / np.maximum(denominator, 1), np.nan)


def _balanced_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Balanced accuracy along the last axis (nan where a class is absent)."""
    positives = y_true.sum(axis=-1)
    negatives = y_true.shape[-1] - positives
    tp = (y_true & y_pred).sum(axis=-1)
    tn = (~y_true & ~y_pred).sum(axis=-1)
    return (_ratio(tp, positives) + _ratio(tn, negatives)) / 2


def _roc_auc(y_true: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """ROC AUC along the last axis, via the Mann-Whitney rank sum (ties count one half);
    nan where a class is absent."""
    ranks = rankdata(scores, axis=-1)
    positives = y_true.sum(axis=-1)
    negatives = y_true.shape[-1] - positives
    rank_sum = np.where(y_true, ranks, 0).sum(axis=-1)
    return _ratio(rank_sum - positives * (positives + 1) / 2, positives * negatives)


def roc_auc(truth: Sequence[bool], scores: Sequence[float]) -> float:
    """ROC AUC of ``scores`` as a predictor of ``truth`` (nan with a single class)."""
    return float(_roc_auc(np.asarray(truth, dtype=bool), np.asarray(scores, dtype=float)))


def classifier_metrics(
    truth: Sequence[bool],
    predicted: Sequence[bool],
    probabilities: Sequence[float | None],
    unanswered: int,
) -> pb.ClassifierMetrics:
    """Every metric of the answered examples. ``truth`` must hold both classes."""
    y_true = np.asarray(truth, dtype=bool)
    y_pred = np.asarray(predicted, dtype=bool)
    tp = int((y_true & y_pred).sum())
    tn = int((~y_true & ~y_pred).sum())
    fp = int((~y_true & y_pred).sum())
    fn = int((y_true & ~y_pred).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    metrics = pb.ClassifierMetrics(
        balanced_accuracy=float(_balanced_accuracy(y_true, y_pred)),
        accuracy=(tp + tn) / len(y_true),
        precision=precision,
        recall=recall,
        f1=2 * precision * recall / (precision + recall) if precision + recall else 0.0,
        true_positives=tp,
        true_negatives=tn,
        false_positives=fp,
        false_negatives=fn,
        answered=len(y_true),
        unanswered=unanswered,
    )
    scored = [(t, p) for t, p in zip(truth, probabilities, strict=True) if p is not None]
    if scored and len({t for t, _ in scored}) == 2:
        auc = roc_auc([t for t, _ in scored], [p for _, p in scored])
        if math.isfinite(auc):  # never NaN on the wire: an AUC that is not a number is none
            metrics.auc = auc
    return metrics


# --- Confidence intervals -----------------------------------------------------------------
#
# The closed-form intervals are checked by simulation and exact binomial sums
# (tests/unit/test_interval_coverage.py): on judges of known accuracy, at the sizes callers use
# (5 + 20 examples and up), the 95% interval holds the true value in at least 93% of requests,
# also when the items that share a prompt are answered alike. The methods, and why:
#
# * Proportions (accuracy, each class's rate of balanced accuracy) use the Wilson score interval
#   with continuity correction (Newcombe 1998, method 4). The plain Wilson interval, and the
#   percentile bootstrap even more so, fall well short of 95% near 1 at small n: a judge right
#   95% of the time makes no mistake on 10 items 60% of the time and 3 mistakes 1% of the time,
#   and the interval has to allow for both. The corrected interval covers at least 95% for every
#   true rate from 0.5 to 0.99 at n = 5, 8, 10, 15, 20, 30 and 40 (exact binomial sums). An
#   all-correct class still gets a lower bound below 1 (5 of 5 right: about 0.46), so a perfect
#   score never gets a zero-width interval.
# * Items that share a prompt are answered alike (one confusing prompt costs several answers),
#   so they carry less information than independent ones. The design effect (the cluster-robust
#   variance of the estimate over the binomial variance, at least 1, at most the mean cluster
#   size) shrinks each class's n to an effective n before the interval is taken.
# * Few prompts. That variance is an estimate on k - 1 degrees of freedom for k prompts, and it
#   cannot see a prompt effect when every prompt went the same way. A judge whose prompts are
#   each perfect or 40% right at even odds (mean 0.7), detection 10 + 10 in 4 prompts of 5:
#   1 request in 16 has all four easy (20 of 20 right, which reads as a perfect independent
#   judge) and 1 in 16 all four hard; the interval covered 0.88 (3 prompts, 7 + 8: 0.82). So
#   the design effect is at least t_{k-1}/z, the factor by which Student's t on k - 1 degrees
#   of freedom widens a normal interval (1.62 at 4 prompts, 1.42 at 5, 1.15 at 10, 1.07 at
#   20: it fades as prompts accrue, and never exceeds the mean prompt size). Over 4000
#   requests that judge is then covered 0.96 / 0.97 at 4 prompts (balanced / consecutive
#   placement), 0.98 at 3, 0.99 at 5, 0.95 at 6, 0.96 at 10; mixtures of 1.0/0.5, 1.0/0.6,
#   0.9/0.5, 1.0/0.7/0.4 and 1.0/0.4/0.4 at least 0.96 at 3 and 4 prompts (2000 each). The cost
#   to an independent judge of accuracy 0.7 (mean width, prompts of 5): 0.50 -> 0.55 at
#   5 + 20, 0.46 -> 0.53 at 10 + 10, 0.32 -> 0.34 at 20 + 20, 0.225 -> 0.23 at 40 + 40.
#   Balanced accuracy takes t/z itself, not the full t correction (t/z)^2 as a variance
#   ratio: its union of two intervals (below) already holds independent answers at 0.98 or
#   more, and the square widened those to 0.61 / 0.62 / 0.36 / 0.24 for nothing. The mean
#   interval has no second interval to lean on and takes the square: with t/z alone, 4
#   clusters of 5 at 1.0/0.4 covered 0.90; with the square 0.98 (3 clusters: 1.00, 5 of 10:
#   0.94), at a cost to independent outcomes of accuracy 0.7 in 4 clusters of 5 of width
#   0.45 -> 0.62 (example_embedding's 20 batches over 10 activating queries: 0.39 -> 0.44).
#   The limit: a judge whose prompts are perfect or 80% wrong (1.0/0.2) stays at 0.89 at 4
#   prompts either way (0.94 at 5, 0.95 or more at 3 and 6): only the mean prompt size as the
#   design effect would cover it, which no independent judge should pay.
# * Balanced accuracy = (TPR + TNR) / 2 combines the two per-class intervals by Newcombe's
#   square-and-add (MOVER) rule, the same construction as his interval for a difference of
#   proportions; each class is judged on its own count (stratified). Square-and-add alone
#   dips to 0.92 when both rates are near 1 (10 + 10 items, rates 0.95), so the interval is
#   the union with a second one (balanced accuracy as one proportion at its effective size),
#   which dips elsewhere; together, at least 0.954 everywhere (see the function).
# * ROC AUC inverts the Hanley-McNeil variance as a score interval (after Newcombe 2006): the
#   variance is taken at each candidate AUC, not at the estimate, so an AUC of 1.0 still gets a
#   lower bound. Where the observed (DeLong) variance exceeds Hanley-McNeil's model, it is scaled up
#   by that ratio. It has no clusters: its one caller (the embedding scorer) embeds each record
#   on its own. Nor does the intruder's accuracy: one answer per prompt makes a prompt effect a
#   plain Bernoulli answer at the mean accuracy (1.0/0.4 prompts: covered 0.98 to 0.99).
# * A generic statistic (the simulation scorer's pooled correlation) gets a BCa bootstrap that
#   resamples whole clusters, with Hesterberg's small-sample expansion of the tail levels
#   (z -> sqrt(k / (k - 1)) t_{k-1} for k clusters); percentile intervals under-cover at small n.
#   It is the weakest of these: about 0.94 for a skewed mean over 8 or 20 prompts, but for a
#   pooled correlation over records with record effects only 0.88 / 0.89 / 0.90 / 0.94 at
#   5 / 10 / 20 / 40 records (the percentile bootstrap: 0.80 / 0.84 / 0.88 / 0.92).

CONFIDENCE_LEVEL = 0.95
_Z = NormalDist().inv_cdf(1 - (1 - CONFIDENCE_LEVEL) / 2)
BOOTSTRAP_RESAMPLES = 1000
BOOTSTRAP_SEED = 0
# Below this many usable resamples (e.g. most draw a single class) no interval is reported.
MIN_USABLE_RESAMPLES = 100
# Fewer answered items than this in either class and the response says the sample is small:
# one answer then moves that class's rate by more than 10 points, and the 95% interval of a
# balanced accuracy is about +-0.2 wide or more. The intervals still cover at these sizes (the
# coverage tests go down to 5 + 5 and 3 + 30); the note says the number is imprecise.
SMALL_SAMPLE_MIN = 10


def small_sample_note(n_activating: int, n_non_activating: int) -> str | None:
    """A one-sentence note when either class has fewer than ``SMALL_SAMPLE_MIN`` answered
    items (the score is then imprecise and its interval wide), or None."""
    if min(n_activating, n_non_activating) >= SMALL_SAMPLE_MIN:
        return None
    return (
        f"Small sample: {n_activating} activating and {n_non_activating} non-activating "
        f"item(s) answered (fewer than {SMALL_SAMPLE_MIN} in a class), so the score is "
        "imprecise: read it with its 95% interval, which is wide at this size."
    )


def _make_interval(lower: float, upper: float, estimate: float) -> pb.ConfidenceInterval:
    """An interval clipped to [0, 1] that holds ``estimate``."""
    return pb.ConfidenceInterval(
        lower=float(min(max(lower, 0.0), estimate)),
        upper=float(max(min(upper, 1.0), estimate)),
        level=CONFIDENCE_LEVEL,
    )


def _cluster_ids(clusters: Sequence[Hashable] | None, n_items: int) -> tuple[np.ndarray, int]:
    """Dense cluster ids 0..k-1 for each item and k; None makes each item its own cluster."""
    if clusters is None:
        return np.arange(n_items), n_items
    if len(clusters) != n_items:
        raise ValueError(f"{len(clusters)} cluster ids for {n_items} items")
    index: dict[Hashable, int] = {}
    ids = np.fromiter((index.setdefault(c, len(index)) for c in clusters), dtype=np.intp)
    return ids, len(index)


@functools.lru_cache(maxsize=256)
def _t_widening(k: int) -> float:
    """t_{k-1} / z: how much wider Student's t on k - 1 degrees of freedom makes a 95%
    normal interval (k >= 2 clusters; 1.62 at 4, 1.42 at 5, 1.15 at 10, 1.07 at 20).
    Cached: scipy's t quantile costs more than the rest of an interval."""
    return float(student_t.ppf(1 - (1 - CONFIDENCE_LEVEL) / 2, k - 1)) / _Z


def _design_effect(
    residuals: np.ndarray,
    clusters: Sequence[Hashable] | None,
    binomial_variance: float,
    few_clusters_power: int,
) -> float:
    """How many times the variance of a mean-type estimate exceeds its binomial variance:
    1 with no clusters; with k clusters the cluster-robust ratio, at least
    ``(t_{k-1} / z) ** few_clusters_power`` and at most the mean cluster size (every item of
    a cluster answered alike: the request then holds k independent answers).

    ``residuals`` are each item's contribution to the estimate's error (the estimate is their
    sum plus a constant); the cluster-robust variance is k/(k-1) times the sum over clusters of
    their squared cluster sums. That is an estimate on k - 1 degrees of freedom, and with few
    prompts it misses the prompt effect whenever every prompt went the same way: all easy
    looks like a perfect independent judge (no error at all to measure the clustering from),
    all hard like a poor one. Hence the floor, which fades as clusters accrue (the comment
    above ``CONFIDENCE_LEVEL`` says which power each interval uses, and why).
    """
    n_items = len(residuals)
    if clusters is None:
        return 1.0
    ids, k = _cluster_ids(clusters, n_items)
    if k < 2:
        return float(n_items)  # a single cluster: only its size is known
    ceiling = n_items / k
    floor = min(_t_widening(k) ** few_clusters_power, ceiling)
    if binomial_variance <= 0:
        return floor
    sums = np.bincount(ids, weights=residuals, minlength=k)
    variance = k / (k - 1) * float(sums @ sums)
    return min(max(floor, variance / binomial_variance), ceiling)


def _wilson_cc(p: float, n: float) -> tuple[float, float]:
    """Wilson score interval with continuity correction (Newcombe 1998, method 4) for a
    proportion ``p`` observed on ``n`` (possibly effective, fractional) items."""
    z = _Z
    z2 = z * z
    denominator = 2 * (n + z2)
    if p <= 0:
        lower = 0.0
    else:
        root = math.sqrt(max(0.0, z2 - 2 - 1 / n + 4 * p * (n * (1 - p) + 1)))
        lower = (2 * n * p + z2 - 1 - z * root) / denominator
    if p >= 1:
        upper = 1.0
    else:
        root = math.sqrt(max(0.0, z2 + 2 - 1 / n + 4 * p * (n * (1 - p) - 1)))
        upper = (2 * n * p + z2 + 1 + z * root) / denominator
    return max(0.0, min(lower, p)), min(1.0, max(upper, p))


def balanced_accuracy_interval(
    truth: Sequence[bool], predicted: Sequence[bool], clusters: Sequence[int] | None = None
) -> pb.ConfidenceInterval | None:
    """95% interval of the balanced accuracy of ``predicted`` against ``truth``.

    Stratified: each class's rate gets a continuity-corrected Wilson interval on its own count,
    and the two are combined by Newcombe's square-and-add rule; the result is widened, where
    it is narrower, to the continuity-corrected Wilson interval of the balanced accuracy taken
    as one proportion at its effective size. Each dips below 95% in a different corner (the
    first with both rates near 1, the second with a small class at a middling rate); together
    they cover at least 95.4% for every pair of rates from 0.5 to 0.99 at 5+5 to 40+40 items
    (exact binomial sums). When ``clusters`` (the prompt id of each item; None: every item its
    own prompt) groups items, every size is divided by the design effect first, which with k
    prompts is at least t_{k-1}/z (a prompt effect that few prompts cannot show). None only
    when a class is absent.
    """
    y_true = np.asarray(truth, dtype=bool)
    correct = y_true == np.asarray(predicted, dtype=bool)
    n_pos = int(y_true.sum())
    n_neg = len(y_true) - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    tpr = float(correct[y_true].mean())
    tnr = float(correct[~y_true].mean())
    residuals = np.where(y_true, (correct - tpr) / n_pos, (correct - tnr) / n_neg) / 2
    binomial = (tpr * (1 - tpr) / n_pos + tnr * (1 - tnr) / n_neg) / 4
    deff = _design_effect(residuals, clusters, binomial, few_clusters_power=1)
    estimate = (tpr + tnr) / 2
    # Square-and-add of the two classes' intervals.
    pos_low, pos_high = _wilson_cc(tpr, n_pos / deff)
    neg_low, neg_high = _wilson_cc(tnr, n_neg / deff)
    mover_low = estimate - math.hypot(tpr - pos_low, tnr - neg_low) / 2
    mover_high = estimate + math.hypot(pos_high - tpr, neg_high - tnr) / 2
    # Balanced accuracy as one proportion at its effective size: the smaller of Kish's size
    # for the two classes' weights and the binomial-to-actual variance ratio (rates smoothed
    # by one right and one wrong answer per class, so that 0 and 1 still carry variance).
    pos_rate = (tpr * n_pos + 1) / (n_pos + 2)
    neg_rate = (tnr * n_neg + 1) / (n_neg + 2)
    smoothed = (pos_rate + neg_rate) / 2
    variance = (pos_rate * (1 - pos_rate) / n_pos + neg_rate * (1 - neg_rate) / n_neg) / 4
    effective = min(4 * n_pos * n_neg / (n_pos + n_neg), smoothed * (1 - smoothed) / variance)
    pooled_low, pooled_high = _wilson_cc(estimate, effective / deff)
    return _make_interval(min(mover_low, pooled_low), max(mover_high, pooled_high), estimate)


def mean_interval(
    values: Sequence[float], clusters: Sequence[int] | None = None
) -> pb.ConfidenceInterval | None:
    """95% interval of the mean of per-item outcomes in [0, 1] (1 right, 0 wrong, or a fraction).

    A continuity-corrected Wilson interval at the effective size (the count over the design
    effect when ``clusters`` groups items; with k clusters that is at least (t_{k-1}/z)^2).
    Fractional outcomes are treated as if they were 0/1 with the same mean, which can only
    widen the interval. None when there are no values.
    """
    array = np.asarray(values, dtype=float)
    n_items = len(array)
    if n_items == 0:
        return None
    mean = float(np.clip(array.mean(), 0.0, 1.0))
    deff = _design_effect(
        (array - mean) / n_items, clusters, mean * (1 - mean) / n_items, few_clusters_power=2
    )
    low, high = _wilson_cc(mean, n_items / deff)
    return _make_interval(low, high, mean)


def _hanley_mcneil_variance(auc: float, n_pos: int, n_neg: int) -> float:
    q1_excess = (1 - auc) / (2 - auc)  # (Q1 - A^2) / (A (1 - A))
    q2_excess = auc / (1 + auc)  # (Q2 - A^2) / (A (1 - A))
    return (
        auc * (1 - auc) * (1 + (n_pos - 1) * q1_excess + (n_neg - 1) * q2_excess) / (n_pos * n_neg)
    )


def auc_interval(truth: Sequence[bool], scores: Sequence[float]) -> pb.ConfidenceInterval | None:
    """95% interval of the ROC AUC of ``scores`` as a predictor of ``truth``.

    The Hanley-McNeil variance, taken at each candidate AUC, inverted as a score interval
    (Newcombe 2006), and scaled up by the DeLong (observed) variance where that is larger than
    the model's at the estimate. None when a class is absent.
    """
    y_true = np.asarray(truth, dtype=bool)
    y_score = np.asarray(scores, dtype=float)
    positives = y_score[y_true]
    negatives = np.sort(y_score[~y_true])
    n_pos, n_neg = len(positives), len(negatives)
    if n_pos == 0 or n_neg == 0:
        return None
    # Placements (ties count one half): the share of negatives each positive beats, and the
    # share of positives that beat each negative. Their means are the AUC.
    below = np.searchsorted(negatives, positives, side="left")
    at_or_below = np.searchsorted(negatives, positives, side="right")
    positive_placements = (below + at_or_below) / (2 * n_neg)
    sorted_pos = np.sort(positives)
    above = n_pos - np.searchsorted(sorted_pos, negatives, side="right")
    at_or_above = n_pos - np.searchsorted(sorted_pos, negatives, side="left")
    negative_placements = (above + at_or_above) / (2 * n_pos)
    estimate = float(positive_placements.mean())
    inflation = 1.0
    if 0 < estimate < 1 and n_pos > 1 and n_neg > 1:
        delong = positive_placements.var(ddof=1) / n_pos + negative_placements.var(ddof=1) / n_neg
        inflation = max(1.0, delong / _hanley_mcneil_variance(estimate, n_pos, n_neg))
    z2 = _Z * _Z * inflation

    def outside(auc: float) -> bool:
        return (auc - estimate) ** 2 > z2 * _hanley_mcneil_variance(auc, n_pos, n_neg)

    # Bisection for each end: outside at 0 and 1 (zero variance there), inside at the estimate.
    low_out, low_in, high_in, high_out = 0.0, estimate, estimate, 1.0
    for _ in range(40):
        middle = (low_out + low_in) / 2
        if outside(middle):
            low_out = middle
        else:
            low_in = middle
        middle = (high_in + high_out) / 2
        if outside(middle):
            high_out = middle
        else:
            high_in = middle
    return _make_interval(low_out, high_out, estimate)


def _cluster_resamples(ids: np.ndarray, k: int, draws: np.ndarray) -> list[np.ndarray]:
    """Item indices of each resample, each row of ``draws`` a draw of k cluster ids."""
    order = np.argsort(ids, kind="stable")
    sizes = np.bincount(ids, minlength=k)
    starts = np.concatenate(([0], np.cumsum(sizes)[:-1]))
    flat = draws.ravel()
    lengths = sizes[flat]
    offsets = np.repeat(np.cumsum(lengths) - lengths, lengths)
    positions = np.repeat(starts[flat], lengths) + np.arange(lengths.sum()) - offsets
    indices = order[positions]
    row_ends = np.cumsum(lengths.reshape(draws.shape).sum(axis=1)).tolist()
    return [indices[a:b] for a, b in zip([0, *row_ends[:-1]], row_ends, strict=True)]


def bootstrap_interval(
    n_items: int,
    statistic: Callable[[np.ndarray], float],
    clusters: Sequence[int] | None = None,
) -> pb.ConfidenceInterval | None:
    """95% BCa bootstrap interval of ``statistic(indices)`` over ``n_items`` items.

    Whole clusters are resampled (``clusters[i]``: the cluster of item i; None: each item its
    own), ``BOOTSTRAP_RESAMPLES`` times from a fixed seed; the bias correction and acceleration
    come from the resamples and a leave-one-cluster-out jackknife, and the tail levels are
    expanded for k clusters (z -> sqrt(k/(k-1)) t_{k-1}). Resamples where the statistic is
    undefined (it raises ValueError, or is not finite) are skipped; with fewer than 2 clusters,
    an undefined statistic on all items, or too few usable resamples, there is no interval.
    The bounds are quantiles of the statistic's own values, so they stay in its range.
    """

    def value(indices: np.ndarray) -> float:
        try:
            result = float(statistic(indices))
        except ValueError:
            return math.nan
        return result if math.isfinite(result) else math.nan

    ids, k = _cluster_ids(clusters, n_items)
    if k < 2:
        return None
    estimate = value(np.arange(n_items))
    if math.isnan(estimate):
        return None
    draws = np.random.default_rng(BOOTSTRAP_SEED).integers(0, k, size=(BOOTSTRAP_RESAMPLES, k))
    samples = draws if clusters is None else _cluster_resamples(ids, k, draws)
    values = np.array([value(indices) for indices in samples])
    usable = values[np.isfinite(values)]
    if len(usable) < MIN_USABLE_RESAMPLES:
        return None
    # Bias correction: where the estimate sits among the resamples (ties count one half).
    share = (np.sum(usable < estimate) + np.sum(usable == estimate) / 2) / len(usable)
    share = min(max(share, 1 / len(usable)), 1 - 1 / len(usable))
    bias = NormalDist().inv_cdf(share)
    # Acceleration: the skewness of the leave-one-cluster-out jackknife.
    jackknife = np.array([value(np.flatnonzero(ids != c)) for c in range(k)])
    jackknife = jackknife[np.isfinite(jackknife)]
    spread = jackknife.mean() - jackknife if len(jackknife) else np.zeros(0)
    denominator = 6 * float(spread @ spread) ** 1.5
    acceleration = float((spread**3).sum()) / denominator if denominator > 0 else 0.0
    tail = math.sqrt(k / (k - 1)) * float(student_t.ppf(1 - (1 - CONFIDENCE_LEVEL) / 2, k - 1))
    levels = []
    for z in (-tail, tail):
        shifted = bias + z
        levels.append(NormalDist().cdf(bias + shifted / (1 - acceleration * shifted)))
    lower, upper = np.quantile(usable, levels)
    return pb.ConfidenceInterval(
        lower=float(lower), upper=float(upper), level=CONFIDENCE_LEVEL, resamples=len(usable)
    )


def pearson(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Pearson correlation, or None when either side is constant (undefined)."""
    a = np.asarray(x, dtype=float)
    b = np.asarray(y, dtype=float)
    if len(a) < 2 or np.std(a) == 0 or np.std(b) == 0:
        return None
    return float(np.corrcoef(a, b)[0, 1])
