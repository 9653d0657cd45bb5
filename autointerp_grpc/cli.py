"""``autointerp``: the command-line client of the autointerp service.

    autointerp methods                                     # every explainer and scorer
    autointerp explain --method default --input records.json --model openai/gpt-4o-mini
    autointerp score --method fuzz --explanation "the word cat" --input records.json --model M
    autointerp run --input features.jsonl --output results.jsonl \\
        --explainer default --scorers detection,fuzz --model openai/gpt-4o-mini

Every subcommand takes ``--server`` (default ``$AUTOINTERP_SERVER`` or ``127.0.0.1:50051``;
a comma-separated list spreads the work over several servers) and ``--secret`` (default
``$SECRET``). The provider key comes from ``--api-key`` or ``$AUTOINTERP_API_KEY`` /
``$OPENROUTER_API_KEY``; prefer the environment, since other users of a machine can read a
process's arguments. Neither the secret nor the key is ever printed or written to a file.

Exit status: 0 success; 1 a call failed or (``run``) some feature failed; 2 a usage error (bad
arguments, unreadable or malformed input, an unknown method, a request the server rejected as
a whole); 130 interrupted (``run`` resumes where it stopped when started again).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import math
import os
import re
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import grpc
from google.protobuf import json_format
from google.protobuf.message import Message

from autointerp_grpc.client import AsyncAutoInterpClient, AutoInterpClient, split_servers
from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2 as pb

__all__ = ["main"]

DEFAULT_SERVER = "127.0.0.1:50051"
API_KEY_ENVS = ("AUTOINTERP_API_KEY", "OPENROUTER_API_KEY")
DEFAULT_TIMEOUT_S = 300.0
PREFLIGHT_TIMEOUT_S = 30.0
SHOWN_FAILURES = 5
MESSAGE_CHARS = 120
MAX_COOLDOWN_S = 30.0
# Feature errors worth another try; the others (INVALID_ARGUMENT, FAILED_PRECONDITION, ...)
# would fail the same way again.
RETRYABLE_CODES = frozenset(
    {"UNAVAILABLE", "RESOURCE_EXHAUSTED", "DEADLINE_EXCEEDED", "INTERNAL", "UNKNOWN", "ABORTED"}
)
# Stream failures that no retry or other server can fix: the run stops.
FATAL_CODES = frozenset(
    {
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.UNIMPLEMENTED,
        grpc.StatusCode.INVALID_ARGUMENT,
    }
)
_FEATURE_PATH_RE = re.compile(r"^features\[(\d+)\]\.?")


class UsageError(Exception):
    """A problem with the command line or its input files (exit status 2)."""


# ---- shared helpers ------------------------------------------------------------------------


def _to_json(message: Message) -> dict[str, Any]:
    return json_format.MessageToDict(message, always_print_fields_with_no_presence=True)


def _parse_json_arg(text: str | None, flag: str) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{flag} is not valid JSON: {exc.msg}") from None
    if not isinstance(value, dict):
        raise UsageError(f"{flag} must be a JSON object")
    return value


def _params_field(message_cls: type[Message], method: str, flag: str) -> str:
    """The ``<method>_params`` member of ``message_cls``'s params oneof, or a UsageError."""
    name = f"{method}_params"
    if name not in message_cls.DESCRIPTOR.fields_by_name:
        raise UsageError(f"{flag} given, but method {method!r} takes no parameters")
    return name


def _set_params(message: Message, method: str, params: dict[str, Any] | None, flag: str) -> None:
    if params is None:
        return
    name = _params_field(type(message), method, flag)
    try:
        json_format.ParseDict(params, getattr(message, name))
    except json_format.ParseError as exc:
        raise UsageError(f"{flag}: {exc}") from None


def _api_key(args: argparse.Namespace, needed: bool) -> str | None:
    key = args.api_key or next((os.environ[e] for e in API_KEY_ENVS if os.environ.get(e)), None)
    if needed and not key:
        raise UsageError(
            "an LLM provider key is needed: pass --api-key or set "
            + " or ".join(f"${e}" for e in API_KEY_ENVS)
        )
    return key


def _llm(args: argparse.Namespace, key: str) -> pb.LlmOptions:
    llm = pb.LlmOptions(model=args.model, api_key=key, provider=args.provider or "")
    if args.max_tokens is not None:
        llm.max_tokens = args.max_tokens
    if args.reasoning_effort:
        llm.reasoning_effort = args.reasoning_effort
    return llm


def _format_usage(usage: pb.Usage) -> str:
    cost = f"cost {usage.cost:.6g}" if usage.HasField("cost") else "cost not reported"
    return (
        f"{usage.llm_calls} LLM calls, {usage.prompt_tokens:,} prompt tokens, "
        f"{usage.completion_tokens:,} completion tokens, {cost}"
    )


def rpc_status(error: grpc.RpcError) -> tuple[grpc.StatusCode, str]:
    """The status code and details of a failed call (sync or grpc.aio)."""
    code, details = getattr(error, "code", None), getattr(error, "details", None)
    if callable(code) and callable(details):
        return code(), details() or ""
    return grpc.StatusCode.UNKNOWN, "the call failed without a status"


def _rpc_failure(name: str, error: grpc.RpcError, request_id: str | None = None) -> str:
    status, details = rpc_status(error)
    code = status.name
    suffix = f" (request id {request_id})" if request_id else ""
    return f"{name} failed: {code}: {details}{suffix}"


def _short(text: str, limit: int = MESSAGE_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _records(value: Any, where: str) -> list[pb.Activation]:
    if not isinstance(value, list):
        raise UsageError(f"{where}: expected a list of records")
    out = []
    for i, item in enumerate(value):
        try:
            out.append(json_format.ParseDict(item, pb.Activation()))
        except (json_format.ParseError, AttributeError, TypeError) as exc:
            raise UsageError(f"{where}[{i}]: {exc}") from None
    return out


@dataclass
class RecordSet:
    """Records read from a file: activating, non-activating and top positive logits."""

    activations: list[pb.Activation] = field(default_factory=list)
    non_activating: list[pb.Activation] = field(default_factory=list)
    top_positive_logits: list[str] = field(default_factory=list)


def _read_json(path: str) -> Any:
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{path}: not valid JSON (line {exc.lineno}: {exc.msg})") from None


def read_records(path: str, non_activating_path: str | None = None) -> RecordSet:
    """Read ``--input`` (and ``--non-activating``).

    A JSON list of records is split by the service's rule: values summing above 0 are
    activating, the rest non-activating. A JSON object is taken as given: ``activations``,
    ``nonActivating``/``non_activating``, ``topPositiveLogits``/``top_positive_logits``.
    """
    data = _read_json(path)
    out = RecordSet()
    if isinstance(data, list):
        for record in _records(data, path):
            (out.activations if sum(record.values) > 0 else out.non_activating).append(record)
    elif isinstance(data, dict):
        out.activations = _records(data.get("activations", []), f"{path}: activations")
        quiet = data.get("nonActivating", data.get("non_activating", []))
        out.non_activating = _records(quiet, f"{path}: nonActivating")
        logits = data.get("topPositiveLogits", data.get("top_positive_logits", []))
        if not isinstance(logits, list) or not all(isinstance(t, str) for t in logits):
            raise UsageError(f"{path}: topPositiveLogits must be a list of strings")
        out.top_positive_logits = logits
    else:
        raise UsageError(f"{path}: expected a list of records or an object with activations")
    if non_activating_path is not None:
        extra = _read_json(non_activating_path)
        out.non_activating += _records(extra, non_activating_path)
    return out


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


def _table(rows: Sequence[Sequence[str]], out: TextIO, right: Iterable[int] = ()) -> None:
    """Print ``rows`` (the first one the header) in aligned columns."""
    right = set(right)
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        cells = [
            cell.rjust(width) if i in right else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        print("  ".join(cells).rstrip(), file=out)


def cmd_methods(args: argparse.Namespace) -> int:
    with _client(args) as client:
        response = client.list_methods(request_id=args.request_id)
    if args.json:
        print(json.dumps(_to_json(response), indent=2, ensure_ascii=False))
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
    _table(rows, sys.stdout)
    print(f"\nproviders: {', '.join(response.providers) or '-'}")
    return 0


# ---- explain / score -----------------------------------------------------------------------


def cmd_explain(args: argparse.Namespace) -> int:
    key = _api_key(args, needed=True)
    assert key is not None
    records = read_records(args.input, args.non_activating)
    request = pb.ExplainRequest(
        method=args.method,
        activations=records.activations,
        non_activating=records.non_activating,
        top_positive_logits=records.top_positive_logits,
        llm=_llm(args, key),
    )
    _set_params(request, args.method, _parse_json_arg(args.params, "--params"), "--params")
    with _client(args) as client:
        response = client.explain(request, request_id=args.request_id)
    if args.json:
        print(json.dumps(_to_json(response), indent=2, ensure_ascii=False))
    else:
        print(response.explanation)
    print(f"usage: {_format_usage(response.usage)}", file=sys.stderr)
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    records = read_records(args.input, args.non_activating)
    request = pb.ScoreRequest(
        method=args.method,
        explanation=args.explanation or "",
        activations=[*records.activations, *records.non_activating],
    )
    if args.model:
        key = _api_key(args, needed=True)
        assert key is not None
        request.llm.CopyFrom(_llm(args, key))
    _set_params(request, args.method, _parse_json_arg(args.params, "--params"), "--params")
    with _client(args) as client:
        response = client.score(request, request_id=args.request_id)
    if args.json:
        print(json.dumps(_to_json(response), indent=2, ensure_ascii=False))
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
    print(f"usage: {_format_usage(response.usage)}", file=sys.stderr)
    return 0


# ---- run: input and output files -----------------------------------------------------------


def read_features(path: str) -> list[pb.Feature]:
    """Parse the input JSONL: one feature per line, blank lines skipped, ids distinct."""
    features: list[pb.Feature] = []
    seen: dict[str, int] = {}
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read {path}: {exc}") from None
    # Split on newlines only: str.splitlines would also split inside a token holding U+2028.
    for number, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UsageError(f"{path}:{number}: not valid JSON ({exc.msg})") from None
        if not isinstance(data, dict):
            raise UsageError(f"{path}:{number}: expected a JSON object (one feature)")
        if isinstance(data.get("id"), int) and not isinstance(data.get("id"), bool):
            data["id"] = str(data["id"])
        try:
            feature = json_format.ParseDict(data, pb.Feature())
        except json_format.ParseError as exc:
            raise UsageError(f"{path}:{number}: {exc}") from None
        if not feature.id.strip():
            raise UsageError(f"{path}:{number}: the feature has no id")
        if feature.id in seen:
            raise UsageError(
                f"{path}:{number}: id {feature.id!r} already used on line {seen[feature.id]}"
            )
        seen[feature.id] = number
        features.append(feature)
    return features


def _is_error(result: dict[str, Any]) -> bool:
    error = result.get("error")
    return isinstance(error, dict) and bool(error.get("code") or error.get("message"))


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
            except json.JSONDecodeError:
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
        self._handle.write(json.dumps(_to_json(result), ensure_ascii=False) + "\n")
        self._handle.flush()

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


# ---- run: statistics -----------------------------------------------------------------------


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
    usage: pb.Usage = field(default_factory=pb.Usage)
    scores: dict[str, list[float]] = field(default_factory=lambda: collections.defaultdict(list))
    metrics: dict[str, str] = field(default_factory=dict)
    scorer_errors: collections.Counter[str] = field(default_factory=collections.Counter)
    started: float = field(default_factory=time.monotonic)

    def add_usage(self, usage: pb.Usage) -> None:
        self.usage.llm_calls += usage.llm_calls
        self.usage.prompt_tokens += usage.prompt_tokens
        self.usage.completion_tokens += usage.completion_tokens
        if usage.HasField("cost"):
            self.usage.cost = (self.usage.cost if self.usage.HasField("cost") else 0.0) + usage.cost

    def record(self, result: pb.FeatureResult) -> None:
        if result.HasField("error"):
            self.failed.append(result)
            return
        self.ok += 1
        for outcome in result.scores:
            if outcome.HasField("score"):
                self.scores[outcome.method].append(outcome.score)
                if outcome.metric:
                    self.metrics[outcome.method] = outcome.metric
            else:
                self.scorer_errors[outcome.method] += 1

    def postfix(self) -> str:
        tokens = self.usage.prompt_tokens + self.usage.completion_tokens
        cost = f"${self.usage.cost:.4f}" if self.usage.HasField("cost") else "n/a"
        return f"tokens={tokens:,} cost={cost} failed={len(self.failed)}"

    def summary(self, out: TextIO, total: int, output: Path) -> None:
        wall = time.monotonic() - self.started
        finished = self.ok + len(self.failed)
        print("\n== summary", file=out)
        print(
            f"features: {total} in the input, {self.skipped} already done in {output} "
            f"(skipped), {finished} finished now: {self.ok} ok, {len(self.failed)} failed "
            f"({self.retried} re-submissions)",
            file=out,
        )
        rows = [("scorer", "metric", "n", "errors", "mean", "median", "p10", "p90")]
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
            _table(rows, out, right=range(2, 8))
        if self.failed:
            print(f"\nfailed features: {len(self.failed)}", file=out)
            for result in self.failed[:SHOWN_FAILURES]:
                message = _short(result.error.message)
                print(f"  {result.id}  {result.error.code}: {message}", file=out)
            if len(self.failed) > SHOWN_FAILURES:
                print(f"  ... and {len(self.failed) - SHOWN_FAILURES} more", file=out)
        print(f"\nusage: {_format_usage(self.usage)}", file=out)
        rate = finished / wall * 60 if wall > 0 else 0.0
        print(f"time: {wall:.1f} s wall, {rate:.1f} features/min", file=out)


# ---- run: scheduling -----------------------------------------------------------------------


@dataclass
class Job:
    """One feature to run, and how often it has been re-submitted."""

    feature: pb.Feature
    retries: int = 0


class FatalRunError(Exception):
    """A stream failed in a way no retry fixes (wrong secret, a request the server rejects)."""

    def __init__(self, message: str, code: grpc.StatusCode) -> None:
        super().__init__(message)
        self.code = code


class _Server:
    def __init__(self, address: str, client: AsyncAutoInterpClient) -> None:
        self.address = address
        self.client = client
        self.streams = 0
        self.failures = 0
        self.cooldown_until = 0.0


class BulkRunner:
    """Runs jobs as ExplainAndScore streams of ``batch_size`` features, ``streams`` at a time.

    Each stream goes to the server with the fewest open streams (skipping, for a growing
    while, one whose last stream failed). A result with a retryable error, or every unfinished
    feature of a failed stream, is re-submitted later up to ``retries`` times; after that its
    error result is final. Final results go to ``on_result`` as they arrive.
    """

    def __init__(
        self,
        servers: list[_Server],
        template: pb.ExplainAndScoreRequest,
        jobs: Iterable[Job],
        *,
        batch_size: int,
        streams: int,
        retries: int,
        stream_timeout: float | None,
        on_result: Callable[[pb.FeatureResult], None],
        on_usage: Callable[[pb.Usage], None],
        on_retry: Callable[[Job, pb.FeatureResult], None],
    ) -> None:
        self.servers = servers
        self.template = template
        self.pending: collections.deque[Job] = collections.deque(jobs)
        self.batch_size = batch_size
        self.streams = streams
        self.retries = retries
        self.stream_timeout = stream_timeout
        self.on_result = on_result
        self.on_usage = on_usage
        self.on_retry = on_retry
        self.in_flight = 0
        self.fatal: FatalRunError | None = None
        self._changed = asyncio.Condition()
        self._stopped = asyncio.Event()
        self._turn = 0

    async def run(self) -> None:
        """Run every job; raises FatalRunError when the run had to stop (the streams still
        open are cancelled then; their unfinished features are left for a resumed run)."""
        workers = asyncio.gather(*(self._worker() for _ in range(self.streams)))
        stopped = asyncio.ensure_future(self._stopped.wait())
        try:
            await asyncio.wait((workers, stopped), return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()
            if not workers.done():
                workers.cancel()
            await asyncio.gather(workers, stopped, return_exceptions=True)
        if self.fatal is not None:
            raise self.fatal
        workers.result()  # re-raises a worker's unexpected exception

    async def _worker(self) -> None:
        while True:
            async with self._changed:
                await self._changed.wait_for(
                    lambda: self.fatal is not None or self.pending or self.in_flight == 0
                )
                if self.fatal is not None or not self.pending:
                    return
                batch = [
                    self.pending.popleft() for _ in range(min(self.batch_size, len(self.pending)))
                ]
                self.in_flight += len(batch)
            try:
                server = await self._pick_server()
                await self._run_batch(server, batch)
            finally:
                async with self._changed:
                    self.in_flight -= len(batch)
                    self._changed.notify_all()

    async def _pick_server(self) -> _Server:
        while True:
            now = time.monotonic()
            ready = [s for s in self.servers if s.cooldown_until <= now]
            if ready:
                self._turn += 1
                order = ready[self._turn % len(ready) :] + ready[: self._turn % len(ready)]
                return min(order, key=lambda s: s.streams)
            await asyncio.sleep(min(s.cooldown_until for s in self.servers) - now)

    def _requeue(self, job: Job, result: pb.FeatureResult) -> None:
        """Re-submit ``job`` if its error is retryable and it has retries left, else finish."""
        if result.error.code in RETRYABLE_CODES and job.retries < self.retries:
            job.retries += 1
            self.pending.append(job)
            self.on_retry(job, result)
        else:
            self.on_result(result)

    async def _run_batch(self, server: _Server, batch: list[Job]) -> None:
        request = pb.ExplainAndScoreRequest()
        request.CopyFrom(self.template)
        request.features.extend(job.feature for job in batch)
        by_id = {job.feature.id: job for job in batch}
        request_id = uuid.uuid4().hex
        server.streams += 1
        try:
            stream = server.client.explain_and_score(
                request, timeout=self.stream_timeout, request_id=request_id
            )
            try:
                async for event in stream:
                    if not event.HasField("result"):
                        continue
                    job = by_id.pop(event.result.id, None)
                    if job is None:
                        continue  # not one of ours, or a repeat: ignore
                    self.on_usage(event.result.usage)
                    async with self._changed:
                        self._requeue(job, event.result)
                        self._changed.notify_all()
            finally:
                stream.cancel()
        except grpc.RpcError as error:
            await self._stream_failed(server, batch, by_id, error, request_id)
        else:
            server.failures = 0
            if by_id:  # the stream ended without some results
                await self._give_back(
                    by_id.values(), "UNKNOWN", "the stream ended without a result for it"
                )
        finally:
            server.streams -= 1

    async def _stream_failed(
        self,
        server: _Server,
        batch: list[Job],
        unfinished: dict[str, Job],
        error: grpc.RpcError,
        request_id: str,
    ) -> None:
        code, details = rpc_status(error)
        if code == grpc.StatusCode.INVALID_ARGUMENT and len(unfinished) == len(batch):
            # The server may reject a whole request over one feature ("features[3].…"): fail
            # that feature, and send the others again (no retry used up).
            match = _FEATURE_PATH_RE.match(details)
            index = int(match.group(1)) if match else -1
            if match and 0 <= index < len(batch):
                bad = unfinished.pop(batch[index].feature.id)
                async with self._changed:
                    self.on_result(
                        pb.FeatureResult(
                            id=bad.feature.id,
                            error=pb.FeatureError(
                                code=code.name, message=details[match.end() :] or details
                            ),
                        )
                    )
                    self.pending.extendleft(reversed(list(unfinished.values())))
                    self._changed.notify_all()
                return
        if code in FATAL_CODES:
            async with self._changed:
                if self.fatal is None:
                    message = _rpc_failure(f"ExplainAndScore on {server.address}", error)
                    self.fatal = FatalRunError(f"{message} (request id {request_id})", code)
                    self._stopped.set()
                self.pending.extendleft(reversed(list(unfinished.values())))
                self._changed.notify_all()
            return
        server.failures += 1
        cooldown = min(MAX_COOLDOWN_S, 0.5 * 2 ** (server.failures - 1))
        server.cooldown_until = time.monotonic() + cooldown
        await self._give_back(
            unfinished.values(), code.name, f"the stream to {server.address} failed: {details}"
        )

    async def _give_back(self, jobs: Iterable[Job], code: str, message: str) -> None:
        async with self._changed:
            for job in list(jobs):
                error = pb.FeatureError(code=code, message=message)
                self._requeue(job, pb.FeatureResult(id=job.feature.id, error=error))
            self._changed.notify_all()


# ---- run: the command ----------------------------------------------------------------------


def _local_error(feature: pb.Feature) -> pb.FeatureResult | None:
    """A failed result for a feature the server would reject with the whole request."""
    from autointerp_grpc.errors import InvalidArgument
    from autointerp_grpc.validation import check_required

    try:
        check_required(feature)
    except InvalidArgument as exc:
        return pb.FeatureResult(
            id=feature.id, error=pb.FeatureError(code="INVALID_ARGUMENT", message=exc.message)
        )
    return None


def _build_template(
    args: argparse.Namespace, key: str
) -> tuple[pb.ExplainAndScoreRequest, list[str]]:
    scorers = [s.strip() for s in (args.scorers or "").split(",") if s.strip()]
    request = pb.ExplainAndScoreRequest(llm=_llm(args, key))
    request.explainer.method = args.explainer
    _set_params(
        request.explainer,
        args.explainer,
        _parse_json_arg(args.explainer_params, "--explainer-params"),
        "--explainer-params",
    )
    scorer_params = _parse_json_arg(args.scorer_params, "--scorer-params") or {}
    for name in scorer_params:
        if name not in scorers:
            raise UsageError(f"--scorer-params names {name!r}, which is not in --scorers")
    for name in scorers:
        choice = request.scorers.add(method=name)
        params = scorer_params.get(name)
        if params is not None and not isinstance(params, dict):
            raise UsageError(f"--scorer-params: the parameters of {name!r} must be an object")
        _set_params(choice, name, params, f"--scorer-params ({name})")
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


async def _preflight(
    servers: list[_Server], args: argparse.Namespace, scorers: list[str]
) -> list[_Server]:
    """Ask every server for its methods: drop unreachable ones, check the method names."""

    async def ask(server: _Server) -> pb.ListMethodsResponse | grpc.RpcError:
        try:
            return await server.client.list_methods(timeout=PREFLIGHT_TIMEOUT_S)
        except grpc.RpcError as error:
            return error

    answers = await asyncio.gather(*(ask(s) for s in servers))
    alive: list[_Server] = []
    for server, answer in zip(servers, answers, strict=True):
        if isinstance(answer, pb.ListMethodsResponse):
            _check_methods(answer, args, scorers)
            alive.append(server)
            continue
        code, _ = rpc_status(answer)
        message = _rpc_failure(f"ListMethods on {server.address}", answer)
        if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
            print(f"warning: {message}; not using this server", file=sys.stderr)
            continue
        raise FatalRunError(message, code)
    if not alive:
        raise FatalRunError("no server is reachable", grpc.StatusCode.UNAVAILABLE)
    return alive


async def _run_async(args: argparse.Namespace) -> int:
    key = _api_key(args, needed=True)
    assert key is not None
    template, scorers = _build_template(args, key)
    features = read_features(args.input)
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
    servers = [
        _Server(a, AsyncAutoInterpClient(a, secret=args.secret, timeout=args.timeout))
        for a in split_servers(args.server)
    ]
    try:
        try:
            alive = await _preflight(servers, args, scorers)
        except FatalRunError as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
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
        await asyncio.gather(*(s.client.close() for s in servers))


async def _execute(
    args: argparse.Namespace,
    *,
    servers: list[_Server],
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

    def retried(job: Job, result: pb.FeatureResult) -> None:
        stats.retried += 1

    status = 0
    try:
        jobs: list[Job] = []
        for feature in todo:
            local = _local_error(feature)
            if local is not None:
                finish(local)
            else:
                jobs.append(Job(feature))
        if jobs:
            runner = BulkRunner(
                servers,
                template,
                jobs,
                batch_size=args.batch_size,
                streams=args.streams or 2 * len(servers),
                retries=args.retries,
                stream_timeout=args.timeout,
                on_result=finish,
                on_usage=stats.add_usage,
                on_retry=retried,
            )
            await runner.run()
    except FatalRunError as error:
        bar.close()
        print(f"error: {error}", file=sys.stderr)
        print(f"stopped; results so far are in {output}; a rerun resumes there", file=sys.stderr)
        status = 2 if error.code == grpc.StatusCode.INVALID_ARGUMENT else 1
    finally:
        bar.close()
        writer.close()
    stats.summary(sys.stdout, total, output)
    return status or (1 if stats.failed else 0)


def cmd_run(args: argparse.Namespace) -> int:
    if args.batch_size < 1:
        raise UsageError("--batch-size must be at least 1")
    if args.streams is not None and args.streams < 1:
        raise UsageError("--streams must be at least 1")
    if args.retries < 0:
        raise UsageError("--retries must be at least 0")
    if Path(args.output).resolve() == Path(args.input).resolve():
        raise UsageError("--output must not be the --input file")
    return asyncio.run(_run_async(args))


# ---- argument parsing ----------------------------------------------------------------------


@contextlib.contextmanager
def _client(args: argparse.Namespace) -> Any:
    client = AutoInterpClient(args.server, secret=args.secret, timeout=args.timeout)
    try:
        yield client
    finally:
        client.close()


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


def build_parser() -> argparse.ArgumentParser:
    """The ``autointerp`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="autointerp",
        description="Explain and score neurons / SAE latents with an autointerp server.",
        epilog="Exit status: 0 ok, 1 a call or some feature failed, 2 usage error.",
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
        "topPositiveLogits}",
    )
    explain.add_argument("--non-activating", help="JSON file: a list of non-activating records")
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
    run.add_argument("--input", required=True, help="features, one JSON object per line")
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
    run.add_argument("--holdout", type=float, help="fraction of activating records held out")
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
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    run.set_defaults(handler=cmd_run)
    return parser


_RPC_NAMES = {"methods": "ListMethods", "explain": "Explain", "score": "Score"}


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
        rpc = _RPC_NAMES.get(args.command, args.command)
        print(f"error: {_rpc_failure(rpc, error, args.request_id)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        hint = "; results so far are kept and a rerun resumes" if args.command == "run" else ""
        print(f"interrupted{hint}", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (e.g. `autointerp methods | head`): stop quietly, as Unix
        # tools do; point stdout at devnull so the interpreter's final flush cannot fail.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
