"""The click writer: idempotent batches, the ambiguous commit, refused clicks, the lag switch,
and what /readyz and a 503 say about the database."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest
import sqlalchemy.exc
from fastapi import FastAPI

from service.config import Settings
from service.errors import install_database_error_handlers, install_error_handlers
from service.redirect import writer as writer_module
from service.redirect.batches import BATCH_SQL, NEW_BATCH_SQL, write_batch
from service.redirect.clickloader import ClickLoader
from service.redirect.runtime import nothing_to_reset
from service.redirect.writer import ClickWriter
from tests.hardening.served import UA, make_link, plain
from tests.helpers import assert_problem


@pytest.fixture
async def pool(database_url) -> AsyncIterator[asyncpg.Pool]:
    p = await asyncpg.create_pool(plain(database_url), min_size=1, max_size=3)
    yield p
    await p.close()


@pytest.fixture
async def link(client, admin):
    return await make_link(client, admin)


def _record(link: dict[str, Any], visitor: bytes, *, bot: bool = False) -> tuple[Any, ...]:
    return (
        uuid.uuid4(),
        datetime(2026, 4, 2, 10, 30, tzinfo=UTC),
        uuid.UUID(link["id"]),
        uuid.UUID(link["partner_id"]),
        uuid.UUID(link["program_id"]),
        "c1" + uuid.uuid4().hex,
        b"ip",
        visitor,
        "ua",
        None,
        None,
        "s1",
        None,
        None,
        None,
        None,
        bot,
        not bot,
        ["gclid"] if not bot else None,
    )


async def _stored(pool: asyncpg.Pool, link: dict[str, Any]) -> tuple[int, int, int, int, int]:
    """Clicks rows, and rollup clicks, uniques, bots, and sub1 clicks, for the link."""
    link_id = uuid.UUID(link["id"])
    rows = await pool.fetchval("SELECT count(*) FROM clicks WHERE link_id = $1", link_id)
    rollup = await pool.fetchrow(
        "SELECT coalesce(sum(clicks), 0), coalesce(sum(unique_clicks), 0),"
        " coalesce(sum(bots), 0) FROM click_rollups_hourly WHERE link_id = $1",
        link_id,
    )
    sub1 = await pool.fetchval(
        "SELECT coalesce(sum(clicks), 0) FROM click_rollups_sub1_hourly WHERE link_id = $1",
        link_id,
    )
    return rows, rollup[0], rollup[1], rollup[2], sub1


async def test_a_batch_written_twice_is_stored_and_counted_once(pool, link):
    batch = [_record(link, b"A"), _record(link, b"A"), _record(link, b"B", bot=True)]
    async with pool.acquire() as conn:
        assert await write_batch(conn, batch) == 3
        assert await write_batch(conn, batch) == 0
        # Mixed with new clicks, only the new ones count.
        assert await write_batch(conn, [*batch, _record(link, b"C")]) == 1
    assert await _stored(pool, link) == (4, 3, 2, 1, 3)


class _AmbiguousPool:
    """Connections whose COMMIT happens, then the client is told the connection died."""

    def __init__(self, pool: asyncpg.Pool, failures: int) -> None:
        self._pool = pool
        self.failures = failures
        self.commits = 0

    @asynccontextmanager
    async def acquire(self) -> AsyncIterator[Any]:
        async with self._pool.acquire() as conn:
            yield _AmbiguousConnection(conn, self)


class _AmbiguousConnection:
    def __init__(self, conn: asyncpg.Connection, pool: _AmbiguousPool) -> None:
        self._conn = conn
        self._pool = pool

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        async with self._conn.transaction():
            yield
        self._committed()

    async def fetchval(self, query: str, *args: Any) -> Any:
        value = await self._conn.fetchval(query, *args)
        if not self._conn.is_in_transaction():
            # A statement of its own (a durable batch) has committed.
            self._committed()
        return value

    def _committed(self) -> None:
        self._pool.commits += 1
        # Every other commit, so that each batch's immediate retry is the one that answers.
        if self._pool.failures > 0 and self._pool.commits % 2:
            self._pool.failures -= 1
            raise asyncpg.ConnectionDoesNotExistError("connection was closed in the middle")


@pytest.mark.parametrize("durable", [True, False])
async def test_the_writer_survives_commits_it_never_saw_succeed(pool, link, durable):
    ambiguous = _AmbiguousPool(pool, failures=3)
    # One batch at a time, so that "every other commit" falls on each batch's retry.
    w = ClickWriter(ambiguous, durable=durable, flush_interval=0.01, batch_max=5, in_flight=1)  # type: ignore[arg-type]
    w.start()
    futures = []
    for i in range(20):
        futures.append(w.submit(_record(link, f"v{i % 7}".encode())))
        await asyncio.sleep(0.005)
    waited = [f for f in futures if f is not None]
    outcomes = await asyncio.wait_for(asyncio.gather(*waited, return_exceptions=True), 10)
    await asyncio.wait_for(w.close(), 10)
    assert ambiguous.failures == 0
    # Every click once, with its rollups once: 20 clicks, 7 visitors, whatever was retried.
    assert await _stored(pool, link) == (20, 20, 7, 0, 20)
    # A click whose commit did happen is answered as committed, not as a failure.
    assert [o for o in outcomes if o is not None] == []
    assert w.committed == 20 and w.lost == 0


class _Logged:
    """A pool of one connection that notes every statement sent, and what a batch sent."""

    def __init__(self, pool: asyncpg.Pool, sent: list[str]) -> None:
        self.pool = pool
        self.sent = sent

    async def batch_statements(self) -> list[str]:
        await asyncio.sleep(0.01)  # query loggers are called soon after, not at once
        # In order, asyncpg's type lookups aside.
        words = {"BEGIN;": "BEGIN", "COMMIT;": "COMMIT", BATCH_SQL: "batch", NEW_BATCH_SQL: "new"}
        return [words[q] for q in self.sent if q in words]


@pytest.fixture
async def logged(database_url) -> AsyncIterator[_Logged]:
    sent: list[str] = []

    async def init(conn: asyncpg.Connection) -> None:
        conn.add_query_logger(lambda record: sent.append(record.query))

    one = await asyncpg.create_pool(
        plain(database_url), min_size=1, max_size=1, init=init, reset=nothing_to_reset
    )
    yield _Logged(one, sent)
    await one.close()


@pytest.mark.parametrize("durable", [True, False])
async def test_a_durable_batch_commits_in_one_round_trip_an_async_one_after_it_answers(
    logged, link, durable
):
    w = ClickWriter(logged.pool, durable=durable, flush_interval=0.01, batch_max=10, in_flight=1)
    w.start()
    for i in range(5):
        w.submit(_record(link, f"v{i}".encode()))
    await asyncio.wait_for(w.close(), 10)
    assert await _stored(logged.pool, link) == (5, 5, 5, 0, 5)
    # A first try: no click of it can be stored yet, so no ON CONFLICT.
    if durable:
        # Every click waits for this commit: the statement is its own transaction.
        assert await logged.batch_statements() == ["new"]
    else:
        # Answered clicks ride on it: COMMIT only once the statement has answered, so that a
        # process killed meanwhile leaves none of them committed (tests/hardening/test_kill9.py).
        assert await logged.batch_statements() == ["BEGIN", "new", "COMMIT"]


async def test_a_stream_loader_batch_commits_in_one_round_trip(logged, link):
    class _NoStream:
        def jetstream(self) -> None:
            return None

    loader = ClickLoader(_NoStream(), logged.pool, Settings(click_log="nats://127.0.0.1:1"))  # type: ignore[arg-type]
    assert await loader._write([_record(link, b"A"), _record(link, b"B")]) == 2
    # Its messages are acked only after the commit: nothing rides on the statement's own.
    # A message may be delivered again: the statement skips clicks stored already.
    assert await logged.batch_statements() == ["batch"]
    assert await _stored(logged.pool, link) == (2, 2, 2, 0, 2)


async def test_a_click_the_database_refuses_is_dropped_and_counted_at_once(pool, link):
    bad = list(_record(link, b"X"))
    bad[8] = "nul \x00 in text"  # PostgreSQL stores no NUL in text
    w = ClickWriter(pool, durable=False, flush_interval=0.01, batch_max=10)
    before = writer_module.CLICKS_LOST._value.get()
    w.submit(_record(link, b"A"))
    w.submit(tuple(bad))
    w.submit(_record(link, b"B"))
    w.start()
    for _ in range(200):
        if w.committed == 2:
            break
        await asyncio.sleep(0.02)
    # Counted when it was dropped, while the writer runs, not at shutdown.
    assert w.lost == 1 and writer_module.CLICKS_LOST._value.get() == before + 1
    w.submit(_record(link, b"C"))
    await asyncio.wait_for(w.close(), 10)
    assert await _stored(pool, link) == (3, 3, 3, 0, 3)


class _StuckPool:
    """A database that takes connections and never commits until released."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self.release = asyncio.Event()

    @asynccontextmanager
    async def acquire(self) -> AsyncIterator[Any]:
        await self.release.wait()
        async with self._pool.acquire() as conn:
            yield conn


async def test_async_mode_waits_for_the_commit_once_the_writer_lags(pool, link):
    stuck = _StuckPool(pool)
    w = ClickWriter(stuck, durable=False, flush_interval=0.01, batch_max=100, max_lag=0.1)  # type: ignore[arg-type]
    w.start()
    assert w.submit(_record(link, b"A")) is None
    assert w.health().can_commit
    await asyncio.sleep(0.15)
    # The oldest click is older than the bound: no more answers before a commit.
    waiting = w.submit(_record(link, b"B"))
    assert waiting is not None
    assert not w.health().can_commit and w.health().unconfirmed == 1
    assert not waiting.done()
    stuck.release.set()
    await asyncio.wait_for(waiting, 10)
    for _ in range(100):
        if w.committed == 2:
            break
        await asyncio.sleep(0.01)
    assert w.health().can_commit and w.unconfirmed == 0
    # Caught up: async again.
    assert w.submit(_record(link, b"C")) is None
    await asyncio.wait_for(w.close(), 10)
    assert (await _stored(pool, link))[0] == 3


async def test_async_clicks_wait_for_the_interval_without_waking_the_writer(
    pool, link, monkeypatch
):
    timed_waits = 0
    wait_for = asyncio.wait_for

    async def counted(awaitable: Any, seconds: float | None) -> Any:
        nonlocal timed_waits
        timed_waits += 1
        return await wait_for(awaitable, seconds)

    monkeypatch.setattr(writer_module.asyncio, "wait_for", counted)
    w = ClickWriter(pool, durable=False, flush_interval=30, batch_max=40)
    w.start()
    # The writer has been idle for longer than the interval: the first click goes at once.
    w.submit(_record(link, b"first"))
    for _ in range(200):
        if w.committed == 1:
            break
        await asyncio.sleep(0.01)
    assert w.committed == 1 and timed_waits == 0
    await asyncio.sleep(0.05)  # its connection back in the pool, the writer idle again
    for n in range(30):
        assert w.submit(_record(link, b"v%d" % n)) is None
        await asyncio.sleep(0)  # the writer runs between clicks, as it would under load
    # The next click started the interval; the others joined the batch it is timing.
    assert timed_waits == 1 and w.committed == 1
    # A full batch goes out at once, without waiting for the interval.
    for n in range(30, 40):
        w.submit(_record(link, b"v%d" % n))
    for _ in range(200):
        if w.committed == 41:
            break
        await asyncio.sleep(0.01)
    assert w.committed == 41 and timed_waits == 1
    await asyncio.wait_for(w.close(), 10)
    assert await _stored(pool, link) == (41, 41, 41, 0, 41)


class _SlowReturnPool:
    """Connections whose return to the pool waits (or fails) after the work is done."""

    def __init__(self, pool: asyncpg.Pool, *, fail: bool = False) -> None:
        self._pool = pool
        self.fail = fail
        self.returned = asyncio.Event()

    @asynccontextmanager
    async def acquire(self) -> AsyncIterator[Any]:
        async with self._pool.acquire() as conn:
            yield conn
            if self.fail:
                raise ConnectionError("the connection broke on its way back")
            await self.returned.wait()


async def test_a_durable_click_is_answered_before_its_connection_goes_back(pool, link):
    slow = _SlowReturnPool(pool)
    w = ClickWriter(slow, durable=True, flush_interval=0.01, batch_max=10)  # type: ignore[arg-type]
    w.start()
    committed = w.submit(_record(link, b"A"))
    assert committed is not None
    try:
        await asyncio.wait_for(committed, 5)
        assert w.committed == 1 and (await _stored(pool, link))[0] == 1
        # Committed: no longer behind, though its connection has not gone back yet.
        assert w.lag() == 0 and w.health().can_commit
    finally:
        slow.returned.set()
        await asyncio.wait_for(w.close(), 10)


async def test_clicks_queued_during_a_commit_go_next_on_the_same_turn(pool, link, monkeypatch):
    gated = _StuckPool(pool)
    w = ClickWriter(gated, durable=True, flush_interval=0.01, batch_max=10, in_flight=1)  # type: ignore[arg-type]
    w.start()
    first = w.submit(_record(link, b"A"))
    await asyncio.sleep(0.01)  # the first batch is cut, waiting for its connection
    flushes = 0
    create_task = asyncio.create_task

    def counted(coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
        nonlocal flushes
        flushes += 1
        return create_task(coro, **kwargs)

    monkeypatch.setattr(writer_module.asyncio, "create_task", counted)
    later = [w.submit(_record(link, b"B")), w.submit(_record(link, b"C"))]
    gated.release.set()
    await asyncio.wait_for(asyncio.gather(first, *later), 5)  # type: ignore[arg-type]
    # The second batch went out from the task that wrote the first, with no new one.
    assert flushes == 0 and w.committed == 3
    await asyncio.wait_for(w.close(), 10)
    assert await _stored(pool, link) == (3, 3, 3, 0, 3)


@pytest.mark.parametrize("durable", [True, False])
async def test_a_connection_that_breaks_after_the_commit_fails_no_click(pool, link, durable):
    broken = _SlowReturnPool(pool, fail=True)
    w = ClickWriter(broken, durable=durable, flush_interval=0.01, batch_max=10)  # type: ignore[arg-type]
    w.start()
    futures = [w.submit(_record(link, b"A")), w.submit(_record(link, b"B"))]
    for future in futures:
        if future is not None:
            await asyncio.wait_for(future, 5)
    await asyncio.wait_for(w.close(), 10)
    # Committed once, counted once, nothing lost or retried.
    assert (w.committed, w.lost, w.unconfirmed) == (2, 0, 0)
    assert w.health().consecutive_failures == 0
    assert await _stored(pool, link) == (2, 2, 2, 0, 2)


async def test_readyz_is_503_while_the_click_writer_cannot_commit(app, client, link, monkeypatch):
    """Only the writer's own pool is down here: the API's database check alone says 200."""

    class Down:
        def acquire(self):
            raise ConnectionError("database went away")

    monkeypatch.setattr(app.state.redirect.writer, "_pool", Down())
    r = await client.get(f"/r/{link['code']}", headers=UA)
    assert_problem(r, 503)
    r = await client.get("/readyz")
    assert r.status_code == 503
    assert r.json()["clicks"]["consecutive_failures"] >= 1
    monkeypatch.undo()
    # The idle writer's database answers again: ready without waiting for traffic.
    r = await client.get("/readyz")
    assert r.status_code == 200, r.text
    assert r.json()["clicks"]["status"] == "ok"
    assert (await client.get(f"/r/{link['code']}", headers=UA)).status_code == 302


async def test_database_errors_are_503_with_retry_after_and_bugs_stay_500():
    import httpx

    app = FastAPI()
    install_error_handlers(app)
    install_database_error_handlers(app)
    raised: dict[str, Exception] = {
        "terminated": sqlalchemy.exc.DBAPIError(
            "SELECT 1", None, asyncpg.exceptions.AdminShutdownError("terminating connection")
        ),
        "gone": asyncpg.ConnectionDoesNotExistError("connection was closed"),
        "refused": ConnectionRefusedError(111, "refused"),
        "pool": sqlalchemy.exc.TimeoutError("QueuePool limit reached"),
        "timeout": asyncpg.exceptions.QueryCanceledError("canceling statement due to timeout"),
        "bug": sqlalchemy.exc.ProgrammingError("SELECT", None, Exception("syntax error")),
    }

    @app.get("/{kind}")
    async def fail(kind: str) -> None:
        raise raised[kind]

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        for kind in ("terminated", "gone", "refused", "pool", "timeout"):
            r = await c.get(f"/{kind}")
            assert_problem(r, 503)
            assert r.headers["retry-after"] == "1", kind
        assert (await c.get("/bug")).status_code == 500
