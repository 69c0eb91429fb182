"""What a sale's fraud facts cost when its visitor flooded the partner's links.

    python bench/flood.py [--flood 20000] [--crowd 50000] [--runs 300]

A month's clicks: `--crowd` clicks of as many visitors, and `--flood` clicks of one visitor
on one partner's link in the hour, written as the redirect writes them (write_batch), then
analyzed. A sale by the flooding visitor's last click reads its fraud facts with the
statement the service sends (service.fraud.repository), `--runs` times each way, in turns:
- counted as the service counts (rules.counted: one past click_flood's default limit);
- counted in full (the same statement, its count allowed past the whole flood), as every
  sale counted before.
Prints the time per statement and the database backend's CPU per statement (the server on
this machine), both ways, and their ratio. Uses an embedded PostgreSQL, or a fresh database
on the server named by DATABASE_URL (dropped afterwards). A figure, not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
from sqlalchemy.ext.asyncio import AsyncSession

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _harness import app_in_process, bench_database, seconds_if_running

from service import migrate
from service.config import Settings
from service.db import create_engine, to_async_url
from service.fraud import repository as facts
from service.fraud.rules import Counted, counted
from service.fraud.schemas import Rules
from service.kit.driver import Prepared, connection
from service.redirect.batches import write_batch
from service.redirect.partitions import ensure_partitions

BATCH = 5000


def record(
    at: datetime, visitor: bytes, program: uuid.UUID, link: uuid.UUID, partner: uuid.UUID
) -> tuple:
    # A click as the redirect hands it to write_batch (CLICK_COLUMNS order).
    return (
        uuid.uuid4(), at, link, partner, program, "bench", b"ip", visitor, "Mozilla/5.0",
        None, None, None, None, None, None, None, False, True, None,
    )  # fmt: skip


async def links(url: str, count: int) -> tuple[uuid.UUID, list[tuple[uuid.UUID, uuid.UUID]]]:
    """A program and `count` partners with a link each, through the API: (program, [(link,
    partner)])."""
    settings = Settings(worker=False, migrate=False)
    async with app_in_process(settings, to_async_url(url)) as (asgi, admin):
        transport = httpx.ASGITransport(app=asgi)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://bench", headers=admin
        ) as c:
            program = (
                await c.post(
                    "/v1/programs",
                    json={
                        "name": "Shop",
                        "currency": "USD",
                        "default_url": "https://shop.example/",
                    },
                )
            ).json()["id"]
            out = []
            for i in range(count):
                partner = (
                    await c.post("/v1/partners", json={"name": f"P{i}", "email": f"p{i}@x.example"})
                ).json()["id"]
                link = (
                    await c.post("/v1/links", json={"program_id": program, "partner_id": partner})
                ).json()
                out.append((uuid.UUID(link["id"]), uuid.UUID(partner)))
    return uuid.UUID(program), out


async def seed(
    url: str, flood: int, crowd: int, now: datetime
) -> tuple[uuid.UUID, uuid.UUID, uuid.UUID, datetime]:
    """The month's clicks: (program, the flooded partner, the flooding visitor's last click
    id and time)."""
    program, pairs = await links(url, 51)
    (link, partner), others = pairs[0], pairs[1:]
    conn = await asyncpg.connect(url)
    try:
        await ensure_partitions(conn, now)
        crowd_clicks = [
            record(
                now - timedelta(seconds=i % 3000),
                secrets.token_bytes(16),
                program,
                *others[i % len(others)],
            )
            for i in range(crowd)
        ]
        flood_clicks = [
            record(
                now - timedelta(minutes=50) + timedelta(milliseconds=i),
                b"flooder",
                program,
                link,
                partner,
            )
            for i in range(flood)
        ]
        clicks = crowd_clicks + flood_clicks
        for start in range(0, len(clicks), BATCH):
            await write_batch(conn, clicks[start : start + BATCH], own_transaction=True)
        await conn.execute("ANALYZE clicks")
        last = flood_clicks[-1]
        return program, partner, last[0], last[1]
    finally:
        await conn.close()


async def measure(url: str, flood: int, crowd: int, runs: int) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    program, partner, click_id, clicked_at = await seed(url, flood, crowd, now)
    engine = create_engine(to_async_url(url), Settings(db_pool_size=1, db_max_overflow=0))
    service_cap = counted(Rules()).visitor_clicks
    ways = {"as the service counts": service_cap, "in full": flood + 1}
    queries = {
        name: facts.facts_query(
            frozenset({"click", "flood"}),
            click_id=click_id,
            clicked_at=clicked_at,
            conversion_id=uuid.uuid4(),
            partner_id=partner,
            program_id=program,
            occurred_at=now,
            counted=Counted(visitor_clicks=cap, partner_conversions=1),
        )
        for name, cap in ways.items()
    }
    # Both ways are one statement, as the service prepares it; only the cap differs.
    shapes = {query.shape for query in queries.values() if query is not None}
    assert len(shapes) == 1
    statement = Prepared(facts.facts_select(shapes.pop()))
    cpu: dict[str, float] = dict.fromkeys(ways, 0.0)
    walls: dict[str, list[float]] = {name: [] for name in ways}
    read = {}
    try:
        async with AsyncSession(engine) as session:
            pid = (await connection(session)).get_server_pid()
            for turn in range(runs):
                for name, query in queries.items():
                    assert query is not None
                    cpu0, t0 = seconds_if_running(pid), time.perf_counter()
                    row = await statement.fetchrow(session, query.params)
                    wall, cpu1 = time.perf_counter() - t0, seconds_if_running(pid)
                    if turn >= 5:  # after the custom plans: the generic plan, kept
                        walls[name].append(wall)
                        if cpu0 is not None and cpu1 is not None:
                            cpu[name] += cpu1 - cpu0
                    assert row is not None
                    read[name] = facts.facts_of(query, row).visitor_clicks_before
            await session.rollback()
    finally:
        await engine.dispose()
    timed = runs - 5
    print(
        f"clicks: {crowd} of as many visitors, {flood} of one visitor on one link in the hour;"
        f" {timed} reads each way, after 5 to warm"
    )
    for name in ways:
        median = statistics.median(walls[name]) * 1e6
        print(
            f"facts counted {name} (read: {read[name]}): {median:.0f} us per read (median),"
            f" {cpu[name] / timed * 1e6:.0f} us of database backend CPU per read"
        )
    full = statistics.median(walls["in full"])
    capped = statistics.median(walls["as the service counts"])
    print(f"ratio in full / as the service counts: {full / capped:.1f}x")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--flood", type=int, default=20_000)
    parser.add_argument("--crowd", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=300)
    args = parser.parse_args()
    with bench_database("flood") as url:
        migrate.upgrade(to_async_url(url))
        asyncio.run(measure(url, args.flood, args.crowd, args.runs))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
