"""One batch of clicks written to PostgreSQL: the clicks, their user agents, visitor-days
and hourly rollups, in one statement; a batch may be written again safely, the click id
being the key. Both the click writer and the stream loaders write through `write_batch`."""

from __future__ import annotations

import contextlib
import hashlib
import uuid
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

import asyncpg

CLICK_COLUMNS = (
    "id",
    "clicked_at",
    "link_id",
    "partner_id",
    "program_id",
    "click_token",
    "ip_hash",
    "visitor_hash",
    "user_agent",
    "referer",
    "country",
    "sub1",
    "sub2",
    "sub3",
    "sub4",
    "sub5",
    "is_bot",
    "attributable",
    "paid_markers",
)
# A click record's time, user agent and paid markers, in CLICK_COLUMNS order.
_AT, _AGENT, _MARKERS = (
    CLICK_COLUMNS.index(c) for c in ("clicked_at", "user_agent", "paid_markers")
)

ClickRecord = tuple[Any, ...]

# What a click row stores: the record, with its user agent replaced by the id of its row in
# user_agents. A record keeps the text (the click stream's messages carry it), so the
# writer and the loaders store the same rows.
STORED_COLUMNS = tuple("user_agent_id" if c == "user_agent" else c for c in CLICK_COLUMNS)

# Clicks go in as one INSERT over one array parameter (no temporary table, so a transaction
# pooler is fine), one element per click, of the composite type click_batch_row (made by
# migration 0805): its fields are STORED_COLUMNS in order (a test compares them), so that
# asyncpg encodes a click's values in one pass. One array per column, as it went before,
# cost asyncpg its checks of every element, 0.4-2 us each: an eighth of the redirect's
# instructions in its process (bench/instructions.py --path clicks); the database decodes
# this array for no more CPU than those.
# Times go as integer microseconds since the epoch (a timestamptz costs asyncpg five times
# an int8); paid_markers, itself an array per click, as one comma-joined text, split back
# here (an array inside each element would be checked element by element again).
ROW_TYPE = "click_batch_row"
_TYPES = {
    "id": "uuid",
    "clicked_at": "int8",
    "link_id": "uuid",
    "partner_id": "uuid",
    "program_id": "uuid",
    "ip_hash": "bytea",
    "visitor_hash": "bytea",
    "user_agent_id": "uuid",
    "is_bot": "boolean",
    "attributable": "boolean",
}
# click_batch_row's fields with their types (text where _TYPES names none).
ROW_FIELDS = tuple((name, _TYPES.get(name, "text")) for name in STORED_COLUMNS)
_VALUES = {
    "clicked_at": "'epoch'::timestamptz + u.clicked_at * interval '1 microsecond'",
    "paid_markers": "string_to_array(u.paid_markers, ',')",
}

# One statement stores a batch: its new user agents, its clicks, and from those (RETURNING),
# their visitor-days and the hourly rollups. It comes in two forms:
# - BATCH_SQL, for a batch that may be stored already (a batch retried after a commit whose
#   outcome was never seen, a redelivered stream message): a click already stored is skipped
#   (ON CONFLICT DO NOTHING) and counted nowhere, so it may be written again safely.
# - NEW_BATCH_SQL, for a batch no earlier try can have committed (the click writer's first
#   try): a plain INSERT, which a click already stored fails, as COPY did. ON CONFLICT costs
#   the database a sixth more per click (its speculative insertion), measured.
# What they count:
# - A visitor's first sight of the (UTC) day on a link goes into click_visitors_daily; those
#   it did not know yet count as unique clicks in the hour of their first click in the batch.
#   Bots count only as bots.
# - '' stands for no sub1 in the sub1 rollup (a key column); sub1 is at most 255 characters
#   (see redirect.location), well inside a btree key.
# - Lock order, the same in every writer, so two never deadlock: the clicks (new keys only),
#   the visitor-days (read by `uniques`, so run when first read), the hourly rows (the main
#   statement), then the WITH parts nothing reads, which PostgreSQL runs once the main
#   statement has finished: the sub1 rows, then the user agents. Each table's rows in key
#   order (ORDER BY).
# - User agents go in before the commit of the clicks that refer to them, in the same
#   statement; sorted by id, so that two writers inserting the same new ones wait for each
#   other in one order.
_BATCH = f"""
WITH agents AS (
    INSERT INTO user_agents (id, user_agent)
    SELECT * FROM unnest($1::uuid[], $2::text[]) AS a(id, user_agent)
    ORDER BY a.id
    ON CONFLICT DO NOTHING
), stored AS (
    INSERT INTO clicks ({", ".join(STORED_COLUMNS)})
    SELECT {", ".join(_VALUES.get(name, f"u.{name}") for name in STORED_COLUMNS)}
    FROM unnest($3::{ROW_TYPE}[]) AS u
    {{skip_stored}}
    RETURNING link_id, partner_id, program_id, clicked_at, visitor_hash, sub1, is_bot
), new AS (
    SELECT link_id, partner_id, program_id, visitor_hash, coalesce(sub1, '') AS sub1, is_bot,
        date_trunc('hour', clicked_at, 'UTC') AS hour,
        date_trunc('day', clicked_at, 'UTC') AS day
    FROM stored
), seen AS (
    SELECT link_id, day, visitor_hash, min(hour) AS hour
    FROM new
    WHERE NOT is_bot AND visitor_hash IS NOT NULL
    GROUP BY link_id, day, visitor_hash
), first AS (
    INSERT INTO click_visitors_daily (link_id, day, visitor_hash)
    SELECT link_id, day, visitor_hash FROM seen
    ORDER BY link_id, day, visitor_hash
    ON CONFLICT DO NOTHING
    RETURNING link_id, day, visitor_hash
), uniques AS (
    SELECT seen.link_id, seen.hour, count(*) AS n
    FROM first JOIN seen USING (link_id, day, visitor_hash)
    GROUP BY seen.link_id, seen.hour
), by_sub1 AS (
    INSERT INTO click_rollups_sub1_hourly AS r
        (link_id, hour, sub1, partner_id, program_id, clicks, bots)
    SELECT link_id, hour, sub1, (array_agg(partner_id))[1], (array_agg(program_id))[1],
        count(*) FILTER (WHERE NOT is_bot), count(*) FILTER (WHERE is_bot)
    FROM new
    GROUP BY link_id, hour, sub1
    ORDER BY link_id, hour, sub1
    ON CONFLICT (link_id, hour, sub1) DO UPDATE SET
        clicks = r.clicks + excluded.clicks,
        bots = r.bots + excluded.bots
), hourly AS (
    SELECT link_id, hour, (array_agg(partner_id))[1] AS partner_id,
        (array_agg(program_id))[1] AS program_id,
        count(*) FILTER (WHERE NOT is_bot) AS clicks, count(*) FILTER (WHERE is_bot) AS bots
    FROM new
    GROUP BY link_id, hour
)
INSERT INTO click_rollups_hourly AS r
    (link_id, hour, partner_id, program_id, clicks, unique_clicks, bots)
SELECT c.link_id, c.hour, c.partner_id, c.program_id, c.clicks, coalesce(u.n, 0), c.bots
FROM hourly c LEFT JOIN uniques u USING (link_id, hour)
ORDER BY c.link_id, c.hour
ON CONFLICT (link_id, hour) DO UPDATE SET
    clicks = r.clicks + excluded.clicks,
    unique_clicks = r.unique_clicks + excluded.unique_clicks,
    bots = r.bots + excluded.bots
RETURNING (SELECT count(*) FROM stored)
"""
BATCH_SQL = _BATCH.format(skip_stored="ON CONFLICT DO NOTHING")
NEW_BATCH_SQL = _BATCH.format(skip_stored="")

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)


@lru_cache(maxsize=4096)
def user_agent_id(user_agent: str) -> uuid.UUID:
    """The key of a user agent's row in user_agents: the first 16 bytes of its SHA-256
    (the migration that made the table computes the same in SQL)."""
    return uuid.UUID(bytes=hashlib.sha256(user_agent.encode()).digest()[:16])


class KnownAgents:
    """Ids of the user agents this process has seen committed to its database, so that a
    batch inserts only the ones it has not; bounded, forgotten all at once when full.

    Rows of user_agents are never deleted, so an id once committed stays valid. One per
    pool: a set shared by pools to different databases would skip inserts one of them lacks.
    """

    def __init__(self, limit: int = 50_000) -> None:
        self._ids: set[uuid.UUID] = set()
        self._limit = limit

    def __contains__(self, agent_id: uuid.UUID) -> bool:
        return agent_id in self._ids

    def add(self, ids: list[uuid.UUID]) -> None:
        """Remember ids whose rows have committed."""
        if len(self._ids) + len(ids) > self._limit:
            self._ids.clear()
        self._ids.update(ids)


async def write_batch(
    conn: asyncpg.Connection,
    records: list[ClickRecord],
    *,
    maybe_stored: bool = True,
    known_agents: KnownAgents | None = None,
    own_transaction: bool = False,
) -> int:
    """Store the clicks not stored yet, their user agents, visitor-days and hourly counts,
    as one statement; the number of clicks that were new.

    `maybe_stored=False` is for a batch no earlier try can have committed (NEW_BATCH_SQL):
    a click in it already stored fails it. `known_agents` spares the insert of user agents already committed; it learns those of
    this batch. With `own_transaction` the statement commits on its own: one round trip,
    where BEGIN, it and COMMIT take three (on this machine's loopback, the two more cost a
    batch of 32 clicks about a tenth of its CPU in the service). It is for batches whose
    every click waits for that commit: the durable click writer's, whose 302s wait for it,
    and the stream loaders', whose messages are acked after it. Otherwise it runs in an
    explicit block: COMMIT is sent only once the statement has answered, so a process killed
    while its batch waits (on a lock, say) leaves none of it committed, which is what the
    unconfirmed-clicks gauge of async mode promises. A statement of its own may still commit
    after such a kill: clicks stored whose 302 never went out, never the other way round.
    """
    rows: list[tuple[Any, ...]] = []
    agents: dict[uuid.UUID, str] = {}
    for rec in records:
        agent = None
        if (text := rec[_AGENT]) is not None:
            agent = user_agent_id(text)
            if known_agents is None or agent not in known_agents:
                agents[agent] = text
        markers = rec[_MARKERS]
        # A click_batch_row: its user agent's id, its time and markers as the type has them.
        rows.append(
            (
                *rec[:_AT],
                (rec[_AT] - _EPOCH) // _US,
                *rec[_AT + 1 : _AGENT],
                agent,
                *rec[_AGENT + 1 : _MARKERS],
                ",".join(markers) if markers else None,
            )
        )
    # Sorted: two writers inserting the same new ones wait for each other in one order.
    agent_ids = sorted(agents)
    agent_texts = [agents[i] for i in agent_ids]
    async with contextlib.nullcontext() if own_transaction else conn.transaction():
        stored = await conn.fetchval(
            BATCH_SQL if maybe_stored else NEW_BATCH_SQL, agent_ids, agent_texts, rows
        )
    if known_agents is not None and agents:
        # Only now: ids of a transaction that rolled back must be inserted again.
        known_agents.add(agent_ids)
    return int(stored or 0)
