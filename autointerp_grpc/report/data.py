"""What a report shows, computed from a bulk run's results file (and its input features):
the run's summary, each scorer's statistics, scorer-vs-scorer rank correlations, and the
records each latent's card shades.

Every number here comes from the results lines as ``autointerp run`` writes them
(:mod:`autointerp_grpc.cli.results`): each line is parsed back into a ``FeatureResult`` with
``json_format``; when a feature has several lines (a resumed run wrote it again), its last
line counts, as resuming itself decides.
"""

from __future__ import annotations

import collections
import itertools
import json
import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from google.protobuf import json_format
from scipy.stats import rankdata

from autointerp_grpc.cli.errors import UsageError
from autointerp_grpc.cli.jsonread import DEFAULT_MAX_LINE_BYTES, loads, read_lines
from autointerp_grpc.cli.results import to_json
from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2 as pb
from autointerp_grpc.usage import Usage

SHOWN_ACTIVATING = 6
"""Activating records a card shows: the latent's strongest, by peak activation."""
SHOWN_NON_ACTIVATING = 3
"""Non-activating records a card shows."""
RECORD_WINDOW = 40
"""Tokens of a record a card shows: a window around its peak (a long record is cut)."""


@dataclass
class ResultsFile:
    """A results file read back: the last result of each feature (in the order features first
    appear), and what was skipped."""

    results: list[pb.FeatureResult]
    lines: int = 0
    unreadable: int = 0
    superseded: int = 0


def read_results(path: str, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES) -> ResultsFile:
    """Read a results file: one ``FeatureResult`` (proto3 JSON) per line. A line that is not
    one (say, cut short when a run died) is counted and skipped, as resuming skips it; fields
    this version does not know are ignored."""
    latest: dict[str, pb.FeatureResult] = {}
    read = ResultsFile(results=[])
    for number, line in read_lines(path, max_line_bytes):
        if not line.strip():
            continue
        read.lines += 1
        try:
            data = loads(line, f"{path}:{number}")
            if not isinstance(data, dict):
                raise TypeError("not an object")
            result = json_format.ParseDict(data, pb.FeatureResult(), ignore_unknown_fields=True)
        except (ValueError, json_format.ParseError, UsageError, TypeError):
            read.unreadable += 1
            continue
        if not result.id:
            read.unreadable += 1
            continue
        if result.id in latest:
            read.superseded += 1
            del latest[result.id]  # re-inserted: the feature keeps its latest position
        latest[result.id] = result
    read.results = list(latest.values())
    return read


# ---- failures ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Failure:
    """One reason a feature failed: its own error (``where`` "feature") or a scorer's."""

    id: str
    where: str
    code: str
    message: str


def failures(result: pb.FeatureResult) -> list[Failure]:
    """Why ``result`` failed: its own error, else every scorer's error; [] when it did not.
    (As ``autointerp run`` counts: a scorer's failure fails the feature.)"""
    if result.HasField("error") and (result.error.code or result.error.message):
        return [Failure(result.id, "feature", result.error.code or "UNKNOWN", result.error.message)]
    return [
        Failure(result.id, outcome.method, outcome.error.code or "UNKNOWN", outcome.error.message)
        for outcome in result.scores
        if outcome.HasField("error") and (outcome.error.code or outcome.error.message)
    ]


# ---- statistics ----------------------------------------------------------------------------


def _finite(value: float) -> bool:
    return math.isfinite(value)


@dataclass
class ScorerStats:
    """One scorer over the run: its scores (every feature where it produced one, whether or
    not another scorer of that feature failed), its errors, chance levels and interval
    widths."""

    method: str
    metric: str = ""
    scores: list[float] = field(default_factory=list)
    errors: int = 0
    chances: list[float] = field(default_factory=list)
    widths: list[float] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """The scorer's row of the report (None where there is nothing to average)."""

        def mean(values: Sequence[float]) -> float | None:
            return math.fsum(values) / len(values) if values else None

        return {
            "method": self.method,
            "metric": self.metric,
            "n": len(self.scores),
            "errors": self.errors,
            "mean": mean(self.scores),
            "median": statistics.median(self.scores) if self.scores else None,
            "chance": mean(self.chances),
            "chanceVaries": len(set(self.chances)) > 1,
            "intervals": len(self.widths),
            "meanWidth": mean(self.widths),
            "medianWidth": statistics.median(self.widths) if self.widths else None,
        }


def scorer_stats(results: Iterable[pb.FeatureResult]) -> list[ScorerStats]:
    """Per scorer, in the order scorers first appear in the results."""
    found: dict[str, ScorerStats] = {}
    for result in results:
        for outcome in result.scores:
            stats = found.setdefault(outcome.method, ScorerStats(outcome.method))
            if outcome.metric and not stats.metric:
                stats.metric = outcome.metric
            if outcome.HasField("error") and (outcome.error.code or outcome.error.message):
                stats.errors += 1
            if not (outcome.HasField("score") and _finite(outcome.score)):
                continue
            stats.scores.append(outcome.score)
            if _finite(outcome.chance):
                stats.chances.append(outcome.chance)
            if outcome.HasField("confidence_interval"):
                width = outcome.confidence_interval.upper - outcome.confidence_interval.lower
                if _finite(width):
                    stats.widths.append(width)
    return list(found.values())


def paired_scores(
    results: Iterable[pb.FeatureResult], first: str, second: str
) -> tuple[list[str], list[float], list[float]]:
    """Ids and the two scorers' scores of the features where both produced a score."""
    ids, xs, ys = [], [], []
    for result in results:
        by_method = {
            o.method: o.score for o in result.scores if o.HasField("score") and _finite(o.score)
        }
        if first in by_method and second in by_method:
            ids.append(result.id)
            xs.append(by_method[first])
            ys.append(by_method[second])
    return ids, xs, ys


def rank_correlation(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    """Spearman's rank correlation of paired scores; None with fewer than 3 pairs or when
    either side is constant (it is undefined then, not 0)."""
    if len(xs) < 3 or len(set(xs)) < 2 or len(set(ys)) < 2:
        return None
    # Spearman's rho: Pearson's correlation of the ranks (ties get their mean rank).
    rho = float(np.corrcoef(rankdata(xs), rankdata(ys))[0, 1])
    return rho if math.isfinite(rho) else None


def summary(
    read: ResultsFile, scorers: Sequence[ScorerStats], model: str | None = None
) -> dict[str, Any]:
    """The run's summary: features ok and failed, failures grouped by where and code, usage
    (tokens, cost, response-store hits and savings), held-out and in-sample counts."""
    results = read.results
    usage = Usage()
    reasons: collections.Counter[tuple[str, str]] = collections.Counter()
    failed = failed_whole = in_sample = held_out = best_of_k = priced = 0
    for result in results:
        usage.add(result.usage)
        if result.usage.HasField("cost"):
            priced += 1
        found = failures(result)
        if found:
            failed += 1
            failed_whole += found[0].where == "feature"
            reasons.update((f.where, f.code) for f in found)
        if result.in_sample:
            in_sample += 1
        elif result.test_records > 0:
            held_out += 1
        if len(result.candidates) > 1:
            best_of_k += 1
    return {
        "model": model or "",
        "features": len(results),
        "ok": len(results) - failed,
        "failed": failed,
        "failedWhole": failed_whole,
        "failedScorers": failed - failed_whole,
        "reasons": [
            {"where": where, "code": code, "count": count}
            for (where, code), count in sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))
        ],
        "scorers": [s.method for s in scorers],
        "heldOut": held_out,
        "inSample": in_sample,
        "bestOfK": best_of_k,
        "llmCalls": usage.llm_calls,
        "promptTokens": usage.prompt_tokens,
        "completionTokens": usage.completion_tokens,
        "cost": usage.cost,
        "pricedFeatures": priced,
        "storeHits": usage.cached_responses,
        "cachedPromptTokens": usage.cached_prompt_tokens,
        "savedCost": usage.saved_cost,
        "seconds": math.fsum(r.seconds for r in results if _finite(r.seconds)),
        "lines": read.lines,
        "unreadable": read.unreadable,
        "superseded": read.superseded,
    }


def correlations(
    results: Sequence[pb.FeatureResult], scorers: Sequence[ScorerStats]
) -> list[dict[str, Any]]:
    """Every pair of scorers with scores on common features: the pairs and Spearman's rho."""
    pairs = []
    for first, second in itertools.combinations([s.method for s in scorers], 2):
        ids, xs, ys = paired_scores(results, first, second)
        if ids:
            pairs.append(
                {
                    "x": first,
                    "y": second,
                    "n": len(ids),
                    "rho": rank_correlation(xs, ys),
                    "ids": ids,
                    "xs": xs,
                    "ys": ys,
                }
            )
    return pairs


# ---- the latent table ------------------------------------------------------------------------


def _rounded(value: float) -> float:
    """A score or bound as the table needs it (it shows 3 decimals and sorts by it)."""
    return round(value, 5)


def latent_table(results: Sequence[pb.FeatureResult], methods: Sequence[str]) -> dict[str, Any]:
    """The latent table as columns (one list per column, a latent per position, in the
    results' order): what the page's table shows, sorts and filters by, without each
    latent's whole result (the page reads that only when a card is opened).

    ``cells[j][i]``: latent i's score from scorer ``methods[j]``, or the code of the error it
    gave instead (a string: "no score" when it gave neither), or None when it did not run;
    ``lower``/``upper``: its 95% interval, None when it has none; ``coverage``: the smallest
    answered fraction over the latent's scorers, None when none reports coverage; ``notes``:
    the latent's notes and its scorers' (prefixed with the scorer)."""
    position = {method: j for j, method in enumerate(methods)}
    cells: list[list[float | str | None]] = [[None] * len(results) for _ in methods]
    lower: list[list[float | None]] = [[None] * len(results) for _ in methods]
    upper: list[list[float | None]] = [[None] * len(results) for _ in methods]
    coverage: list[float | None] = []
    notes: list[list[str]] = []
    for i, result in enumerate(results):
        worst: float | None = None
        latent_notes = list(result.notes)
        for outcome in result.scores:
            latent_notes += [f"{outcome.method}: {note}" for note in outcome.notes]
            if outcome.HasField("coverage") and outcome.coverage.total:
                answered = outcome.coverage.answered / outcome.coverage.total
                worst = answered if worst is None else min(worst, answered)
            j = position.get(outcome.method)
            if j is None or cells[j][i] is not None:
                continue
            if outcome.HasField("score") and _finite(outcome.score):
                cells[j][i] = _rounded(outcome.score)
                interval = outcome.confidence_interval
                if outcome.HasField("confidence_interval") and _finite(
                    interval.upper - interval.lower
                ):
                    lower[j][i], upper[j][i] = _rounded(interval.lower), _rounded(interval.upper)
            elif outcome.HasField("error"):
                cells[j][i] = outcome.error.code or "UNKNOWN"
            else:
                cells[j][i] = "no score"
        coverage.append(None if worst is None else round(worst, 4))
        notes.append(latent_notes)
    return {
        "ids": [r.id for r in results],
        "explanations": [r.explanation for r in results],
        "inSample": [int(r.in_sample) for r in results],
        "cells": cells,
        "lower": lower,
        "upper": upper,
        "coverage": coverage,
        "notes": notes,
    }


# ---- records for the cards ------------------------------------------------------------------


def _window(record: pb.Activation, peak_at: int, size: int = RECORD_WINDOW) -> dict[str, Any]:
    """The record's tokens and values around its peak (token ``peak_at``), at most ``size``
    tokens."""
    tokens = record.tokens
    start = 0
    if len(tokens) > size:
        start = min(max(0, peak_at - size // 2), len(tokens) - size)
    return {
        "start": start,
        "cut": len(tokens) > size,
        "tokens": list(tokens[start : start + size]),
        "values": [_short_value(v) if v else 0 for v in record.values[start : start + size]],
    }


def _short_value(value: float) -> float | int:
    """A value as the page needs it: 4 significant digits, zero (and what is not finite) as 0
    (most tokens of a record: the short form keeps a 10,000-latent report small)."""
    if not math.isfinite(value) or value == 0:
        return 0
    return float(f"{value:.4g}")


def _peak(record: pb.Activation) -> tuple[float, int]:
    """The record's largest finite value (0 when it has none) and the token it is at."""
    values = list(record.values)
    if not values:
        return 0.0, 0
    if math.isfinite(sum(values)):  # every value finite (the usual case): max in C
        peak = max(values)
    else:
        peak = max((v for v in values if math.isfinite(v)), default=0.0)
    return peak, values.index(peak) if peak in values else 0


def card_records(feature: pb.Feature) -> dict[str, Any]:
    """A feature's records as its card shows them: its strongest activating records and a
    few non-activating ones, with the latent's peak over all its records (what the shading
    is scaled by, as delphi normalises by the latent's maximum)."""
    peaks = [(_peak(r), r) for r in feature.activations]
    strongest = sorted(peaks, key=lambda pr: pr[0][0], reverse=True)[:SHOWN_ACTIVATING]
    return {
        "max": max((peak for (peak, _), _ in peaks), default=0.0),
        "activating": len(feature.activations),
        "nonActivating": len(feature.non_activating),
        "act": [_window(r, at) for (_, at), r in strongest],
        "non": [_window(r, _peak(r)[1]) for r in feature.non_activating[:SHOWN_NON_ACTIVATING]],
    }


# ---- everything the page needs --------------------------------------------------------------


def report_data(
    read: ResultsFile,
    features: Sequence[pb.Feature] = (),
    *,
    model: str | None = None,
    source: str = "",
    input_source: str = "",
) -> dict[str, Any]:
    """The page's data: summary, scorers, correlations, the latent table (as columns), each
    latent's result (as its results line) and, for features of the input, the records its
    card shows."""
    stats = scorer_stats(read.results)
    by_id = {f.id: f for f in features}
    records = {r.id: card_records(by_id[r.id]) for r in read.results if r.id in by_id}
    return {
        "source": source,
        "input": input_source,
        "summary": summary(read, stats, model),
        "scorers": [s.as_dict() for s in stats],
        "scores": {s.method: s.scores for s in stats},
        "chances": {s.method: s.chances for s in stats},
        "widths": {s.method: s.widths for s in stats},
        "correlations": correlations(read.results, stats),
        "failures": [f.__dict__ for r in read.results for f in failures(r)],
        "latents": [to_json(r) for r in read.results],
        "table": latent_table(read.results, [s.method for s in stats]),
        "records": records,
        "withRecords": len(records),
    }


def to_script_json(value: Any) -> str:
    """``value`` as JSON safe inside a ``<script type="application/json">`` element: no
    ``<`` (so no ``</script>`` from a model's explanation ends it early)."""
    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":")).replace(
        "<", "\\u003c"
    )
