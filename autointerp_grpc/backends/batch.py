"""Provider Batch API mode: the pipeline replayed in rounds over the response store.

A batch-mode ExplainAndScore request (``LlmOptions.batch``) runs the pipeline as usual, but a
call the store cannot answer is not sent: :class:`~autointerp_grpc.backends.llm.LLMClient`
adds it (its store key and request body) to the feature's :class:`PendingCalls` and raises
:class:`CallPending`, and the feature is reported ``pending`` (never failed, never scored).
At the request's end :meth:`BatchRound.submit` sends the collected calls as batches (OpenAI's
``/v1/files`` + ``/v1/batches`` through the openai SDK, each key as the ``custom_id``, split at
the provider's limits); the next request :meth:`BatchRound.collect`\\ s the batches that
finished into the store (cost by the price table at the batch discount), and the calls they
answered replay. explain → score → best-of-k fall out as successive rounds.

The open batches live in the store's database (:class:`BatchLedger`: table ``llm_batches``,
and ``llm_batch_failures`` for calls the provider failed), so a restarted server or CLI picks
a run up where it was. A call whose batch requests failed :data:`MAX_BATCH_ATTEMPTS` times
fails its feature instead of waiting forever.
"""

from __future__ import annotations

import contextvars
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import openai

from autointerp_grpc.backends.store import GuardedStore, StoredAnswer
from autointerp_grpc.errors import FailedPrecondition, Unavailable
from autointerp_grpc.pricing import PriceTable
from autointerp_grpc.redaction import redact_value

log = logging.getLogger(__name__)

MAX_BATCH_REQUESTS = 50_000
"""Most requests in one batch input file (OpenAI's limit)."""
MAX_BATCH_FILE_BYTES = 200 * 1024 * 1024
"""Largest batch input file (OpenAI's limit)."""
MAX_BATCH_ATTEMPTS = 3
"""Batches a call may fail in before its feature fails instead of waiting again."""
BATCH_FILE_MAX_READ_BYTES = 512 * 1024 * 1024
"""Largest batch output or error file read back from a provider."""
COMPLETION_WINDOW = "24h"
COMPLETION_WINDOW_S = 24 * 3600.0
BATCH_ENDPOINT = "/v1/chat/completions"

OPEN_STATUSES = frozenset({"validating", "in_progress", "finalizing", "cancelling"})
"""Provider batch statuses that may still produce answers."""


class CallPending(Unavailable):
    """A batch-mode call the store could not answer: collected for the next batch. The
    feature that made it is reported pending, never failed."""

    def __init__(self) -> None:
        super().__init__("The call waits for the provider's batch (batch mode)")


@dataclass
class PendingCalls:
    """One feature's calls that wait for a batch, by store key; ``given_up`` the calls that
    failed in :data:`MAX_BATCH_ATTEMPTS` batches (key → the last error)."""

    given_up: dict[str, str] = field(default_factory=dict)
    calls: dict[str, dict[str, Any]] = field(default_factory=dict)


pending_calls: contextvars.ContextVar[PendingCalls | None] = contextvars.ContextVar(
    "autointerp_pending_calls", default=None
)
"""Where a batch-mode client puts the calls the store could not answer (set per feature by
the bulk handler); None outside a batch-mode ExplainAndScore feature."""


def batch_lines(calls: dict[str, dict[str, Any]]) -> list[bytes]:
    """One batch input line per call: the key as ``custom_id``, the chat request as body."""
    return [
        json.dumps(
            {"custom_id": key, "method": "POST", "url": BATCH_ENDPOINT, "body": body},
            ensure_ascii=False,
            separators=(",", ":"),
        ).encode("utf-8", "surrogatepass")
        + b"\n"
        for key, body in calls.items()
    ]


def split_lines(
    lines: list[bytes],
    max_requests: int = MAX_BATCH_REQUESTS,
    max_bytes: int = MAX_BATCH_FILE_BYTES,
) -> list[list[bytes]]:
    """``lines`` in order, cut into files of at most ``max_requests`` lines and ``max_bytes``
    bytes (a single line over ``max_bytes`` is a file of its own: the provider judges it)."""
    files: list[list[bytes]] = []
    current: list[bytes] = []
    size = 0
    for line in lines:
        if current and (len(current) >= max_requests or size + len(line) > max_bytes):
            files.append(current)
            current, size = [], 0
        current.append(line)
        size += len(line)
    if current:
        files.append(current)
    return files


@dataclass(frozen=True)
class BatchRow:
    """One batch the ledger knows."""

    id: str
    provider: str
    model: str
    status: str
    created: float
    requests: int
    completed: int
    failed: int
    collected: bool


_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS llm_batches ("
    " id TEXT PRIMARY KEY, provider TEXT NOT NULL, model TEXT NOT NULL, status TEXT NOT NULL,"
    " created DOUBLE PRECISION NOT NULL, requests INTEGER NOT NULL, completed INTEGER NOT NULL,"
    " failed INTEGER NOT NULL, collected INTEGER NOT NULL, keys TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS llm_batch_failures ("
    " key TEXT PRIMARY KEY, attempts INTEGER NOT NULL, error TEXT NOT NULL)",
)
_COLUMNS = "id, provider, model, status, created, requests, completed, failed, collected"


def _row(r: tuple[Any, ...]) -> BatchRow:
    return BatchRow(
        id=str(r[0]),
        provider=str(r[1]),
        model=str(r[2]),
        status=str(r[3]),
        created=float(r[4]),
        requests=int(r[5]),
        completed=int(r[6]),
        failed=int(r[7]),
        collected=bool(r[8]),
    )


class BatchLedger:
    """The batches of batch-mode runs, in the response store's database."""

    def __init__(self, store: Any) -> None:
        self._store = store
        self._ready = False

    async def _sql(self, statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        if not self._ready:
            for schema in _SCHEMA:
                await self._store.execute(schema)
            self._ready = True
        return await self._store.execute(statement, params)

    async def rows(self, *, open_only: bool = False, provider: str = "") -> list[BatchRow]:
        """The batches, oldest first; ``open_only``: those not yet collected."""
        where = ["1 = 1"]
        params: list[Any] = []
        if open_only:
            where.append("collected = 0")
        if provider:
            where.append("provider = %s")
            params.append(provider)
        # Only fixed column names and conditions are joined in; values go as parameters.
        statement = f"SELECT {_COLUMNS} FROM llm_batches WHERE {' AND '.join(where)}"  # noqa: S608
        rows = await self._sql(statement + " ORDER BY created", tuple(params))
        return [_row(r) for r in rows]

    async def keys(self, batch_id: str) -> list[str]:
        rows = await self._sql("SELECT keys FROM llm_batches WHERE id = %s", (batch_id,))
        return [str(k) for k in json.loads(rows[0][0])] if rows else []

    async def open_keys(self, provider: str) -> set[str]:
        """The keys waiting in batches not yet collected."""
        rows = await self._sql(
            "SELECT keys FROM llm_batches WHERE collected = 0 AND provider = %s", (provider,)
        )
        return {str(k) for row in rows for k in json.loads(row[0])}

    async def add(self, row: BatchRow, keys: list[str]) -> None:
        values = (row.id, row.provider, row.model, row.status, row.created, row.requests)
        await self._sql(
            f"INSERT INTO llm_batches ({_COLUMNS}, keys)"  # noqa: S608 (fixed column names)
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (*values, row.completed, row.failed, int(row.collected), json.dumps(keys)),
        )

    async def update(
        self, batch_id: str, status: str, completed: int, failed: int, collected: bool
    ) -> None:
        await self._sql(
            "UPDATE llm_batches SET status = %s, completed = %s, failed = %s, collected = %s"
            " WHERE id = %s",
            (status, completed, failed, int(collected), batch_id),
        )

    async def record_failures(self, failures: dict[str, str]) -> None:
        """One more failed attempt for each key (key → the provider's error)."""
        for key, error in failures.items():
            rows = await self._sql("SELECT attempts FROM llm_batch_failures WHERE key = %s", (key,))
            attempts = int(rows[0][0]) + 1 if rows else 1
            await self._sql("DELETE FROM llm_batch_failures WHERE key = %s", (key,))
            await self._sql(
                "INSERT INTO llm_batch_failures (key, attempts, error) VALUES (%s, %s, %s)",
                (key, attempts, error[:300]),
            )

    async def given_up(self) -> dict[str, str]:
        """Keys that failed in :data:`MAX_BATCH_ATTEMPTS` batches → their last error."""
        rows = await self._sql(
            "SELECT key, error FROM llm_batch_failures WHERE attempts >= %s",
            (MAX_BATCH_ATTEMPTS,),
        )
        return {str(r[0]): str(r[1]) for r in rows}


def _usage_count(usage: dict[str, Any], name: str) -> int:
    value = usage.get(name)
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def answer_from_body(
    body: Any, model: str, prices: PriceTable, answer_bytes: int
) -> StoredAnswer | str:
    """The stored answer a batch output line's chat completion makes (its cost by the price
    table at the batch discount), or why it makes none."""
    if not isinstance(body, dict):
        return "the answer is not a chat completion"
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return "the answer is not a chat completion"
    message = choices[0].get("message")
    content = message.get("content") if isinstance(message, dict) else None
    if not isinstance(content, str):
        return "the answer has no content"
    if len(content.encode("utf-8", "surrogatepass")) > answer_bytes:
        return f"the answer is larger than this server's limit of {answer_bytes} bytes"
    logprobs_field = choices[0].get("logprobs")
    items = logprobs_field.get("content") if isinstance(logprobs_field, dict) else None
    logprobs = [i for i in items if isinstance(i, dict)] if isinstance(items, list) else None
    usage = body.get("usage") if isinstance(body.get("usage"), dict) else {}
    assert isinstance(usage, dict)
    prompt = _usage_count(usage, "prompt_tokens")
    completion = _usage_count(usage, "completion_tokens")
    details = usage.get("prompt_tokens_details")
    cached = min(_usage_count(details, "cached_tokens"), prompt) if isinstance(details, dict) else 0
    return StoredAnswer(
        content=content,
        logprobs=logprobs or None,
        model=model,
        prompt_tokens=prompt,
        completion_tokens=completion,
        cached_prompt_tokens=cached,
        cost=prices.cost(model, prompt, completion, cached, batch=True),
        created=time.time(),
    )


@dataclass
class RoundReport:
    """What one round did (the proto's BatchRound)."""

    collected_answers: int = 0
    failed_requests: int = 0
    submitted_requests: int = 0
    submitted_batch_ids: list[str] = field(default_factory=list)
    open_batches: int = 0
    open_requests: int = 0
    open_completed: int = 0
    expected_wait_s: float = 0.0
    notes: list[str] = field(default_factory=list)
    collected_cost: float | None = None
    collected_prompt_tokens: int = 0
    collected_completion_tokens: int = 0


def _expected_wait(batch: Any, now: float) -> float:
    """Seconds until ``batch`` finishes: from its completion rate so far, else what is left
    of its window."""
    counts = getattr(batch, "request_counts", None)
    total = getattr(counts, "total", 0) or 0
    done = (getattr(counts, "completed", 0) or 0) + (getattr(counts, "failed", 0) or 0)
    created = float(getattr(batch, "created_at", now) or now)
    expires = getattr(batch, "expires_at", None)
    window_left = (float(expires) if expires else created + COMPLETION_WINDOW_S) - now
    if total and done:
        rate = done / max(now - created, 1e-3)
        return max(0.0, min((total - done) / rate, window_left))
    return max(0.0, window_left)


_REASON_SCAN = 4096
"""How much of a failed batch request's message is read."""
_REASON_LIMIT = 200
"""How much of it (redacted) is kept as the reason."""


class BatchRound:
    """One batch-mode request's dealings with the provider's Batch API and the ledger."""

    def __init__(
        self,
        client: openai.AsyncOpenAI,
        store: GuardedStore,
        *,
        provider: str,
        model: str,
        prices: PriceTable,
        answer_bytes: int,
    ) -> None:
        self._client = client
        self._store = store
        self._ledger = BatchLedger(store.store)
        self._provider = provider
        self._model = model
        self._prices = prices
        self._answer_bytes = answer_bytes
        self.report = RoundReport()

    async def aclose(self) -> None:
        await self._client.close()

    async def begin(self) -> dict[str, str]:
        """Collect the provider's finished batches into the store; the calls given up on."""
        try:
            await self._collect()
            return await self._ledger.given_up()
        except openai.OpenAIError as exc:
            raise _provider_error(exc, "asking about its batches") from None

    async def _collect(self) -> None:
        report = self.report
        now = time.time()
        for row in await self._ledger.rows(open_only=True, provider=self._provider):
            try:
                batch = await self._client.batches.retrieve(row.id)
            except openai.NotFoundError:
                report.notes.append(
                    f"batch {row.id} is unknown to the provider (another API key, or deleted); "
                    "its calls are sent again"
                )
                failures = {
                    k: "the batch is unknown to the provider"
                    for k in await self._ledger.keys(row.id)
                }
                await self._ledger.record_failures(failures)
                report.failed_requests += len(failures)
                await self._ledger.update(row.id, "lost", 0, len(failures), collected=True)
                continue
            counts = batch.request_counts
            completed = counts.completed if counts is not None else 0
            failed = counts.failed if counts is not None else 0
            if batch.status in OPEN_STATUSES:
                await self._ledger.update(row.id, batch.status, completed, failed, False)
                report.open_batches += 1
                report.open_requests += row.requests
                report.open_completed += completed
                report.expected_wait_s = max(report.expected_wait_s, _expected_wait(batch, now))
                continue
            answered = await self._read_answers(batch)
            keys = await self._ledger.keys(row.id)
            reason = f"the batch ended {batch.status}"
            failures = {k: answered.get(k, reason) for k in keys if answered.get(k) != ""}
            await self._ledger.record_failures(failures)
            report.failed_requests += len(failures)
            report.collected_answers += len(keys) - len(failures)
            await self._ledger.update(row.id, batch.status, completed, failed, collected=True)

    async def _read_answers(self, batch: Any) -> dict[str, str]:
        """Store every answer of ``batch``'s output file; key → "" when stored, else why not
        (from its error file, or the answer itself)."""
        outcome: dict[str, str] = {}
        for file_id in (batch.error_file_id, batch.output_file_id):
            if not file_id:
                continue
            content = await self._client.files.content(file_id)
            for line in content.content.splitlines():
                try:
                    item = json.loads(line)
                except (ValueError, RecursionError):
                    continue
                if not isinstance(item, dict) or not isinstance(item.get("custom_id"), str):
                    continue
                key = item["custom_id"]
                outcome[key] = await self._store_line(key, item)
        return outcome

    async def _store_line(self, key: str, item: dict[str, Any]) -> str:
        response = item.get("response")
        error = item.get("error")
        if isinstance(error, dict) and error:
            # The reason is kept in the ledger and may reach a caller's error: never with the
            # API key in it (a provider that echoes it), and redacted before it is cut short,
            # so no part of the key survives the cut.
            message = str(error.get("message", ""))[:_REASON_SCAN]
            reason = redact_value(message, self._client.api_key)[:_REASON_LIMIT]
            return f"the provider failed the request: {reason}"
        if not isinstance(response, dict):
            return "the provider sent no response"
        status = response.get("status_code")
        if status != 200:
            return f"the provider answered HTTP {status}"
        answer = answer_from_body(
            response.get("body"), self._model, self._prices, self._answer_bytes
        )
        if isinstance(answer, str):
            return answer
        await self._store.put(key, answer)
        self.report.collected_prompt_tokens += answer.prompt_tokens
        self.report.collected_completion_tokens += answer.completion_tokens
        if answer.cost is not None:
            self.report.collected_cost = (self.report.collected_cost or 0.0) + answer.cost
        return ""

    async def submit(self, calls: dict[str, dict[str, Any]]) -> None:
        """Submit ``calls`` (key → request body) not already waiting in an open batch, as
        batches split at the provider's limits; each one goes into the ledger."""
        try:
            waiting = await self._ledger.open_keys(self._provider)
            new = {k: b for k, b in calls.items() if k not in waiting}
            for lines in split_lines(batch_lines(new)):
                keys = [json.loads(line)["custom_id"] for line in lines]
                upload = await self._client.files.create(
                    file=("autointerp-batch.jsonl", b"".join(lines)), purpose="batch"
                )
                batch = await self._client.batches.create(
                    input_file_id=upload.id,
                    endpoint=BATCH_ENDPOINT,
                    completion_window=COMPLETION_WINDOW,
                    metadata={"source": "autointerp"},
                )
                row = BatchRow(
                    id=batch.id,
                    provider=self._provider,
                    model=self._model,
                    status=batch.status,
                    created=float(batch.created_at or time.time()),
                    requests=len(keys),
                    completed=0,
                    failed=0,
                    collected=False,
                )
                await self._ledger.add(row, keys)
                report = self.report
                report.submitted_requests += len(keys)
                report.submitted_batch_ids.append(batch.id)
                report.open_batches += 1
                report.open_requests += len(keys)
                report.expected_wait_s = max(
                    report.expected_wait_s, _expected_wait(batch, time.time())
                )
        except openai.OpenAIError as exc:
            raise _provider_error(exc, "submitting a batch") from None


def _provider_error(exc: openai.OpenAIError, doing: str) -> Unavailable | FailedPrecondition:
    status = getattr(exc, "status_code", None)
    if status in (401, 403):
        return FailedPrecondition(
            f"The LLM provider rejected the API key while {doing} (HTTP {status})"
        )
    if status == 404:
        return FailedPrecondition(
            f"The LLM provider has no Batch API (HTTP 404 while {doing}); run without llm.batch"
        )
    what = f"HTTP {status}" if status else type(exc).__name__
    return Unavailable(f"The LLM provider's Batch API failed while {doing} ({what})")


async def cancel_open(ledger: BatchLedger, client: openai.AsyncOpenAI, provider: str) -> list[str]:
    """Ask the provider to cancel every open batch of ``provider``; the ids asked. A cancelled
    batch's finished answers are still collected by the next round."""
    asked: list[str] = []
    for row in await ledger.rows(open_only=True, provider=provider):
        try:
            batch = await client.batches.cancel(row.id)
        except openai.NotFoundError:
            continue
        await ledger.update(row.id, batch.status, row.completed, row.failed, False)
        asked.append(row.id)
    return asked
