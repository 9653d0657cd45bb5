"""What the commands write: JSON, tables, the results file of ``run`` (and what a resumed run
skips), and a run's statistics and summary."""

from __future__ import annotations

import collections
import json
import math
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from google.protobuf.message import Message

from autointerp_grpc.client.bulk import failure
from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2 as pb
from autointerp_grpc.rest.jsonmap import to_json_dict
from autointerp_grpc.usage import Usage

SHOWN_FAILURES = 5
MESSAGE_CHARS = 120


def to_json(message: Message) -> dict[str, Any]:
    """``message`` as proto3 JSON, default-valued fields included, unset ones left out, 64-bit
    counts as numbers."""
    return to_json_dict(message, nulls=False)


def table(rows: Sequence[Sequence[str]], out: TextIO, right: Iterable[int] = ()) -> None:
    """Print ``rows`` (the first one the header) in aligned columns."""
    right = set(right)
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        cells = [
            cell.rjust(width) if i in right else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        print("  ".join(cells).rstrip(), file=out)


def _short(text: str, limit: int = MESSAGE_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ---- the results file ----------------------------------------------------------------------


def _is_error_value(error: Any) -> bool:
    return isinstance(error, dict) and bool(error.get("code") or error.get("message"))


def _is_error(result: dict[str, Any]) -> bool:
    """Whether a results line records a failure: the feature's error, or a scorer's (a
    feature whose scorer failed is not done: a resumed run does it again)."""
    if _is_error_value(result.get("error")):
        return True
    scores = result.get("scores")
    return isinstance(scores, list) and any(
        isinstance(s, dict) and _is_error_value(s.get("error")) for s in scores
    )


def read_done_ids(path: Path) -> tuple[set[str], int]:
    """Ids whose last line in the output file has no error, and the count of unreadable lines."""
    last_ok: dict[str, bool] = {}
    unreadable = 0
    if not path.exists():
        return set(), 0
    with path.open(encoding="utf-8", errors="replace", newline="\n") as handle:
        for line in handle:
            if not line.strip():
                continue
            try:
                data = json.loads(line)
            except (ValueError, RecursionError):  # not JSON, too deep, an int past 4,300 digits
                unreadable += 1
                continue
            if isinstance(data, dict) and isinstance(data.get("id"), str):
                last_ok[data["id"]] = not _is_error(data)
            else:
                unreadable += 1
    return {i for i, ok in last_ok.items() if ok}, unreadable


class ResultWriter:
    """Appends one JSON line per result to the output file, flushed at once."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._handle: TextIO | None = None

    def _open(self) -> TextIO:
        needs_newline = False
        if self.path.exists() and self.path.stat().st_size > 0:
            with self.path.open("rb") as handle:
                handle.seek(-1, os.SEEK_END)
                needs_newline = handle.read(1) != b"\n"  # a line cut short by a crash
        handle = self.path.open("a", encoding="utf-8")
        if needs_newline:
            handle.write("\n")
        return handle

    def write(self, result: pb.FeatureResult) -> None:
        """Append ``result`` as one line of proto3 JSON and flush it."""
        if self._handle is None:
            self._handle = self._open()
        self._handle.write(json.dumps(to_json(result), ensure_ascii=False) + "\n")
        self._handle.flush()

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


# ---- statistics ----------------------------------------------------------------------------


def quantile(sorted_values: Sequence[float], q: float) -> float:
    """Linear-interpolation quantile (numpy's default) of already sorted values."""
    if not sorted_values:
        return math.nan
    position = (len(sorted_values) - 1) * q
    low = math.floor(position)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (position - low)


@dataclass
class RunStats:
    """What a run did, for the progress bar and the summary."""

    scorers: list[str]
    skipped: int = 0
    ok: int = 0
    failed: list[pb.FeatureResult] = field(default_factory=list)
    retried: int = 0
    usage: Usage = field(default_factory=Usage)
    scores: dict[str, list[float]] = field(default_factory=lambda: collections.defaultdict(list))
    metrics: dict[str, str] = field(default_factory=dict)
    scorer_errors: collections.Counter[str] = field(default_factory=collections.Counter)
    started: float = field(default_factory=time.monotonic)

    def record(self, result: pb.FeatureResult) -> None:
        """Count a final result: failed if the feature or one of its scorers failed (its
        other scores are left out of the statistics, as the feature will be run again)."""
        for outcome in result.scores:
            if outcome.HasField("error"):
                self.scorer_errors[outcome.method] += 1
        if failure(result) is not None:
            self.failed.append(result)
            return
        self.ok += 1
        for outcome in result.scores:
            if outcome.HasField("score"):
                self.scores[outcome.method].append(outcome.score)
                if outcome.metric:
                    self.metrics[outcome.method] = outcome.metric

    def postfix(self) -> str:
        """The progress bar's postfix: tokens, cost and failures so far."""
        cost = self.usage.cost
        shown_cost = f"${cost:.4f}" if cost is not None else "n/a"
        return f"tokens={self.usage.tokens:,} cost={shown_cost} failed={len(self.failed)}"

    def summary(self, out: TextIO, total: int, output: Path) -> None:
        """Print the summary: counts, a table per scorer, failures, usage and speed."""
        wall = time.monotonic() - self.started
        finished = self.ok + len(self.failed)
        print("\n== summary", file=out)
        print(
            f"features: {total} in the input, {self.skipped} already done in {output} "
            f"(skipped), {finished} finished now: {self.ok} ok, {len(self.failed)} failed "
            f"({self.retried} re-submissions)",
            file=out,
        )
        rows: list[tuple[str, ...]] = [
            ("scorer", "metric", "n", "errors", "mean", "median", "p10", "p90")
        ]
        for method in self.scorers:
            values = sorted(self.scores.get(method, []))
            stats = (
                [
                    f"{sum(values) / len(values):.3f}",
                    *(f"{quantile(values, q):.3f}" for q in (0.5, 0.1, 0.9)),
                ]
                if values
                else ["-"] * 4
            )
            rows.append(
                (
                    method,
                    self.metrics.get(method, "-"),
                    str(len(values)),
                    str(self.scorer_errors[method]),
                    *stats,
                )
            )
        if self.scorers and finished:
            print(file=out)
            table(rows, out, right=range(2, 8))
        if self.failed:
            print(f"\nfailed features: {len(self.failed)}", file=out)
            for result in self.failed[:SHOWN_FAILURES]:
                error = failure(result) or result.error
                print(f"  {result.id}  {error.code}: {_short(error.message)}", file=out)
            if len(self.failed) > SHOWN_FAILURES:
                print(f"  ... and {len(self.failed) - SHOWN_FAILURES} more", file=out)
        print(f"\nusage: {self.usage.describe()}", file=out)
        if finished:
            cost = self.usage.cost
            shown = f", {cost / finished:.6g} dollars" if cost is not None else ""
            print(
                f"per feature: {self.usage.tokens / finished:,.0f} tokens{shown}, "
                f"{self.usage.cached_responses / finished:.1f} calls from the response store",
                file=out,
            )
        rate = finished / wall * 60 if wall > 0 else 0.0
        print(f"time: {wall:.1f} s wall, {rate:.1f} features/min", file=out)
