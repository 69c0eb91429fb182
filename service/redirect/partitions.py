"""Monthly partitions of `clicks`, created ahead of time by the service itself."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime

import asyncpg

from service.kit.time import utc_now
from service.tracking.partitions import MONTHS_AHEAD, bounds, months_to_cover, partition_name

log = logging.getLogger(__name__)

CHECK_EVERY_SECONDS = 6 * 3600
# Held while partitions change, so that instances starting together do not collide.
PARTITION_LOCK = 7_340_002


async def ensure_partitions(
    conn: asyncpg.Connection, now: datetime | None = None, ahead: int = MONTHS_AHEAD
) -> list[str]:
    """Create the missing monthly partitions up to `ahead` months on; return those created."""
    created: list[str] = []
    for month in months_to_cover(now or utc_now(), ahead):
        name = partition_name(month)
        start, end = bounds(month)
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
            for_values = f"FROM ('{start.isoformat()}') TO ('{end.isoformat()}')"
            if not stray:
                await conn.execute(
                    f"CREATE TABLE {name} PARTITION OF clicks FOR VALUES {for_values}"
                )
            else:
                await conn.execute(f"CREATE TABLE {name} (LIKE clicks INCLUDING DEFAULTS)")
                await conn.execute(
                    f"WITH moved AS (DELETE FROM clicks_default WHERE clicked_at >= $1 "
                    f"AND clicked_at < $2 RETURNING *) INSERT INTO {name} SELECT * FROM moved",
                    start,
                    end,
                )
                await conn.execute(
                    f"ALTER TABLE clicks ATTACH PARTITION {name} FOR VALUES {for_values}"
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
