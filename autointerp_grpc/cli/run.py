"""``autointerp run``: explain and score a features file over one or several servers,
appending results and resuming where a previous run stopped.

The scheduling (streams, least-busy servers, retries) is :mod:`autointerp_grpc.client.bulk`;
this module turns the flags into its template, skips what the results file already holds,
shows progress and prints the summary.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import sys
from pathlib import Path

import grpc

from autointerp_grpc.cli import shard
from autointerp_grpc.cli.batch import check_batch_arguments, run_batch
from autointerp_grpc.cli.estimate import Budget, budget_status, estimate
from autointerp_grpc.cli.inputs import (
    UsageError,
    api_key,
    llm_options,
    parse_json_arg,
    read_feature_input,
    set_params,
)
from autointerp_grpc.cli.results import ResultWriter, RunStats, read_done_ids
from autointerp_grpc.cli.runner import bulk_runner
from autointerp_grpc.client import bulk
from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2 as pb


def build_template(
    args: argparse.Namespace, key: str
) -> tuple[pb.ExplainAndScoreRequest, list[str]]:
    """The request every stream sends (without its features), and the scorers' names."""
    scorers = [s.strip() for s in (args.scorers or "").split(",") if s.strip()]
    request = pb.ExplainAndScoreRequest(llm=llm_options(args, key))
    request.explainer.method = args.explainer
    set_params(
        request.explainer,
        args.explainer,
        parse_json_arg(args.explainer_params, "--explainer-params"),
        "--explainer-params",
    )
    scorer_params = parse_json_arg(args.scorer_params, "--scorer-params") or {}
    for name in scorer_params:
        if name not in scorers:
            raise UsageError(f"--scorer-params names {name!r}, which is not in --scorers")
    for name in scorers:
        choice = request.scorers.add(method=name)
        params = scorer_params.get(name)
        if params is not None and not isinstance(params, dict):
            raise UsageError(f"--scorer-params: the parameters of {name!r} must be an object")
        set_params(choice, name, params, f"--scorer-params ({name})")
    options = request.options
    for attribute, value in (
        ("candidates", args.candidates),
        ("candidate_temperature", args.candidate_temperature),
        ("holdout", args.holdout),
        ("seed", args.seed),
        ("concurrency", args.concurrency),
    ):
        if value is not None:
            setattr(options, attribute, value)
    if args.candidate_scorer:
        options.candidate_scorer = args.candidate_scorer
    return request, scorers


def _check_methods(
    methods: pb.ListMethodsResponse, args: argparse.Namespace, scorers: list[str]
) -> None:
    explainers = [m.name for m in methods.methods if m.kind == pb.METHOD_KIND_EXPLAINER]
    known_scorers = [m.name for m in methods.methods if m.kind == pb.METHOD_KIND_SCORER]
    if args.explainer not in explainers:
        raise UsageError(f"unknown explainer {args.explainer!r}; one of: {', '.join(explainers)}")
    for name in [*scorers, *([args.candidate_scorer] if args.candidate_scorer else [])]:
        if name not in known_scorers:
            raise UsageError(f"unknown scorer {name!r}; one of: {', '.join(known_scorers)}")


def _not_using(server: bulk.Server, message: str) -> None:
    print(f"warning: {message}; not using this server", file=sys.stderr)


async def _run_async(args: argparse.Namespace) -> int:
    key = api_key(args, needed=True)
    assert key is not None
    template, scorers = build_template(args, key)
    given = read_feature_input(
        args.input, getattr(args, "input_format", "auto"), args.max_line_bytes
    )
    features = given.features
    if given.format != "autointerp":
        print(f"{args.input}: read as {given.format}, {len(features)} features", file=sys.stderr)
    share = shard.parse_shard(args.shard, os.environ)
    if share is not None:
        features = shard.select(features, share)
        print(f"shard {share[0]}/{share[1]}: {len(features)} features", file=sys.stderr)
    for note in given.notes:
        print(f"note: {args.input}: {note}", file=sys.stderr)
    output = Path(args.output)
    done_ids, unreadable = read_done_ids(output)
    if unreadable:
        print(f"warning: {unreadable} unreadable line(s) in {output} ignored", file=sys.stderr)
    stats = RunStats(scorers=scorers)
    todo = [f for f in features if f.id not in done_ids]
    stats.skipped = len(features) - len(todo)
    if stats.skipped:
        print(
            f"resuming: {stats.skipped} of {len(features)} features already done in {output}; "
            f"{len(todo)} to run",
            file=sys.stderr,
        )
    if not todo:
        stats.summary(sys.stdout, len(features), output)
        return 0
    servers = bulk.connect(args.server, secret=args.secret, timeout=args.timeout)
    try:
        try:
            alive = await bulk.preflight(
                servers,
                check=lambda methods: _check_methods(methods, args, scorers),
                on_unreachable=_not_using,
            )
        except bulk.FatalRunError as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
        if args.estimate:
            projection = await estimate(alive, template, todo, args.estimate_sample)
            projection.print(sys.stdout, args.model)
            return 0
        if args.batch:
            try:
                status = await run_batch(
                    args, servers=alive, template=template, todo=todo, stats=stats, output=output
                )
            except bulk.FatalRunError as error:
                print(f"error: {error}", file=sys.stderr)
                print(f"stopped; results so far are in {output}; a rerun resumes", file=sys.stderr)
                status = 2 if error.code == grpc.StatusCode.INVALID_ARGUMENT else 1
            stats.summary(sys.stdout, len(features), output)
            return status
        return await _execute(
            args,
            servers=alive,
            template=template,
            todo=todo,
            stats=stats,
            output=output,
            total=len(features),
        )
    finally:
        await bulk.close(servers)


async def _execute(
    args: argparse.Namespace,
    *,
    servers: list[bulk.Server],
    template: pb.ExplainAndScoreRequest,
    todo: list[pb.Feature],
    stats: RunStats,
    output: Path,
    total: int,
) -> int:
    """Run ``todo``, writing results and showing progress; then print the summary."""
    from tqdm import tqdm

    writer = ResultWriter(output)
    bar = tqdm(
        total=len(todo),
        unit="feature",
        file=sys.stderr,
        dynamic_ncols=True,
        disable=args.no_progress,
        desc="explain+score",
    )

    def finish(result: pb.FeatureResult) -> None:
        writer.write(result)
        stats.record(result)
        bar.set_postfix_str(stats.postfix(), refresh=False)
        bar.update(1)

    def retried(job: bulk.Job, result: pb.FeatureResult) -> None:
        stats.retried += 1

    status = 0
    budget: Budget | None = None

    def used(usage: pb.Usage) -> None:
        if budget is not None:
            budget.add(usage)  # adds it to stats.usage too
        else:
            stats.usage.add(usage)

    try:
        runner = bulk_runner(args, servers, template, todo, finish, on_usage=used, on_retry=retried)
        if runner is not None:
            if args.max_cost is not None:
                budget = Budget(runner, args.max_cost, stats.usage)
            await runner.run()
    except bulk.FatalRunError as error:
        bar.close()
        print(f"error: {error}", file=sys.stderr)
        print(f"stopped; results so far are in {output}; a rerun resumes there", file=sys.stderr)
        status = budget_status(error) or (
            2 if error.code == grpc.StatusCode.INVALID_ARGUMENT else 1
        )
    finally:
        bar.close()
        writer.close()
    stats.summary(sys.stdout, total, output)
    return status or (1 if stats.failed else 0)


def cmd_run(args: argparse.Namespace) -> int:
    """``autointerp run``."""
    if args.batch_size < 1:
        raise UsageError("--batch-size must be at least 1")
    if args.streams is not None and args.streams < 1:
        raise UsageError("--streams must be at least 1")
    if args.retries < 0:
        raise UsageError("--retries must be at least 0")
    if not args.idle_timeout >= 0:
        raise UsageError("--idle-timeout must be at least 0")
    if args.max_cost is not None and not (math.isfinite(args.max_cost) and args.max_cost > 0):
        raise UsageError("--max-cost must be a positive number of dollars")
    if args.estimate_sample < 1:
        raise UsageError("--estimate-sample must be at least 1")
    check_batch_arguments(args)
    if args.batch and args.max_cost is not None:
        raise UsageError("--max-cost applies to live runs; a --batch run's cost is its batches'")
    if Path(args.output).resolve() == Path(args.input).resolve():
        raise UsageError("--output must not be the --input file")
    return asyncio.run(_run_async(args))
