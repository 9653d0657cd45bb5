"""``autointerp run --batch``: a bulk run through the provider's Batch API, in rounds.

Each round sends the features still to do as batch-mode ExplainAndScore streams
(``llm.batch``): a feature whose calls the server's store answers comes back as its result
(written to the output file, as a live run writes it); one that needs an answer not yet there
comes back ``pending`` and the server submits its calls as a batch. The next round, after a
wait, sends the pending features again: the server first collects the batches that finished.
Rounds go on until nothing is pending (explain, score and best-of-k are successive rounds).
A line per round reports what the batches did: submitted, collected, failed, still open and
the expected wait.

Everything a round needs is in the server's store (answers, open batch ids), so an
interrupted run is resumed by running the same command again; ``autointerp batch list``
shows the batches and ``autointerp batch cancel`` cancels the open ones (both read the
server's settings: run them where the server's environment is).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from autointerp_grpc.cli.inputs import UsageError
from autointerp_grpc.cli.results import ResultWriter, RunStats, table
from autointerp_grpc.cli.runner import bulk_runner
from autointerp_grpc.client import bulk
from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2 as pb

DEFAULT_POLL_S = 60.0
"""Longest wait between rounds while batches are open."""
DEFAULT_ROUNDS = 1000
"""Most rounds one ``autointerp run --batch`` makes before it stops (a rerun resumes)."""


def _wait_text(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 60:
        return f"{seconds / 60:.1f} min"
    return f"{seconds:.0f} s"


def round_line(number: int, done: int, pending: int, reports: list[pb.BatchRound]) -> str:
    """One line saying what a round did."""
    submitted = sum(r.submitted_requests for r in reports)
    batches = sum(len(r.submitted_batch_ids) for r in reports)
    collected = sum(r.collected_answers for r in reports)
    failed = sum(r.failed_requests for r in reports)
    open_batches = max((r.open_batches for r in reports), default=0)
    open_requests = max((r.open_requests for r in reports), default=0)
    completed = max((r.open_completed for r in reports), default=0)
    wait = max((r.expected_wait_s for r in reports), default=0.0)
    line = (
        f"round {number}: {done} feature(s) finished, {pending} pending; batches: "
        f"{collected} answers collected, {failed} failed requests, {submitted} requests "
        f"submitted in {batches} batch(es), {open_batches} open "
        f"({completed}/{open_requests} completed)"
    )
    if pending and open_batches:
        line += f", expected wait {_wait_text(wait)}"
    return line


@dataclass
class _Round:
    """One round's outcome, as its streams report it."""

    writer: ResultWriter
    stats: RunStats
    finished: int = 0
    waiting: set[str] = field(default_factory=set)
    reports: list[pb.BatchRound] = field(default_factory=list)

    def finish(self, result: pb.FeatureResult) -> None:
        if result.pending:
            self.waiting.add(result.id)
            return
        self.finished += 1
        self.writer.write(result)
        self.stats.record(result)

    def collected(self, report: pb.BatchRound) -> None:
        self.reports.append(report)
        # What the batches billed: their answers, tokens and (by the price table) dollars.
        # Replayed from the store later, the same answers count as store hits, not again.
        billed = pb.Usage(
            llm_calls=report.collected_answers,
            prompt_tokens=report.collected_prompt_tokens,
            completion_tokens=report.collected_completion_tokens,
        )
        if report.HasField("collected_cost"):
            billed.cost = report.collected_cost
        self.stats.usage.add(billed)


async def run_batch(
    args: argparse.Namespace,
    *,
    servers: list[bulk.Server],
    template: pb.ExplainAndScoreRequest,
    todo: list[pb.Feature],
    stats: RunStats,
    output: Path,
    out: TextIO = sys.stderr,
) -> int:
    """Batch rounds over ``todo`` until nothing is pending; results written as they finish.
    The exit status: 0, 1 when some feature failed, 4 when features still wait after
    ``--batch-rounds`` rounds (a rerun resumes)."""
    template.llm.batch = True
    writer = ResultWriter(output)
    remaining = list(todo)
    try:
        for number in range(1, args.batch_rounds + 1):
            state = _Round(writer, stats)
            runner = bulk_runner(
                args,
                servers,
                template,
                remaining,
                state.finish,
                on_usage=stats.usage.add,
                on_batch=state.collected,
            )
            if runner is not None:
                await runner.run()
            line = round_line(number, state.finished, len(state.waiting), state.reports)
            print(line, file=out, flush=True)
            if not state.waiting:
                return 1 if stats.failed else 0
            remaining = [f for f in remaining if f.id in state.waiting]
            wait = max((r.expected_wait_s for r in state.reports), default=0.0)
            await asyncio.sleep(min(args.batch_poll, max(wait, 0.0)))
        print(
            f"stopped after {args.batch_rounds} rounds with {len(remaining)} feature(s) still "
            f"pending; results so far are in {output}; run the same command again to resume",
            file=out,
        )
        return 4
    finally:
        writer.close()


# ---- autointerp batch list | cancel ----------------------------------------------------------


async def _ledger_command(args: argparse.Namespace) -> int:
    from autointerp_grpc.backends.batch import BatchLedger, cancel_open
    from autointerp_grpc.backends.store import open_store
    from autointerp_grpc.config import Settings

    settings = Settings()
    url = settings.store.url.get_secret_value() if settings.store.url is not None else None
    store = open_store(settings.store.dir, url)
    if store is None:
        raise UsageError(
            "no response store is configured (AUTOINTERP_STORE__DIR or AUTOINTERP_STORE__URL): "
            "run this where the server's settings are"
        )
    ledger = BatchLedger(store)
    try:
        if args.batch_command == "list":
            rows = await ledger.rows(open_only=not args.all)
            lines = [
                ("id", "provider", "model", "status", "requests", "completed", "failed", "age")
            ]
            now = time.time()
            for row in rows:
                lines.append(
                    (
                        row.id,
                        row.provider,
                        row.model,
                        row.status + ("" if row.collected else " (open)"),
                        str(row.requests),
                        str(row.completed),
                        str(row.failed),
                        _wait_text(max(0.0, now - row.created)),
                    )
                )
            if rows:
                table(lines, sys.stdout, right=range(4, 7))
            else:
                print("no batches" + ("" if args.all else " open"))
            return 0
        import openai

        from autointerp_grpc.cli.inputs import api_key

        key = api_key(args, needed=True)
        provider = args.provider or settings.llm.default_provider
        base_url = settings.providers().get(provider)
        if base_url is None:
            raise UsageError(f"--provider {provider!r} is not one of the server's providers")
        client = openai.AsyncOpenAI(api_key=key, base_url=base_url)
        try:
            asked = await cancel_open(ledger, client, provider)
        finally:
            await client.close()
        print(f"asked the provider to cancel {len(asked)} batch(es): {' '.join(asked)}".rstrip())
        print("their finished answers are collected by the next `autointerp run --batch`")
        return 0
    finally:
        await store.aclose()


def cmd_batch(args: argparse.Namespace) -> int:
    """``autointerp batch list | cancel``."""
    return asyncio.run(_ledger_command(args))


def add_batch_command(sub: argparse._SubParsersAction) -> None:  # pyright: ignore[reportPrivateUsage]
    """The ``batch`` subcommand (list, cancel)."""
    batch = sub.add_parser(
        "batch",
        help="list or cancel the provider batches of `run --batch` (reads the server's "
        "settings: its response store)",
    )
    commands = batch.add_subparsers(dest="batch_command", required=True, metavar="ACTION")
    listing = commands.add_parser("list", help="the open batches (--all: every batch)")
    listing.add_argument("--all", action="store_true", help="collected batches too")
    cancel = commands.add_parser("cancel", help="ask the provider to cancel every open batch")
    cancel.add_argument(
        "--api-key",
        help="the LLM provider's API key (default: $AUTOINTERP_API_KEY or $OPENROUTER_API_KEY)",
    )
    cancel.add_argument("--provider", help="one of the server's providers (default: its default)")
    batch.set_defaults(handler=cmd_batch)


def check_batch_arguments(args: argparse.Namespace) -> None:
    if args.batch_rounds < 1:
        raise UsageError("--batch-rounds must be at least 1")
    if not args.batch_poll >= 0:
        raise UsageError("--batch-poll must be at least 0 seconds")
    if args.batch and args.estimate:
        raise UsageError("--estimate already prints the batch price; drop --batch")
