"""Monthly partitions of `clicks`, created ahead of time by the service itself."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, date, datetime

import asyncpg

from service.kit.time import utc_now

log = logging.getLogger(__name__)

MONTHS_AHEAD = 2
CHECK_EVERY_SECONDS = 6 * 3600
# Held while partitions change, so that instances starting together do not collide.
PARTITION_LOCK = 7_340_002


def partition_name(month: date) -> str:
    """The table name of a month's partition: clicks_YYYY_MM."""
    return f"clicks_{month.year:04d}_{month.month:02d}"


def _next_month(month: date) -> date:
    return date(month.year + month.month // 12, month.month % 12 + 1, 1)


def months_to_cover(now: datetime, ahead: int = MONTHS_AHEAD) -> list[date]:
    """This UTC month and the `ahead` following ones."""
    month = date(now.year, now.month, 1)
    months = [month]
    for _ in range(ahead):
        month = _next_month(month)
        months.append(month)
    return months


def _bounds(month: date) -> tuple[datetime, datetime]:
    start = datetime(month.year, month.month, 1, tzinfo=UTC)
    nxt = _next_month(month)
    return start, datetime(nxt.year, nxt.month, 1, tzinfo=UTC)


def spanned(first: datetime, last: datetime) -> tuple[datetime, datetime]:
    """From the start of `first`'s month to the end of `last`'s: the bounds of the monthly
    partitions that hold every click from `first` to `last`."""
    first, last = first.astimezone(UTC), last.astimezone(UTC)
    start, _ = _bounds(date(first.year, first.month, 1))
    _, end = _bounds(date(last.year, last.month, 1))
    return start, end


async def ensure_partitions(
    conn: asyncpg.Connection, now: datetime | None = None, ahead: int = MONTHS_AHEAD
) -> list[str]:
    """Create the missing monthly partitions up to `ahead` months on; return those created."""
    created: list[str] = []
    for month in months_to_cover(now or utc_now(), ahead):
        name = partition_name(month)
        start, end = _bounds(month)
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", PARTITION_LOCK)
            exists = await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", name)
            if exists:
                continue
            # Clicks of a month that had no partition yet sit in clicks_default; attaching
            # the month's table would fail on them, so they move with it.
            stray = await conn.fetchval(
                "SELECT count(*) FROM clicks_default WHERE clicked_at >= $1 AND clicked_at < $2",
                start,
                end,
            )
            bounds = f"FROM ('{start.isoformat()}') TO ('{end.isoformat()}')"
            if not stray:
                await conn.execute(f"CREATE TABLE {name} PARTITION OF clicks FOR VALUES {bounds}")
            else:
                await conn.execute(f"CREATE TABLE {name} (LIKE clicks INCLUDING DEFAULTS)")
                await conn.execute(
                    f"WITH moved AS (DELETE FROM clicks_default WHERE clicked_at >= $1 "
                    f"AND clicked_at < $2 RETURNING *) INSERT INTO {name} SELECT * FROM moved",
                    start,
                    end,
                )
                await conn.execute(
                    f"ALTER TABLE clicks ATTACH PARTITION {name} FOR VALUES {bounds}"
                )
                log.info("moved %d clicks from clicks_default into %s", stray, name)
            created.append(name)
    if created:
        log.info("created click partitions %s", ", ".join(created))
    return created


async def maintain_partitions(pool: asyncpg.Pool, every: float = CHECK_EVERY_SECONDS) -> None:
    """Keep partitions ahead forever (a background task)."""
    while True:
        await asyncio.sleep(every)
        try:
            async with pool.acquire() as conn:
                await ensure_partitions(conn)
        except Exception:
            log.exception("click partition maintenance failed; will retry")
