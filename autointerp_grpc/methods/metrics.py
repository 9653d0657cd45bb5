"""Score arithmetic: classifier metrics and bootstrap confidence intervals (sklearn, numpy)."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    confusion_matrix,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)

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


def classifier_metrics(
    truth: Sequence[bool],
    predicted: Sequence[bool],
    probabilities: Sequence[float | None],
    unanswered: int,
) -> pb.ClassifierMetrics:
    """Every metric of the answered examples. ``truth`` must hold both classes."""
    y_true = np.asarray(truth, dtype=bool)
    y_pred = np.asarray(predicted, dtype=bool)
    tn, fp, fn, tp = confusion_matrix(y_true, y_pred, labels=[False, True]).ravel()
    metrics = pb.ClassifierMetrics(
        balanced_accuracy=float(balanced_accuracy_score(y_true, y_pred)),
        accuracy=float(accuracy_score(y_true, y_pred)),
        precision=float(precision_score(y_true, y_pred, zero_division=0)),
        recall=float(recall_score(y_true, y_pred, zero_division=0)),
        f1=float(f1_score(y_true, y_pred, zero_division=0)),
        true_positives=int(tp),
        true_negatives=int(tn),
        false_positives=int(fp),
        false_negatives=int(fn),
        answered=len(y_true),
        unanswered=unanswered,
    )
    scored = [(t, p) for t, p in zip(truth, probabilities, strict=True) if p is not None]
    if scored and len({t for t, _ in scored}) == 2:
        metrics.auc = float(roc_auc_score([t for t, _ in scored], [p for _, p in scored]))
    return metrics


def bootstrap_interval(
    n_items: int, statistic: Callable[[np.ndarray], float]
) -> pb.ConfidenceInterval | None:
    """Percentile bootstrap of ``statistic(indices)`` over ``n_items`` items.

    Resamples where the statistic is undefined (it raises ValueError, or is not finite) are
    skipped; with too few usable ones there is no interval.
    """
    if n_items < 2:
        return None
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    values = []
    with warnings.catch_warnings():
        # sklearn warns (and answers nan) on a resample holding a single class.
        warnings.simplefilter("ignore")
        for _ in range(BOOTSTRAP_RESAMPLES):
            indices = rng.integers(0, n_items, n_items)
            try:
                value = float(statistic(indices))
            except ValueError:
                continue
            if math.isfinite(value):
                values.append(value)
    if len(values) < MIN_USABLE_RESAMPLES:
        return None
    tail = (1 - CONFIDENCE_LEVEL) / 2 * 100
    lower, upper = np.percentile(values, [tail, 100 - tail])
    return pb.ConfidenceInterval(
        lower=float(lower),
        upper=float(upper),
        level=CONFIDENCE_LEVEL,
        resamples=len(values),
    )


def balanced_accuracy_interval(
    truth: Sequence[bool], predicted: Sequence[bool]
) -> pb.ConfidenceInterval | None:
    y_true = np.asarray(truth, dtype=bool)
    y_pred = np.asarray(predicted, dtype=bool)

    def statistic(idx: np.ndarray) -> float:
        if len(set(y_true[idx].tolist())) < 2:
            raise ValueError("one class")
        return balanced_accuracy_score(y_true[idx], y_pred[idx])

    return bootstrap_interval(len(y_true), statistic)


def auc_interval(truth: Sequence[bool], scores: Sequence[float]) -> pb.ConfidenceInterval | None:
    y_true = np.asarray(truth, dtype=bool)
    y_score = np.asarray(scores, dtype=float)

    def statistic(idx: np.ndarray) -> float:
        return roc_auc_score(y_true[idx], y_score[idx])

    return bootstrap_interval(len(y_true), statistic)


def mean_interval(values: Sequence[float]) -> pb.ConfidenceInterval | None:
    array = np.asarray(values, dtype=float)
    return bootstrap_interval(len(array), lambda idx: float(array[idx].mean()))


def pearson(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Pearson correlation, or None when either side is constant (undefined)."""
    a = np.asarray(x, dtype=float)
    b = np.asarray(y, dtype=float)
    if len(a) < 2 or np.std(a) == 0 or np.std(b) == 0:
        return None
    return float(np.corrcoef(a, b)[0, 1])
