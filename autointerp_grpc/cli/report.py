"""``autointerp report``, and ``autointerp run --report``: a bulk run's results as one
self-contained HTML page (:mod:`autointerp_grpc.report`)."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

from autointerp_grpc.cli.errors import UsageError
from autointerp_grpc.cli.features import INPUT_FORMATS, read_feature_input
from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2 as pb


def _write(
    results: str,
    output: str,
    *,
    features_path: str | None,
    input_format: str,
    model: str | None,
    max_line_bytes: int,
) -> None:
    from autointerp_grpc.report import build_report, write_report  # plotly: only when asked

    if not Path(results).is_file():
        raise UsageError(f"cannot read {results}: no such file")
    if Path(output).resolve() in {Path(results).resolve()} | (
        {Path(features_path).resolve()} if features_path else set()
    ):
        raise UsageError("the report must not overwrite the results or the input file")
    started = time.monotonic()
    features: list[pb.Feature] = []
    if features_path:
        features = read_feature_input(features_path, input_format, max_line_bytes).features
    report = build_report(
        results,
        features,
        model=model,
        input_source=features_path or "",
        max_line_bytes=max_line_bytes,
    )
    write_report(report, Path(output))
    size = len(report.html.encode("utf-8"))
    records = f", records for {report.with_records}" if features_path else ""
    skipped = f", {report.unreadable} unreadable line(s) skipped" if report.unreadable else ""
    print(
        f"report: {output} ({report.latents} latents{records}{skipped}; "
        f"{size / 1e6:.1f} MB, {time.monotonic() - started:.1f} s)",
        file=sys.stderr,
    )


def cmd_report(args: argparse.Namespace) -> int:
    """``autointerp report``."""
    _write(
        args.results,
        args.output,
        features_path=args.input,
        input_format=args.input_format,
        model=args.model,
        max_line_bytes=args.max_line_bytes,
    )
    return 0


def with_report(run: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """``run``, then (with ``--report``) the report of its results file, whatever the run's
    exit status (a report of a run that stopped shows what it did); not after ``--estimate``,
    which writes no results."""

    def run_then_report(args: argparse.Namespace) -> int:
        if args.report and Path(args.report).resolve() in {
            Path(args.output).resolve(),
            Path(args.input).resolve(),
        }:
            raise UsageError("--report must not be the --output or the --input file")
        status = run(args)
        if args.report and not args.estimate and Path(args.output).is_file():
            _write(
                args.output,
                args.report,
                features_path=args.input,
                input_format=args.input_format,
                model=args.model,
                max_line_bytes=args.max_line_bytes,
            )
        return status

    return run_then_report


def add_report_command(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    """The ``report`` subcommand's parser (its ``--max-line-bytes`` is the caller's to add)."""

    report = sub.add_parser(
        "report",
        help="an HTML report of a results file (no server needed)",
        description="Write one self-contained HTML page (opens offline) of a run's results: "
        "summary, score distributions, scorer-vs-scorer correlations, a sortable latent "
        "table and latent cards with their top activating records (from --input).",
    )
    report.add_argument("results", help="the results file (JSONL) of `autointerp run`")
    report.add_argument(
        "--input", help="the run's features file: the cards then show each latent's records"
    )
    report.add_argument(
        "--input-format",
        choices=("auto", *INPUT_FORMATS),
        default="auto",
        help="format of --input (default: %(default)s)",
    )
    report.add_argument("-o", "--output", required=True, help="the HTML file to write")
    report.add_argument("--model", help="the explainer/scorer model, shown in the summary")
    report.set_defaults(handler=cmd_report)
    return report
