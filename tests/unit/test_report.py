"""``autointerp report``: the numbers of the report against the results file they come from
(the fixture run of tests/report_run.py), and the page's self-containment."""

from __future__ import annotations

import argparse
import base64
import json
import math
import re
import statistics
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from report_run import (
    BEST_OF_K,
    FAILED_WHOLE,
    FEATURES,
    FUZZ_FAILED,
    IN_SAMPLE,
    RERUN,
    SCORES,
    write_run,
)
from scipy.stats import spearmanr

from autointerp_grpc.cli.commands import build_parser, main
from autointerp_grpc.cli.errors import UsageError
from autointerp_grpc.cli.features import read_features
from autointerp_grpc.cli.report import with_report
from autointerp_grpc.report import build_report
from autointerp_grpc.report.charts import WEBGL_POINTS, figures, pair_scatter, plotly_js
from autointerp_grpc.report.data import (
    RECORD_WINDOW,
    card_records,
    rank_correlation,
    read_results,
    report_data,
)
from autointerp_grpc.report.page import page_data


def _last_lines(path: Path) -> dict[str, dict]:
    last: dict[str, dict] = {}
    for line in path.read_text().splitlines():
        try:
            data = json.loads(line)
        except ValueError:
            continue
        last[data["id"]] = data
    return last


def test_summary_numbers_match_the_results_file(tmp_path: Path) -> None:
    path = write_run(tmp_path)
    lines = _last_lines(path)
    data = report_data(read_results(str(path)), read_features(str(FEATURES)), model="m")
    summary = data["summary"]

    failed = [
        i for i, r in lines.items() if r.get("error") or any(s.get("error") for s in r["scores"])
    ]
    assert sorted(failed) == sorted([FAILED_WHOLE, FUZZ_FAILED])
    assert summary["features"] == len(lines) == len(SCORES)
    assert summary["failed"] == len(failed)
    assert summary["ok"] == len(lines) - len(failed)
    assert summary["failedWhole"] == 1 and summary["failedScorers"] == 1
    assert summary["reasons"] == [
        {"where": "feature", "code": "INVALID_ARGUMENT", "count": 1},
        {"where": "fuzz", "code": "UNAVAILABLE", "count": 1},
    ]
    assert summary["superseded"] == 1  # RERUN's first (failed) line
    assert summary["unreadable"] == 1  # the line cut short
    assert RERUN not in failed
    assert summary["scorers"] == ["detection", "fuzz", "embedding"]
    assert summary["model"] == "m"

    usages = [r.get("usage", {}) for r in lines.values()]
    assert summary["llmCalls"] == sum(u.get("llmCalls", 0) for u in usages)
    assert summary["promptTokens"] == sum(u.get("promptTokens", 0) for u in usages)
    assert summary["completionTokens"] == sum(u.get("completionTokens", 0) for u in usages)
    assert summary["cost"] == pytest.approx(sum(u.get("cost", 0) for u in usages))
    assert summary["pricedFeatures"] == sum("cost" in u for u in usages) == 7
    assert summary["storeHits"] == sum(u.get("cachedResponses", 0) for u in usages) > 0
    assert summary["savedCost"] == pytest.approx(sum(u.get("savedCost", 0) for u in usages))
    cached = sum(int(u.get("cachedPromptTokens", 0)) for u in usages)
    assert summary["cachedPromptTokens"] == cached > 0
    assert summary["inSample"] == sum(bool(r.get("inSample")) for r in lines.values()) == 1
    assert summary["heldOut"] == sum(
        not r.get("inSample") and r.get("testRecords", 0) > 0 for r in lines.values()
    )
    assert summary["bestOfK"] == 1

    for scorer in data["scorers"]:
        outcomes = [
            s for r in lines.values() for s in r["scores"] if s["method"] == scorer["method"]
        ]
        scores = [s["score"] for s in outcomes if "score" in s]
        widths = [
            s["confidenceInterval"]["upper"] - s["confidenceInterval"]["lower"]
            for s in outcomes
            if "confidenceInterval" in s
        ]
        assert scorer["n"] == len(scores)
        assert scorer["errors"] == sum("error" in s for s in outcomes)
        assert scorer["mean"] == pytest.approx(statistics.fmean(scores))
        assert scorer["median"] == pytest.approx(statistics.median(scores))
        assert scorer["chance"] == 0.5 and not scorer["chanceVaries"]
        assert scorer["meanWidth"] == pytest.approx(statistics.fmean(widths))
    assert [s["n"] for s in data["scorers"]] == [7, 6, 7]


def test_rank_correlations_match_scipy_over_common_latents(tmp_path: Path) -> None:
    lines = _last_lines(write_run(tmp_path))
    data = report_data(read_results(str(tmp_path / "results.jsonl")))
    pairs = {(p["x"], p["y"]): p for p in data["correlations"]}
    assert set(pairs) == {("detection", "fuzz"), ("detection", "embedding"), ("fuzz", "embedding")}
    for (x, y), pair in pairs.items():
        common = [
            (by[x], by[y])
            for r in lines.values()
            if x in (by := {s["method"]: s.get("score") for s in r["scores"] if "score" in s})
            and y in by
        ]
        assert pair["n"] == len(common)
        expected = spearmanr([a for a, _ in common], [b for _, b in common]).statistic
        assert pair["rho"] == pytest.approx(expected)


def test_rank_correlation_is_undefined_not_zero_when_it_cannot_be_computed() -> None:
    assert rank_correlation([0.5, 0.6], [0.1, 0.2]) is None  # too few
    assert rank_correlation([0.5, 0.5, 0.5], [0.1, 0.2, 0.3]) is None  # constant
    assert rank_correlation([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)


def test_cards_carry_candidates_and_the_strongest_records(tmp_path: Path) -> None:
    features = read_features(str(FEATURES))
    data = report_data(read_results(str(write_run(tmp_path))), features)
    latents = {lat["id"]: lat for lat in data["latents"]}
    assert [c["explanation"] for c in latents[BEST_OF_K]["candidates"]] == [
        "Animals",
        'Mentions of "cat"',
        "Pets at home",
    ]
    assert latents[IN_SAMPLE]["inSample"] is True
    assert data["withRecords"] == len(SCORES)
    cat = next(f for f in features if f.id == BEST_OF_K)
    records = data["records"][BEST_OF_K]
    assert records["max"] == max(max(r.values) for r in cat.activations)
    peaks = [max(r["values"]) for r in records["act"]]
    assert peaks == sorted(peaks, reverse=True)
    assert records["nonActivating"] == len(cat.non_activating)


def test_a_long_record_is_cut_to_a_window_around_its_peak() -> None:
    from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2 as pb

    tokens = [f" t{i}" for i in range(500)]
    values = [0.0] * 500
    values[400] = 3.0
    feature = pb.Feature(id="x", activations=[pb.Activation(tokens=tokens, values=values)])
    (shown,) = card_records(feature)["act"]
    assert len(shown["tokens"]) == RECORD_WINDOW and shown["cut"]
    assert shown["tokens"][shown["values"].index(3.0)] == " t400"


def test_page_is_self_contained_and_escapes_model_text(tmp_path: Path) -> None:
    path = tmp_path / "results.jsonl"
    hostile = "</script><script>alert(1)</script><img src=x onerror=alert(2)>"
    path.write_text(
        json.dumps(
            {
                "id": "evil",
                "explanation": hostile,
                "scores": [{"method": "detection", "score": 0.5, "chance": 0.5}],
            }
        )
        + "\n"
    )
    page = build_report(str(path)).html
    assert "<script>alert(1)" not in page
    shown = page_data(page)
    assert shown["table"]["explanations"] == [hostile]
    assert shown["cards"][0]["latent"]["explanation"] == hostile
    # plotly.js is inline; around it, nothing names an external script, style, font or
    # image (the Chromium test checks that the page loads nothing at all).
    assert plotly_js() in page
    ours = page.replace(plotly_js(), "")
    assert not re.search(r'(src|href)\s*=\s*["\']?(https?:)?//', ours)
    assert not re.search(r"@import|url\(", ours)


def test_report_command_writes_the_page(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    results = write_run(tmp_path)
    out = tmp_path / "sub" / "report.html"
    status = main(["report", str(results), "--input", str(FEATURES), "-o", str(out)])
    assert status == 0
    data = page_data(out.read_text())
    assert data["summary"]["features"] == len(SCORES)
    assert "8 latents, records for 8, 1 unreadable line(s) skipped" in capsys.readouterr().err
    assert not math.isnan(data["summary"]["seconds"])


def test_report_command_names_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    results = write_run(tmp_path)
    assert main(["report", str(tmp_path / "nope.jsonl"), "-o", str(tmp_path / "r.html")]) == 2
    assert "nope.jsonl" in capsys.readouterr().err
    assert main(["report", str(results), "-o", str(results)]) == 2
    assert "must not overwrite" in capsys.readouterr().err
    bad_input = tmp_path / "bad.jsonl"
    bad_input.write_text("{not json\n")
    status = main(["report", str(results), "--input", str(bad_input), "-o", str(tmp_path / "r")])
    assert status == 2
    assert "bad.jsonl" in capsys.readouterr().err


def test_page_carries_the_table_as_columns_and_every_card(tmp_path: Path) -> None:
    path = write_run(tmp_path)
    lines = _last_lines(path)
    report = build_report(str(path), read_features(str(FEATURES)))
    shown = page_data(report.html)
    table = shown["table"]
    # In the order of each latent's last line (the re-run latent moves to its re-run).
    ids = list(SCORES)
    assert table["ids"] == ids and sorted(ids) == sorted(lines)
    assert table["explanations"] == [lines[i].get("explanation", "") for i in ids]
    assert table["inSample"] == [int(i == IN_SAMPLE) for i in ids]
    methods = [s["method"] for s in shown["scorers"]]
    for j, method in enumerate(methods):
        for i, latent in enumerate(lines[k] for k in ids):
            outcome = next((s for s in latent.get("scores", []) if s["method"] == method), None)
            cell = table["cells"][j][i]
            if outcome is None:
                assert cell is None
            elif "score" in outcome:
                assert cell == pytest.approx(outcome["score"], abs=1e-5)
                interval = outcome["confidenceInterval"]
                assert table["lower"][j][i] == pytest.approx(interval["lower"], abs=1e-5)
                assert table["upper"][j][i] == pytest.approx(interval["upper"], abs=1e-5)
            else:
                assert cell == outcome["error"]["code"] and table["lower"][j][i] is None
    assert table["cells"][methods.index("fuzz")][ids.index(FUZZ_FAILED)] == "UNAVAILABLE"
    assert table["coverage"][2] == 0.9  # index 2 answered 9 of 10
    assert table["notes"][2] == ["detection: 1 of 2 batches answered no usable line"]
    assert table["notes"][ids.index(IN_SAMPLE)] == [
        "scored in-sample: too few records to hold any out"
    ]
    # Every card: the latent's results line as written, and its records.
    assert [card["latent"] for card in shown["cards"]] == [lines[i] for i in ids]
    assert all(card["records"]["activating"] > 0 for card in shown["cards"])


def test_charts_are_pre_binned_and_big_scatters_use_webgl(tmp_path: Path) -> None:
    data = report_data(read_results(str(write_run(tmp_path))))
    charts = {c["id"]: c["figure"] for c in figures(data)}
    detection = charts["hist-0"]
    (bars,) = detection["data"]
    assert bars["type"] == "bar" and sum(_numbers(bars["y"])) == 7  # every score counted
    assert detection["layout"]["shapes"][0]["x0"] == 0.5  # chance marked
    assert "chance 0.5" in detection["layout"]["annotations"][0]["text"]
    widths = charts["widths"]
    assert [t["name"] for t in widths["data"]] == ["detection", "fuzz", "embedding"]
    assert [sum(_numbers(t["y"])) for t in widths["data"]] == [7, 6, 7]
    assert charts["pair-0"]["data"][0]["type"] == "scatter"
    big = dict(data["correlations"][0])
    big["ids"] = [f"l{i}" for i in range(WEBGL_POINTS + 1)]
    big["xs"] = big["ys"] = [i / WEBGL_POINTS for i in range(WEBGL_POINTS + 1)]
    assert pair_scatter(big)["data"][0]["type"] == "scattergl"


def _numbers(values: list | dict) -> list[float]:
    """A plotly array as JSON writes it: a list, or a base64 typed array (numpy arrays)."""
    if isinstance(values, list):
        return values
    return np.frombuffer(base64.b64decode(values["bdata"]), dtype=values["dtype"]).tolist()


def _run_args(tmp_path: Path, *extra: str) -> argparse.Namespace:
    """``autointerp run``'s arguments as its own parser reads them, writing into tmp_path."""
    return build_parser().parse_args(
        [
            "run",
            "--input",
            str(FEATURES),
            "--output",
            str(tmp_path / "results.jsonl"),
            "--model",
            "openai/gpt-4o-mini",
            *extra,
        ]
    )


def _fake_run(status: int) -> tuple[list[argparse.Namespace], Callable[[argparse.Namespace], int]]:
    """A stand-in for ``cmd_run`` that writes the fixture run's results file where the run's
    --output says and exits with ``status``; the list collects the calls."""
    calls: list[argparse.Namespace] = []

    def run(args: argparse.Namespace) -> int:
        calls.append(args)
        assert write_run(Path(args.output).parent) == Path(args.output)
        return status

    return calls, run


@pytest.mark.parametrize("status", [0, 1, 3])
def test_run_report_writes_the_report_and_keeps_the_exit_status(
    tmp_path: Path, capsys: pytest.CaptureFixture, status: int
) -> None:
    report = tmp_path / "out" / "report.html"
    args = _run_args(tmp_path, "--report", str(report))
    assert args.handler.__qualname__.startswith("with_report.")  # `run` goes through it
    calls, run = _fake_run(status)
    assert with_report(run)(args) == status  # a failed or stopped run's status is kept
    assert len(calls) == 1
    shown = page_data(report.read_text())
    assert shown["table"]["ids"] == list(SCORES)
    assert shown["summary"]["model"] == "openai/gpt-4o-mini"  # the run's --model
    assert shown["withRecords"] == len(SCORES)
    assert all(card["records"] for card in shown["cards"])  # --input's records on the cards
    assert f"report: {report} (8 latents, records for 8" in capsys.readouterr().err


def test_run_report_is_not_written_without_results_or_after_an_estimate(tmp_path: Path) -> None:
    report = tmp_path / "report.html"
    calls, run = _fake_run(0)
    assert with_report(run)(_run_args(tmp_path, "--report", str(report), "--estimate")) == 0
    assert len(calls) == 1 and not report.exists()
    assert with_report(lambda args: 2)(_run_args(tmp_path / "none", "--report", str(report))) == 2
    assert not report.exists()  # the run wrote no results file: nothing to report
    assert with_report(run)(_run_args(tmp_path)) == 0  # no --report: only the run
    assert not list(tmp_path.glob("*.html"))


def test_run_report_must_not_overwrite_the_results_or_the_input(tmp_path: Path) -> None:
    calls, run = _fake_run(0)
    for target in (tmp_path / "results.jsonl", FEATURES):
        with pytest.raises(UsageError, match="--report must not be"):
            with_report(run)(_run_args(tmp_path, "--report", str(target)))
    assert calls == []  # refused before the run started
