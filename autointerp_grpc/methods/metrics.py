"""Score arithmetic: classifier metrics, ROC AUC and bootstrap confidence intervals.

Everything is computed with numpy (and scipy's ranking) from confusion counts and ranks:
sklearn's metric functions validate their inputs on every call (milliseconds each), which
matters on the request path and a thousand times over in a bootstrap. The unit tests check
these against sklearn's own results.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
from scipy.stats import rankdata

from autointerp_grpc.errors import UpstreamBadResponse
from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2 as pb

CONFIDENCE_LEVEL = 0.95
BOOTSTRAP_RESAMPLES = 1000
BOOTSTRAP_SEED = 0
# Below this many usable resamples (e.g. most draw a single class) no interval is reported.
MIN_USABLE_RESAMPLES = 100


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
        metrics.auc = roc_auc([t for t, _ in scored], [p for _, p in scored])
    return metrics


def _resamples(n_items: int) -> np.ndarray:
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    return rng.integers(0, n_items, size=(BOOTSTRAP_RESAMPLES, n_items))


def _interval(values: np.ndarray) -> pb.ConfidenceInterval | None:
    usable = values[np.isfinite(values)]
    if len(usable) < MIN_USABLE_RESAMPLES:
        return None
    tail = (1 - CONFIDENCE_LEVEL) / 2 * 100
    lower, upper = np.percentile(usable, [tail, 100 - tail])
    return pb.ConfidenceInterval(
        lower=float(lower), upper=float(upper), level=CONFIDENCE_LEVEL, resamples=len(usable)
    )


def bootstrap_interval(
    n_items: int, statistic: Callable[[np.ndarray], float]
) -> pb.ConfidenceInterval | None:
    """Percentile bootstrap of ``statistic(indices)`` over ``n_items`` items.

    Resamples where the statistic is undefined (it raises ValueError, or is not finite) are
    skipped; with too few usable ones there is no interval.
    """
    if n_items < 2:
        return None
    values = []
    for indices in _resamples(n_items):
        try:
            values.append(float(statistic(indices)))
        except ValueError:
            values.append(math.nan)
    return _interval(np.asarray(values))


def balanced_accuracy_interval(
    truth: Sequence[bool], predicted: Sequence[bool]
) -> pb.ConfidenceInterval | None:
    if len(truth) < 2:
        return None
    idx = _resamples(len(truth))
    y_true = np.asarray(truth, dtype=bool)[idx]
    y_pred = np.asarray(predicted, dtype=bool)[idx]
    return _interval(_balanced_accuracy(y_true, y_pred))


def auc_interval(truth: Sequence[bool], scores: Sequence[float]) -> pb.ConfidenceInterval | None:
    if len(truth) < 2:
        return None
    idx = _resamples(len(truth))
    y_true = np.asarray(truth, dtype=bool)[idx]
    y_score = np.asarray(scores, dtype=float)[idx]
    return _interval(_roc_auc(y_true, y_score))


def mean_interval(values: Sequence[float]) -> pb.ConfidenceInterval | None:
    if len(values) < 2:
        return None
    array = np.asarray(values, dtype=float)
    return _interval(array[_resamples(len(array))].mean(axis=1))


def pearson(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Pearson correlation, or None when either side is constant (undefined)."""
    a = np.asarray(x, dtype=float)
    b = np.asarray(y, dtype=float)
    if len(a) < 2 or np.std(a) == 0 or np.std(b) == 0:
        return None
    return float(np.corrcoef(a, b)[0, 1])
