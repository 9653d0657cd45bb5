"""The ``autointerp`` command line: its parser, ``main``, and the methods, explain and score
commands (``run`` is in :mod:`autointerp_grpc.cli.run`)."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import uuid
from collections.abc import Iterator

import grpc

from autointerp_grpc.cli import INTERRUPTED, quiet_after_interrupt
from autointerp_grpc.cli.batch import DEFAULT_POLL_S, DEFAULT_ROUNDS, add_batch_command
from autointerp_grpc.cli.inputs import (
    INPUT_FORMATS,
    UsageError,
    api_key,
    llm_options,
    parse_json_arg,
    read_records,
    set_params,
)
from autointerp_grpc.cli.jsonread import DEFAULT_MAX_LINE_BYTES
from autointerp_grpc.cli.report import add_report_command, with_report
from autointerp_grpc.cli.results import table, to_json
from autointerp_grpc.cli.run import cmd_run
from autointerp_grpc.client import AutoInterpClient, rpc_failure
from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2 as pb
from autointerp_grpc.usage import Usage

DEFAULT_SERVER = "127.0.0.1:50051"
DEFAULT_TIMEOUT_S = 300.0
# A stream sends an event at least once per feature, and the server ends a feature after
# AUTOINTERP_REQUEST_TIMEOUT_S (600 s by default): silence well past that is a stuck stream.
DEFAULT_IDLE_TIMEOUT_S = 900.0


@contextlib.contextmanager
def _client(args: argparse.Namespace) -> Iterator[AutoInterpClient]:
    client = AutoInterpClient(args.server, secret=args.secret, timeout=args.timeout)
    try:
        yield client
    finally:
        client.close()


def _print_json(response: pb.ListMethodsResponse | pb.ExplainResponse | pb.ScoreResponse) -> None:
    print(json.dumps(to_json(response), indent=2, ensure_ascii=False))


# ---- methods -------------------------------------------------------------------------------

_KIND_NAMES = {pb.METHOD_KIND_EXPLAINER: "explainer", pb.METHOD_KIND_SCORER: "scorer"}


def _needs(requires: pb.MethodRequirements) -> str:
    needs = [
        name
        for name, wanted in (
            ("llm", requires.llm),
            ("embedding model", requires.embedding_model),
            ("non-activating", requires.non_activating),
            ("logits", requires.logits),
            ("explanation", requires.explanation),
        )
        if wanted
    ]
    if requires.logprobs:
        needs.append("logprobs (optional)")
    return ", ".join(needs) or "-"


def _metric(info: pb.MethodInfo) -> str:
    if not info.HasField("metric") or not info.metric.name:
        return "-"
    m = info.metric
    return f"{m.name} ({m.minimum:g} to {m.maximum:g}, chance {m.chance:.3g})"


def cmd_methods(args: argparse.Namespace) -> int:
    """``autointerp methods``."""
    with _client(args) as client:
        response = client.list_methods(request_id=args.request_id)
    if args.json:
        _print_json(response)
        return 0
    rows = [("name", "kind", "metric (range, chance)", "needs", "parameters")]
    for info in response.methods:
        rows.append(
            (
                info.name,
                _KIND_NAMES.get(info.kind, "?"),
                _metric(info),
                _needs(info.requires),
                ", ".join(p.name for p in info.parameters) or "-",
            )
        )
    table(rows, sys.stdout)
    print(f"\nproviders: {', '.join(response.providers) or '-'}")
    return 0


# ---- explain / score -----------------------------------------------------------------------


def cmd_explain(args: argparse.Namespace) -> int:
    """``autointerp explain``."""
    key = api_key(args, needed=True)
    assert key is not None
    records = read_records(args.input, args.non_activating, args.max_line_bytes)
    request = pb.ExplainRequest(
        method=args.method,
        activations=records.activations,
        non_activating=records.non_activating,
        top_positive_logits=records.top_positive_logits,
        attention=records.attention,
        llm=llm_options(args, key),
    )
    set_params(request, args.method, parse_json_arg(args.params, "--params"), "--params")
    with _client(args) as client:
        response = client.explain(request, request_id=args.request_id)
    if args.json:
        _print_json(response)
    else:
        print(response.explanation)
    print(f"usage: {Usage.from_proto(response.usage).describe()}", file=sys.stderr)
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    """``autointerp score``."""
    records = read_records(args.input, args.non_activating, args.max_line_bytes)
    request = pb.ScoreRequest(
        method=args.method,
        explanation=args.explanation or "",
        activations=[*records.activations, *records.non_activating],
    )
    if args.model:
        key = api_key(args, needed=True)
        assert key is not None
        request.llm.CopyFrom(llm_options(args, key))
    set_params(request, args.method, parse_json_arg(args.params, "--params"), "--params")
    with _client(args) as client:
        response = client.score(request, request_id=args.request_id)
    if args.json:
        _print_json(response)
    else:
        print(f"score: {response.score:.4f}  ({response.metric or args.method})")
        if response.HasField("confidence_interval"):
            ci = response.confidence_interval
            print(
                f"{ci.level:.0%} CI: [{ci.lower:.4f}, {ci.upper:.4f}]  ({ci.resamples} resamples)"
            )
        if response.HasField("classifier"):
            c = response.classifier
            print(
                f"answered {c.answered}/{c.answered + c.unanswered}; accuracy {c.accuracy:.3f}, "
                f"precision {c.precision:.3f}, recall {c.recall:.3f}, f1 {c.f1:.3f}"
                + (f", auc {c.auc:.3f}" if c.HasField("auc") else "")
            )
        for note in response.notes:
            print(f"note: {note}")
    print(f"usage: {Usage.from_proto(response.usage).describe()}", file=sys.stderr)
    return 0


# ---- argument parsing ----------------------------------------------------------------------


def _common(timeout_default: float | None, timeout_help: str) -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--server",
        default=os.environ.get("AUTOINTERP_SERVER", DEFAULT_SERVER),
        help="host:port of the gRPC server; a comma-separated list spreads the work over "
        "several (default: $AUTOINTERP_SERVER or %(default)s)",
    )
    common.add_argument(
        "--secret",
        default=os.environ.get("SECRET"),
        help="the server's shared secret, sent as x-secret-key metadata (default: $SECRET)",
    )
    common.add_argument(
        "--timeout",
        type=float,
        default=timeout_default,
        help=timeout_help,
    )
    return common


def _llm_arguments(parser: argparse.ArgumentParser, model_required: bool) -> None:
    parser.add_argument(
        "--model",
        required=model_required,
        help="the LLM, as the provider names it (e.g. openai/gpt-4o-mini)",
    )
    parser.add_argument(
        "--api-key",
        help="the LLM provider's API key (default: $AUTOINTERP_API_KEY or $OPENROUTER_API_KEY)",
    )
    parser.add_argument("--provider", help="one of the server's configured providers")
    parser.add_argument("--max-tokens", type=int, help="most tokens the LLM may produce per call")
    parser.add_argument(
        "--reasoning-effort",
        choices=("minimal", "low", "medium", "high"),
        help="reasoning effort for reasoning models",
    )


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _input_cap(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "--max-line-bytes",
        type=_positive_int,
        default=DEFAULT_MAX_LINE_BYTES,
        help=f"longest {what} read from the input, in bytes (default: %(default)s, the "
        "server's default largest request)",
    )


def _run_arguments(run: argparse.ArgumentParser) -> None:
    run.add_argument(
        "--input",
        required=True,
        help="features: one JSON object per line, or Neuronpedia feature JSON / export files "
        "(gzipped or not; an export directory too)",
    )
    run.add_argument(
        "--input-format",
        choices=("auto", *INPUT_FORMATS),
        default="auto",
        help="format of --input (default: %(default)s, told by its first object)",
    )
    _input_cap(run, "line (and JSON document spread over lines)")
    run.add_argument("--output", required=True, help="results file (JSONL), appended to")
    run.add_argument("--explainer", default="default", help="explainer (default: %(default)s)")
    run.add_argument("--explainer-params", help="the explainer's parameters as a JSON object")
    run.add_argument(
        "--scorers",
        default="detection,fuzz",
        help="comma-separated scorers; empty: explain only (default: %(default)s)",
    )
    run.add_argument(
        "--scorer-params", help='JSON object scorer → parameters, e.g. \'{"fuzz": {"seed": 1}}\''
    )
    _llm_arguments(run, model_required=True)
    run.add_argument("--candidates", type=int, help="best-of-k: explanations per feature")
    run.add_argument("--candidate-scorer", help="scorer that ranks candidates")
    run.add_argument("--candidate-temperature", type=float, help="explainer temperature (k > 1)")
    run.add_argument(
        "--holdout",
        type=float,
        help="fraction of each class of records held out for scoring (server default 0.5; "
        "0 scores in-sample)",
    )
    run.add_argument("--seed", type=int, help="seed of the holdout split")
    run.add_argument("--concurrency", type=int, help="features processed at once per stream")
    run.add_argument(
        "--retries",
        type=int,
        default=2,
        help="re-submissions of a feature that failed transiently (default: %(default)s)",
    )
    run.add_argument(
        "--batch-size", type=int, default=50, help="features per stream (default: %(default)s)"
    )
    run.add_argument("--streams", type=int, help="streams open at once (default: 2 per server)")
    run.add_argument(
        "--idle-timeout",
        type=float,
        default=DEFAULT_IDLE_TIMEOUT_S,
        help="give a stream up (and retry its features) after this many seconds without an "
        "event; above the server's per-feature limit (AUTOINTERP_REQUEST_TIMEOUT_S, default "
        "600); 0: never (default: %(default)s)",
    )
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    run.add_argument(
        "--estimate",
        action="store_true",
        help="print the projected calls, tokens and dollars (live and batch) of the features "
        "still to do, from a dry run of a sample (no LLM call), and exit",
    )
    run.add_argument(
        "--estimate-sample",
        type=int,
        default=20,
        help="features the estimate dry-runs (default: %(default)s)",
    )
    run.add_argument(
        "--batch",
        action="store_true",
        help="run through the provider's Batch API (half price, answers within 24 h): rounds "
        "until nothing is pending; needs the server's response store",
    )
    run.add_argument(
        "--batch-poll",
        type=float,
        default=DEFAULT_POLL_S,
        help="--batch: longest wait between rounds in seconds (default: %(default)s)",
    )
    run.add_argument(
        "--batch-rounds",
        type=int,
        default=DEFAULT_ROUNDS,
        help="--batch: most rounds before stopping (exit status 4; a rerun resumes; "
        "default: %(default)s)",
    )
    run.add_argument(
        "--shard",
        help="I/N: run only shard I (0-based) of N, a deterministic share of the input "
        "(default: $JOB_COMPLETION_INDEX/$AUTOINTERP_SHARD_COUNT when set)",
    )
    run.add_argument(
        "--max-cost",
        type=float,
        help="stop the run once it has spent this many dollars (exit status 3; results so "
        "far are kept and a rerun resumes)",
    )
    run.add_argument(
        "--report",
        help="at the end, write an HTML report of the whole results file here (as "
        "`autointerp report`, with --input's records)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The ``autointerp`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="autointerp",
        description="Explain and score neurons / SAE latents with an autointerp server.",
        epilog="Exit status: 0 ok, 1 a call or some feature failed, 2 usage error, 3 run "
        "stopped at --max-cost, 4 --batch rounds ran out with features pending.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common = _common(DEFAULT_TIMEOUT_S, "deadline of the call in seconds (default: %(default)s)")

    methods = sub.add_parser(
        "methods", parents=[common], help="list the explainers and scorers (ListMethods)"
    )
    methods.add_argument("--json", action="store_true", help="print the raw JSON answer")
    methods.set_defaults(handler=cmd_methods)

    explain = sub.add_parser(
        "explain", parents=[common], help="explain one latent's records (Explain)"
    )
    explain.add_argument("--method", default="default", help="explainer (default: %(default)s)")
    explain.add_argument(
        "--input",
        required=True,
        help="JSON file ('-': stdin): a list of records {tokens, values} (split into activating "
        "and not by whether values sum above 0), or an object {activations, nonActivating, "
        "topPositiveLogits, attention}; attention records {tokens, fromIndex, weights} are "
        "for --method oai_attention_head",
    )
    explain.add_argument("--non-activating", help="JSON file: a list of non-activating records")
    _input_cap(explain, "input file")
    _llm_arguments(explain, model_required=True)
    explain.add_argument("--params", help="the method's parameters as a JSON object")
    explain.add_argument("--json", action="store_true", help="print the whole answer as JSON")
    explain.set_defaults(handler=cmd_explain)

    score = sub.add_parser("score", parents=[common], help="score an explanation (Score)")
    score.add_argument("--method", required=True, help="scorer (e.g. detection, fuzz, embedding)")
    score.add_argument("--explanation", help="the explanation to score")
    score.add_argument(
        "--input", required=True, help="JSON file ('-': stdin): records, as for explain"
    )
    score.add_argument("--non-activating", help="JSON file: more (non-activating) records")
    _input_cap(score, "input file")
    _llm_arguments(score, model_required=False)
    score.add_argument("--params", help="the method's parameters as a JSON object")
    score.add_argument("--json", action="store_true", help="print the whole answer as JSON")
    score.set_defaults(handler=cmd_score)

    run = sub.add_parser(
        "run",
        parents=[_common(None, "deadline of each stream in seconds (default: none)")],
        help="explain and score every feature of a JSONL file (ExplainAndScore), resumably",
        description="Explain and score the features of a JSONL file, appending one result per "
        "line to the output file; features already done there are skipped.",
    )
    _run_arguments(run)
    run.set_defaults(handler=with_report(cmd_run))
    add_batch_command(sub)
    _input_cap(add_report_command(sub), "line of either file")
    return parser


_RPC_NAMES: dict[str, str] = {"methods": "ListMethods", "explain": "Explain", "score": "Score"}


def main(argv: list[str] | None = None) -> int:
    """Run the ``autointerp`` command; returns its exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    args.request_id = uuid.uuid4().hex  # sent with the unary calls; shown when one fails
    try:
        return int(args.handler(args))
    except UsageError as error:
        print(f"autointerp {args.command}: error: {error}", file=sys.stderr)
        return 2
    except ValueError as error:  # e.g. a malformed --server address
        print(f"autointerp {args.command}: error: {error}", file=sys.stderr)
        return 2
    except grpc.RpcError as error:
        command: str = args.command
        rpc = _RPC_NAMES.get(command, command)
        print(f"error: {rpc_failure(rpc, error, args.request_id)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        hint = "; results so far are kept and a rerun resumes" if args.command == "run" else ""
        print(f"interrupted{hint}", file=sys.stderr)
        quiet_after_interrupt()
        return INTERRUPTED
    except BrokenPipeError:
        # The reader went away (e.g. `autointerp methods | head`): stop quietly, as Unix
        # tools do; point stdout at devnull so the interpreter's final flush cannot fail.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as error:  # a bug, or an answer nothing foresaw: one line, no traceback
        kept = "; results so far are kept and a rerun resumes" if args.command == "run" else ""
        print(
            f"autointerp {args.command}: error: unexpected {type(error).__name__}{kept}",
            file=sys.stderr,
        )
        return 1
