"""What a request's transaction costs the service's process, by the way it is run.

    python bench/sessions.py [--transactions 2000] [--rounds 5]

One transaction of one statement (a `kit.driver.Prepared` read, as a sale's statements
are run), begun, run, committed and its session closed, one at a time on uvloop, three ways:
- the app's sessions (`service.db.create_sessionmaker`: a DriverSession, which checks its
  connection out of the pool, and begins and commits it, itself), ended as a request's are
  (`service.db._commit_and_close`);
- a plain SQLAlchemy AsyncSession on the same engine, ended the same way: the statement runs
  on the connection of SQLAlchemy's session transaction, committed through it;
- asyncpg's own pool, without SQLAlchemy: acquire, BEGIN, the statement, COMMIT, release.
The ways take turns, `--rounds` times `--transactions` each. Prints each way's CPU per
transaction in this process (the database's is the same for all three), the medians, and
what the app's sessions save per request against the plain one. Uses an embedded
PostgreSQL, or a fresh database on the server named by DATABASE_URL (dropped afterwards).
A figure, not a test.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg
import uvloop
from sqlalchemy import Select, literal_column, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _harness import bench_database

from service.config import Settings
from service.db import _commit_and_close, create_engine, create_sessionmaker, to_async_url
from service.kit.driver import Prepared

STATEMENT: Select[tuple[int]] = select(literal_column("1").label("one"))
SQL = "SELECT 1 AS one"

Way = Callable[[], Awaitable[None]]


async def measure(url: str, transactions: int, rounds: int) -> dict[str, list[float]]:
    """Each way's CPU per transaction (µs), one figure a round."""
    async_url = to_async_url(url)
    engine = create_engine(async_url, Settings(database_url=async_url))
    app_sessions = create_sessionmaker(engine)
    plain_sessions = async_sessionmaker(engine, expire_on_commit=False, autoflush=False)
    prepared = Prepared(STATEMENT)
    pool = await asyncpg.create_pool(url, min_size=1, max_size=1)
    assert pool is not None

    async def in_session(make: async_sessionmaker[AsyncSession]) -> None:
        session = make()
        try:
            rows = await prepared.fetch(session, {})
        except BaseException:
            async with session:
                await session.rollback()
            raise
        await session.run_sync(_commit_and_close)
        assert rows[0]["one"] == 1

    async def app_session() -> None:
        await in_session(app_sessions)

    async def plain_session() -> None:
        await in_session(plain_sessions)

    async def asyncpg_pool() -> None:
        async with pool.acquire() as conn, conn.transaction():
            assert await conn.fetchval(SQL) == 1

    ways: dict[str, Way] = {
        "the app's sessions (DriverSession)": app_session,
        "a plain AsyncSession": plain_session,
        "asyncpg's pool, no SQLAlchemy": asyncpg_pool,
    }
    figures: dict[str, list[float]] = {name: [] for name in ways}
    try:
        for way in ways.values():  # connections made, statements prepared
            for _ in range(200):
                await way()
        for n in range(1, rounds + 1):
            line = []
            for name, way in ways.items():
                started = time.process_time()
                for _ in range(transactions):
                    await way()
                figures[name].append((time.process_time() - started) / transactions * 1e6)
                line.append(f"{name} {figures[name][-1]:.0f} us")
            print(f"round {n}: " + "; ".join(line), flush=True)
    finally:
        await pool.close()
        await engine.dispose()
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transactions", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with bench_database("sessions") as url:
        figures = uvloop.run(measure(url, args.transactions, args.rounds))
    medians = {name: statistics.median(values) for name, values in figures.items()}
    for name, median in medians.items():
        print(f"{name}: {median:.0f} us of CPU per transaction (median of {args.rounds} rounds)")
    app, plain = (medians[name] for name in list(medians)[:2])
    print(
        f"the app's sessions save {plain - app:.0f} us a transaction against a plain "
        f"AsyncSession ({(plain - app) / plain:.0%} of its CPU)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
