"""The LLM response store: every upstream call is a key, and an answered key is never paid for
twice.

An LLM call is a pure function of (provider, model, messages, sampling parameters, response
format, candidate index): :func:`call_key` hashes exactly that (SHA-256 of a canonical JSON
form), and :class:`StoredAnswer` is what the provider said: the raw answer content, its
per-token log probabilities (when asked for), the token counts, the cost, the model and the
time. The caller's API key is never part of either: two callers asking the same thing share
the answer, and nothing read back from the store can leak a key.

Two stores share one interface (:class:`ResponseStore`):

* :class:`SqliteStore`, embedded: one file in a data directory (``AUTOINTERP_STORE__DIR``).
  Its calls are blocking, so they run on the service's worker threads (:func:`off_loop`),
  never on the event loop.
* :class:`PostgresStore`, shared by several replicas (``AUTOINTERP_STORE__URL``), through
  psycopg's async driver (the ``postgres`` extra).

A store that fails (a full disk, a database that went away) never fails a call: the lookup is a
miss, the write is skipped, and the failure is logged without the store's URL.

Built for replay: a provider Batch API run is the same pipeline run in rounds over this store
(collect the keys that miss, submit them as one batch, :meth:`ResponseStore.put` the answers,
run again until nothing misses), so a batch round needs nothing from this module but
:func:`call_key` and ``put``.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import hashlib
import json
import logging
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

from autointerp_grpc.offload import OFF_LOOP_ITEMS, off_loop

log = logging.getLogger(__name__)

KEY_VERSION = "autointerp-llm-call-v1"
"""Part of every key: a change to what a key covers changes this, so old entries are never
read as answers to calls they were not."""

SQLITE_FILE = "llm-responses.sqlite3"
"""The SQLite store's file name in ``AUTOINTERP_STORE__DIR``."""

candidate_index: contextvars.ContextVar[int] = contextvars.ContextVar(
    "autointerp_candidate_index", default=0
)
"""Which of several deliberate samples of the same call this is (best-of-k's draft number):
part of the key, so k drafts at a temperature above 0 are k stored answers, not one answer k
times. Set around a draft's work (:func:`candidate`); 0 everywhere else."""


@contextlib.contextmanager
def candidate(index: int) -> Iterator[None]:
    """Calls made inside are the ``index``-th sample of their prompt (see
    :data:`candidate_index`)."""
    token = candidate_index.set(index)
    try:
        yield
    finally:
        candidate_index.reset(token)


def call_key(
    provider: str,
    model: str,
    messages: list[dict[str, str]],
    params: dict[str, Any],
    candidate: int = 0,
) -> str:
    """The store key of one upstream call: a hex SHA-256 over the provider's name, the model,
    the exact messages, every parameter sent with them (sampling parameters, log
    probabilities, the response format, reasoning effort, the token limit) and the candidate
    index. Parameters that change no answer (the API key, OpenRouter's usage accounting)
    are not passed in."""
    document = {
        "v": KEY_VERSION,
        "provider": provider,
        "model": model,
        "messages": messages,
        "params": params,
        "candidate": candidate,
    }
    text = json.dumps(document, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True)
class StoredAnswer:
    """What the provider answered to one call, as the store keeps it (never an API key)."""

    content: str
    """The answer's content as received (a reasoning trace in it is stripped when read)."""
    logprobs: list[dict[str, Any]] | None
    """The answer's per-token log probabilities as plain JSON (``token``, ``logprob``,
    ``bytes``, ``top_logprobs``), or None when none were asked for or sent."""
    model: str
    prompt_tokens: int
    completion_tokens: int
    cached_prompt_tokens: int
    cost: float | None
    """What the call cost when it was made (the provider's figure or the price table's)."""
    created: float
    """When it was answered (Unix time)."""

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> StoredAnswer | None:
        """The entry ``text`` holds, or None when it is not one (an entry written by another
        version, a damaged row): a miss, never an exception."""
        try:
            data = json.loads(text)
            if not isinstance(data, dict) or not isinstance(data.get("content"), str):
                return None
            logprobs = data.get("logprobs")
            cost = data.get("cost")
            return cls(
                content=data["content"],
                logprobs=logprobs if isinstance(logprobs, list) else None,
                model=str(data.get("model", "")),
                prompt_tokens=_count(data.get("prompt_tokens")),
                completion_tokens=_count(data.get("completion_tokens")),
                cached_prompt_tokens=_count(data.get("cached_prompt_tokens")),
                cost=float(cost) if isinstance(cost, int | float) and cost >= 0 else None,
                created=float(data.get("created", 0.0)),
            )
        except (ValueError, TypeError, RecursionError):
            return None


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


class ResponseStore(Protocol):
    """Where answered calls are kept, by :func:`call_key`."""

    name: str
    """What kind of store it is, for logs ("sqlite", "postgresql"); never a path or URL."""

    async def get(self, key: str) -> StoredAnswer | None: ...

    async def put(self, key: str, answer: StoredAnswer) -> None: ...

    async def count(self) -> int: ...

    async def aclose(self) -> None: ...


class SqliteStore:
    """The embedded store: one SQLite file (write-ahead log, so readers never wait for the
    writer), opened on first use. Every call runs on a worker thread."""

    name = "sqlite"

    def __init__(self, directory: str | Path) -> None:
        self.path = Path(directory) / SQLITE_FILE
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, check_same_thread=False, timeout=30.0)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS llm_responses ("
                " key TEXT PRIMARY KEY, model TEXT NOT NULL, created REAL NOT NULL,"
                " prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL,"
                " entry TEXT NOT NULL)"
            )
            conn.commit()
            self._conn = conn
        return self._conn

    def _get(self, key: str) -> StoredAnswer | None:
        with self._lock:
            row = (
                self._connection()
                .execute("SELECT entry FROM llm_responses WHERE key = ?", (key,))
                .fetchone()
            )
        return StoredAnswer.from_json(row[0]) if row is not None else None

    def _put(self, key: str, answer: StoredAnswer) -> None:
        with self._lock:
            conn = self._connection()
            conn.execute(
                "INSERT OR REPLACE INTO llm_responses"
                " (key, model, created, prompt_tokens, completion_tokens, entry)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (
                    key,
                    answer.model,
                    answer.created,
                    answer.prompt_tokens,
                    answer.completion_tokens,
                    answer.to_json(),
                ),
            )
            conn.commit()

    def _count(self) -> int:
        with self._lock:
            row = self._connection().execute("SELECT COUNT(*) FROM llm_responses").fetchone()
        return int(row[0])

    def _execute(self, statement: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        with self._lock:
            conn = self._connection()
            rows = conn.execute(statement.replace("%s", "?"), params).fetchall()
            conn.commit()
        return rows

    def _close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    async def get(self, key: str) -> StoredAnswer | None:
        return await off_loop(OFF_LOOP_ITEMS, self._get, key)

    async def put(self, key: str, answer: StoredAnswer) -> None:
        await off_loop(OFF_LOOP_ITEMS, self._put, key, answer)

    async def count(self) -> int:
        return await off_loop(OFF_LOOP_ITEMS, self._count)

    async def execute(self, statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Run one SQL statement (``%s`` placeholders) in the store's database; its rows.
        For tables kept beside the answers (the batch ledger)."""
        return await off_loop(OFF_LOOP_ITEMS, self._execute, statement, params)

    async def aclose(self) -> None:
        await off_loop(OFF_LOOP_ITEMS, self._close)


_POSTGRES_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS llm_responses ("
    " key TEXT PRIMARY KEY, model TEXT NOT NULL, created DOUBLE PRECISION NOT NULL,"
    " prompt_tokens BIGINT NOT NULL, completion_tokens BIGINT NOT NULL, entry TEXT NOT NULL)"
)


class PostgresStore:
    """The shared store: a PostgreSQL table that several replicas read and write, over a few
    async connections opened on first use (psycopg, the ``postgres`` extra)."""

    name = "postgresql"

    def __init__(self, url: str, connections: int = 4) -> None:
        self._url = url
        self._size = connections
        self._idle: asyncio.Queue[Any] | None = None
        self._opened = 0
        self._all: list[Any] = []
        self._setup = asyncio.Lock()
        self._schema_ready = False

    async def _acquire(self) -> Any:
        import psycopg  # the optional `postgres` extra: imported only when configured

        async with self._setup:
            if self._idle is None:
                self._idle = asyncio.Queue()
            if self._idle.empty() and self._opened < self._size:
                self._opened += 1
                try:
                    conn = await psycopg.AsyncConnection.connect(self._url, autocommit=True)
                except BaseException:
                    self._opened -= 1
                    raise
                self._all.append(conn)
                if not self._schema_ready:
                    await conn.execute(_POSTGRES_SCHEMA)
                    self._schema_ready = True
                return conn
        return await self._idle.get()

    def _release(self, conn: Any) -> None:
        if self._idle is None:
            return
        if conn.closed:
            self._all.remove(conn)
            self._opened -= 1
        else:
            self._idle.put_nowait(conn)

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[Any]:
        conn = await self._acquire()
        try:
            yield conn
        finally:
            self._release(conn)

    async def get(self, key: str) -> StoredAnswer | None:
        async with self._connection() as conn:
            cursor = await conn.execute("SELECT entry FROM llm_responses WHERE key = %s", (key,))
            row = await cursor.fetchone()
        return StoredAnswer.from_json(row[0]) if row is not None else None

    async def put(self, key: str, answer: StoredAnswer) -> None:
        async with self._connection() as conn:
            await conn.execute(
                "INSERT INTO llm_responses"
                " (key, model, created, prompt_tokens, completion_tokens, entry)"
                " VALUES (%s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (key) DO UPDATE SET model = EXCLUDED.model,"
                " created = EXCLUDED.created, prompt_tokens = EXCLUDED.prompt_tokens,"
                " completion_tokens = EXCLUDED.completion_tokens, entry = EXCLUDED.entry",
                (
                    key,
                    answer.model,
                    answer.created,
                    answer.prompt_tokens,
                    answer.completion_tokens,
                    answer.to_json(),
                ),
            )

    async def count(self) -> int:
        async with self._connection() as conn:
            cursor = await conn.execute("SELECT COUNT(*) FROM llm_responses")
            row = await cursor.fetchone()
        return int(row[0]) if row is not None else 0

    async def execute(self, statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Run one SQL statement (``%s`` placeholders) in the store's database; its rows.
        For tables kept beside the answers (the batch ledger)."""
        async with self._connection() as conn:
            cursor = await conn.execute(statement, params)
            if cursor.description is None:
                return []
            return list(await cursor.fetchall())

    async def aclose(self) -> None:
        for conn in self._all:
            with contextlib.suppress(Exception):
                await conn.close()
        self._all.clear()
        self._opened = 0
        self._idle = None


def open_store(directory: str, url: str | None) -> ResponseStore | None:
    """The configured store (nothing is opened until it is first used): PostgreSQL when
    ``url`` is set, else SQLite in ``directory``, else none."""
    if url:
        return PostgresStore(url)
    if directory:
        return SqliteStore(directory)
    return None


class GuardedStore:
    """A store whose failures are misses and skipped writes (logged, without the URL):
    the provider is still there when the store is not."""

    def __init__(self, store: ResponseStore) -> None:
        self.store = store
        self._warned_at = 0.0

    def _failed(self, action: str, exc: BaseException) -> None:
        now = time.monotonic()
        if now - self._warned_at >= 60.0:  # one line a minute, however many calls fail
            self._warned_at = now
            log.warning(
                "LLM response store (%s): %s failed (%s); calls go to the provider",
                self.store.name,
                action,
                type(exc).__name__,
            )

    async def get(self, key: str) -> StoredAnswer | None:
        try:
            return await self.store.get(key)
        except Exception as exc:  # a store failure is a miss
            self._failed("a lookup", exc)
            return None

    async def put(self, key: str, answer: StoredAnswer) -> None:
        try:
            await self.store.put(key, answer)
        except Exception as exc:  # a store failure loses the entry, not the answer
            self._failed("a write", exc)

    async def aclose(self) -> None:
        with contextlib.suppress(Exception):
            await self.store.aclose()
