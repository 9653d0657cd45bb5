"""``autointerp report``: one self-contained HTML page of a bulk run's results — summary,
score distributions with chance, interval widths, scorer-vs-scorer rank correlations, a
sortable and filterable latent table, latent cards with their candidates and top activating
records — that opens from a file, offline.

Rooms: :mod:`.data` (the numbers, from the results file and the input features),
:mod:`.charts` (Plotly figures), :mod:`.page` (the HTML, its styles and script).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from autointerp_grpc.cli.jsonread import DEFAULT_MAX_LINE_BYTES
from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2 as pb
from autointerp_grpc.report.data import read_results, report_data
from autointerp_grpc.report.page import render_page

__all__ = ["Report", "build_report", "write_report"]


@dataclass
class Report:
    """A built report: the page, and what it read."""

    html: str
    latents: int
    unreadable: int
    with_records: int


def build_report(
    results_path: str,
    features: Sequence[pb.Feature] = (),
    *,
    model: str | None = None,
    input_source: str = "",
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
) -> Report:
    """The report of the results file at ``results_path``; ``features`` (the run's input)
    give the cards their records."""
    read = read_results(results_path, max_line_bytes)
    data = report_data(read, features, model=model, source=results_path, input_source=input_source)
    return Report(
        html=render_page(data),
        latents=len(read.results),
        unreadable=read.unreadable,
        with_records=data["withRecords"],
    )


def write_report(report: Report, output: Path) -> None:
    """Write the page to ``output`` whole: to a file beside it, then renamed over it, so a
    reader never opens half a report."""
    output.parent.mkdir(parents=True, exist_ok=True)
    temporary = output.with_name(f".{output.name}.{os.getpid()}.tmp")
    try:
        with temporary.open("w", encoding="utf-8") as file:
            file.write(report.html)
        os.replace(temporary, output)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
