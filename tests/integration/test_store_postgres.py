"""The shared response store on a real PostgreSQL server (Debian's ``postgresql`` package),
started here in a temporary directory (as the ``postgres`` user when the tests run as root,
since PostgreSQL refuses to run as root); skipped, saying why, where it cannot start."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import app_settings, free_port, in_process_app
from test_batch import _grpc_round as batch_round
from test_batch import _request as batch_request
from test_batch import _until_done as batch_until_done
from test_store import API_KEY, _request, _run

from autointerp_grpc.backends.store import PostgresStore, StoredAnswer, call_key

pytest.importorskip("psycopg", reason="the postgres extra (psycopg) is not installed")


def _as_postgres() -> list[str]:
    if os.geteuid() != 0:
        return []
    if shutil.which("runuser") is None:
        pytest.skip("running as root without runuser: cannot start PostgreSQL as another user")
    try:
        subprocess.run(["id", "postgres"], check=True, capture_output=True)
    except subprocess.CalledProcessError:
        pytest.skip("running as root and there is no postgres user to start PostgreSQL as")
    return ["runuser", "-u", "postgres", "--"]


def _tool(name: str) -> str | None:
    """A PostgreSQL program: on PATH, or where Debian's package puts it (off PATH)."""
    found = shutil.which(name)
    if found is not None:
        return found
    candidates = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
    return str(candidates[-1]) if candidates else None


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    initdb, pg_ctl = _tool("initdb"), _tool("pg_ctl")
    if initdb is None or pg_ctl is None:
        pytest.skip("PostgreSQL's initdb/pg_ctl are not installed (apt-get install postgresql)")
    prefix = _as_postgres()
    root = Path(tempfile.mkdtemp(prefix="autointerp-pg-"))
    data = root / "data"
    if prefix:
        shutil.chown(root, "postgres")
    port = free_port()
    try:
        subprocess.run(
            [*prefix, initdb, "-D", str(data), "-A", "trust", "-U", "autointerp"],
            check=True,
            capture_output=True,
            timeout=120,
        )
        subprocess.run(
            [
                *prefix,
                pg_ctl,
                "-D",
                str(data),
                "-l",
                str(root / "log"),
                "-w",
                "-o",
                f"-p {port} -c listen_addresses=127.0.0.1 -k {root}",
                "start",
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
        shutil.rmtree(root, ignore_errors=True)
        pytest.skip(f"PostgreSQL did not start: {exc}")
    try:
        yield f"postgresql://autointerp@127.0.0.1:{port}/postgres"
    finally:
        with contextlib.suppress(Exception):
            subprocess.run(
                [*prefix, pg_ctl, "-D", str(data), "-m", "immediate", "stop"],
                check=False,
                capture_output=True,
                timeout=60,
            )
        shutil.rmtree(root, ignore_errors=True)


async def test_entries_round_trip_and_replace(postgres_url: str) -> None:
    store = PostgresStore(postgres_url)
    key = call_key("p", "m", [{"role": "user", "content": "hi"}], {"temperature": 0.0})
    try:
        assert await store.get(key) is None
        answer = StoredAnswer("one", None, "m", 5, 2, 0, 1e-5, 1.0)
        await store.put(key, answer)
        assert await store.get(key) == answer
        newer = StoredAnswer("two", [{"token": "two", "logprob": -0.1}], "m", 5, 2, 1, None, 2.0)
        await store.put(key, newer)
        assert await store.get(key) == newer
        assert await store.count() >= 1
    finally:
        await store.aclose()


async def test_two_replicas_share_one_store(postgres_url: str, fake_llm, clean_fake) -> None:
    settings = app_settings(fake_llm.base_url, store={"url": postgres_url})
    async with in_process_app(settings) as first:
        _, usage = await _run(first, _request())
    sent = clean_fake.stats()["requests"]
    assert sent == usage.llm_calls > 0
    clean_fake.reset_stats()
    # Another replica (a new process's worth of state) with the same store sends nothing.
    async with in_process_app(settings) as second:
        _, again = await _run(second, _request())
    assert clean_fake.stats()["requests"] == 0
    assert again.cached_responses == sent
    store = PostgresStore(postgres_url)
    try:
        async with store._connection() as conn:
            cursor = await conn.execute("SELECT entry FROM llm_responses")
            entries = [row[0] for row in await cursor.fetchall()]
    finally:
        await store.aclose()
    assert entries and all(API_KEY not in e for e in entries)


async def test_batch_rounds_on_the_shared_store(postgres_url: str, fake_llm, clean_fake) -> None:
    """The Batch API's ledger lives in PostgreSQL too: a batch one replica submitted is
    collected by another, and nothing is sent twice or live."""
    # A database of its own: the other tests' answers would answer these calls.
    import psycopg

    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS batch_ledger")
        conn.execute("CREATE DATABASE batch_ledger")
    url = postgres_url.rsplit("/", 1)[0] + "/batch_ledger"
    settings = app_settings(fake_llm.base_url, store={"url": url})
    clean_fake.batches.configure(delay_s=0.5)
    before = clean_fake.batches.requests
    try:
        async with in_process_app(settings) as first:
            _, progress, report = await batch_round(first, batch_request(batch=True))
            assert progress.pending == 2 and report is not None
            assert report.submitted_requests == 2 and report.open_batches == 1
    finally:
        clean_fake.batches.configure()
    async with in_process_app(settings) as second:
        results, _, _ = await batch_until_done(second, batch_request(batch=True))
    assert all(r.explanation and not r.pending and r.scores for r in results)
    assert clean_fake.stats()["requests"] == 0
    # Each call went out once, in batches: 2 explanations, then their scorers' calls.
    sent = clean_fake.batches.requests - before
    assert sent == sum(r.usage.cached_responses for r in results)
