"""One batch of clicks written to PostgreSQL: the clicks, their user agents, visitor-days
and hourly rollups, in one transaction; a batch may be written again safely, the click id
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
# Positions in a click record (a tuple in CLICK_COLUMNS order).
_AT, _LINK, _PARTNER, _PROGRAM, _VISITOR, _AGENT, _SUB1, _BOT = 1, 2, 3, 4, 7, 8, 11, 16

ClickRecord = tuple[Any, ...]

# What a click row stores: the record, with its user agent replaced by the id of its row in
# user_agents. A record keeps the text (the click stream's messages carry it), so the
# writer and the loaders store the same rows.
STORED_COLUMNS = tuple("user_agent_id" if c == "user_agent" else c for c in CLICK_COLUMNS)

# One statement for the rollups of new clicks: first sights of visitors go into the
# visitor-day table, those it did not know yet count as unique clicks in their hour's rollup
# row, and the counts per sub1 go into theirs. '' stands for no sub1 (a key column); sub1 is at most 255 characters (see
# redirect.location), well inside a btree key.
# Lock order: PostgreSQL runs a data-modifying WITH that nothing reads (`by_sub1`) once the
# main statement has finished, so sub1 rows are always taken after the hourly ones, each
# table's rows in key order (ORDER BY): two writers never deadlock.
ROLLUP_SQL = """
WITH seen AS (
    SELECT * FROM unnest($1::uuid[], $2::timestamptz[], $3::bytea[], $4::timestamptz[])
        AS s(link_id, day, visitor_hash, hour)
), first AS (
    INSERT INTO click_visitors_daily (link_id, day, visitor_hash)
    SELECT link_id, day, visitor_hash FROM seen
    ON CONFLICT DO NOTHING
    RETURNING link_id, day, visitor_hash
), uniques AS (
    SELECT seen.link_id, seen.hour, count(*) AS n
    FROM first JOIN seen USING (link_id, day, visitor_hash)
    GROUP BY seen.link_id, seen.hour
), by_sub1 AS (
    INSERT INTO click_rollups_sub1_hourly AS r
        (link_id, hour, sub1, partner_id, program_id, clicks, bots)
    SELECT * FROM unnest(
        $11::uuid[], $12::timestamptz[], $13::text[], $14::uuid[], $15::uuid[],
        $16::bigint[], $17::bigint[]
    ) AS c(link_id, hour, sub1, partner_id, program_id, clicks, bots)
    ORDER BY c.link_id, c.hour, c.sub1
    ON CONFLICT (link_id, hour, sub1) DO UPDATE SET
        clicks = r.clicks + excluded.clicks,
        bots = r.bots + excluded.bots
)
INSERT INTO click_rollups_hourly AS r
    (link_id, hour, partner_id, program_id, clicks, unique_clicks, bots)
SELECT c.link_id, c.hour, c.partner_id, c.program_id, c.clicks, coalesce(u.n, 0), c.bots
FROM unnest($5::uuid[], $6::timestamptz[], $7::uuid[], $8::uuid[], $9::bigint[], $10::bigint[])
    AS c(link_id, hour, partner_id, program_id, clicks, bots)
LEFT JOIN uniques u USING (link_id, hour)
ORDER BY c.link_id, c.hour
ON CONFLICT (link_id, hour) DO UPDATE SET
    clicks = r.clicks + excluded.clicks,
    unique_clicks = r.unique_clicks + excluded.unique_clicks,
    bots = r.bots + excluded.bots
"""

# New user agents, before the clicks that refer to them (sorted by id, so that two writers
# inserting the same new ones wait for each other in one order and never deadlock).
AGENTS_SQL = """
INSERT INTO user_agents (id, user_agent)
SELECT * FROM unnest($1::uuid[], $2::text[]) AS a(id, user_agent)
ORDER BY a.id
ON CONFLICT DO NOTHING
"""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_HOUR_US = 3_600_000_000
_DAY_US = 24 * _HOUR_US
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


@lru_cache(maxsize=64)
def _floor(units: int, size: int) -> datetime:
    return _EPOCH + timedelta(microseconds=units * size)


def _hour(at: datetime) -> datetime:
    # datetime.replace() is slow enough to show in a profile of the writer.
    return _floor((at - _EPOCH) // _US // _HOUR_US, _HOUR_US)


def _day(at: datetime) -> datetime:
    return _floor((at - _EPOCH) // _US // _DAY_US, _DAY_US)


# Clicks go in as one INSERT over arrays (no temporary table, so a transaction pooler is
# fine). Columns go in as arrays; paid_markers, itself an array per click, travels as one
# comma-joined text (unnest would flatten an array of arrays) and is split back here.
_TYPES = {
    "id": "uuid",
    "clicked_at": "timestamptz",
    "link_id": "uuid",
    "partner_id": "uuid",
    "program_id": "uuid",
    "ip_hash": "bytea",
    "visitor_hash": "bytea",
    "user_agent_id": "uuid",
    "is_bot": "boolean",
    "attributable": "boolean",
}
_MARKERS = STORED_COLUMNS.index("paid_markers")


def _insert_clicks(first: int) -> str:
    # The INSERT of a batch's clicks, its arrays from parameter $`first` on.
    arrays = ", ".join(
        f"${first + i}::{_TYPES.get(name, 'text')}[]" for i, name in enumerate(STORED_COLUMNS)
    )
    names = ", ".join(f"c{i}" for i in range(len(STORED_COLUMNS)))
    values = ", ".join(
        f"string_to_array(c{i}, ',')" if name == "paid_markers" else f"c{i}"
        for i, name in enumerate(STORED_COLUMNS)
    )
    return (
        f"INSERT INTO clicks ({', '.join(STORED_COLUMNS)})\n"
        f"SELECT {values} FROM unnest({arrays}) AS u({names})"
    )


_ROLLUP_ARRAYS = 17

# A batch that may be stored already: the click id is the key, so a batch retried after a
# commit whose outcome the client never saw inserts nothing twice, and RETURNING tells
# which rows are new, so that the rollups (another statement) count only those.
INSERT_SQL = f"""
{_insert_clicks(1)}
ON CONFLICT DO NOTHING
RETURNING id
"""

# A batch no earlier try can have committed (the click writer's first try): every click is
# new, so the rollups are known before it goes in, and the whole batch is one statement:
# BEGIN, it and COMMIT where BEGIN, COPY, two rollup statements and COMMIT took five round
# trips and four statements, for batches of a few dozen clicks. A click already stored
# fails the statement, as COPY did. New user agents and the clicks are WITH parts nothing
# reads: they run after the rollups (see ROLLUP_SQL), in the same order in every writer.
# Where every click of the batch is waiting for its commit (the durable click writer), the
# statement is its own transaction: one round trip, where BEGIN, it and COMMIT took three (on
# this machine's loopback, the two more cost a batch of 32 clicks about a tenth of their CPU
# in the service). Otherwise (`own_transaction=False`) it runs in an explicit block: COMMIT
# is sent only once the statement has answered, so a process killed while its batch waits
# (on a lock, say) leaves none of it committed, which is what the unconfirmed-clicks gauge
# of async mode promises. A statement of its own may still commit after such a kill: clicks
# stored whose 302 never went out, never the other way round.
FIRST_TRY_SQL = ROLLUP_SQL.replace(
    "WITH seen AS (",
    f"""WITH agents AS (
    INSERT INTO user_agents (id, user_agent)
    SELECT * FROM unnest(${_ROLLUP_ARRAYS + 1}::uuid[], ${_ROLLUP_ARRAYS + 2}::text[])
        AS a(id, user_agent)
    ORDER BY a.id
    ON CONFLICT DO NOTHING
), stored AS (
{_insert_clicks(_ROLLUP_ARRAYS + 3)}
), seen AS (""",
    1,
)


def _arrays(rows: list[ClickRecord]) -> list[list[Any]]:
    columns = [list(column) for column in zip(*rows, strict=True)]
    columns[_MARKERS] = [",".join(m) if m else None for m in columns[_MARKERS]]
    # A column no click of the batch has a value in (sub2-sub5, most often referer, country
    # and markers too) goes as an empty array: unnest pads the shorter arrays with NULLs, so
    # its rows are NULL all the same, and asyncpg encodes none of its elements. The click id
    # always has one, so the batch's rows are as many.
    return [[] if column.count(None) == len(column) else column for column in columns]


async def write_batch(
    conn: asyncpg.Connection,
    records: list[ClickRecord],
    *,
    maybe_stored: bool = True,
    known_agents: KnownAgents | None = None,
    own_transaction: bool = False,
) -> int:
    """Store the clicks not stored yet, their user agents, visitor-days and hourly counts,
    in one transaction; the number of clicks that were new.

    `maybe_stored=False` is for a batch no earlier try can have committed: it goes in as
    one statement with its rollups, and a click in it already stored fails it. Otherwise (a
    retry after a commit whose outcome was never seen, a redelivered stream message) the
    INSERT ... ON CONFLICT DO NOTHING stores each click once and the rollups count only the
    new ones. `known_agents` spares the insert of user agents already committed; it learns
    those of this batch. `own_transaction` lets the one statement of a first try commit on
    its own (see FIRST_TRY_SQL), for batches whose every click waits for that commit.
    """
    rows: list[ClickRecord] = []
    agents: dict[uuid.UUID, str] = {}
    for rec in records:
        text = rec[_AGENT]
        if text is None:
            rows.append(rec)
            continue
        agent = user_agent_id(text)
        if known_agents is None or agent not in known_agents:
            agents[agent] = text
        rows.append((*rec[:_AGENT], agent, *rec[_AGENT + 1 :]))
    # Sorted: two writers inserting the same new ones wait for each other in one order.
    agent_ids = sorted(agents)
    agent_texts = [agents[i] for i in agent_ids]
    # A retry's statements are three: they always take a block.
    one_statement = own_transaction and not maybe_stored
    async with contextlib.nullcontext() if one_statement else conn.transaction():
        if not maybe_stored:
            await conn.execute(
                FIRST_TRY_SQL, *_rollups(records), agent_ids, agent_texts, *_arrays(rows)
            )
        else:
            if agents:
                await conn.execute(AGENTS_SQL, agent_ids, agent_texts)
            inserted = await conn.fetch(INSERT_SQL, *_arrays(rows))
            if len(inserted) != len(records):
                new = {row[0] for row in inserted}
                records = [rec for rec in records if rec[0] in new]
            if records:
                await conn.execute(ROLLUP_SQL, *_rollups(records))
    if known_agents is not None and agents:
        # Only now: ids of a transaction that rolled back must be inserted again.
        known_agents.add(agent_ids)
    return len(records)


def _rollups(records: list[ClickRecord]) -> list[list[Any]]:
    # The arrays of ROLLUP_SQL for these clicks, all new.
    # First sight of each (link, UTC day, visitor) in this batch; bots never count.
    first_seen: dict[tuple[uuid.UUID, datetime, bytes], datetime] = {}
    counts: dict[tuple[uuid.UUID, datetime], list[Any]] = {}
    by_sub1: dict[tuple[uuid.UUID, datetime, str], list[int]] = {}
    for rec in records:
        hour = _hour(rec[_AT])
        slot = (rec[_LINK], hour)
        row = counts.get(slot)
        if row is None:
            row = counts[slot] = [rec[_PARTNER], rec[_PROGRAM], 0, 0]
        sub_slot = (rec[_LINK], hour, rec[_SUB1] or "")
        sub_row = by_sub1.get(sub_slot)
        if sub_row is None:
            sub_row = by_sub1[sub_slot] = [0, 0]
        if rec[_BOT]:
            row[3] += 1
            sub_row[1] += 1
            continue
        row[2] += 1
        sub_row[0] += 1
        visitor = rec[_VISITOR]
        if visitor is not None:
            key = (rec[_LINK], _day(rec[_AT]), visitor)
            if key not in first_seen:
                first_seen[key] = hour
    # Rows are locked in one order by every instance, so two writers never deadlock.
    visitors = sorted(first_seen)
    slots = sorted(counts)
    sub_slots = sorted(by_sub1)
    return [
        [k[0] for k in visitors],
        [k[1] for k in visitors],
        [k[2] for k in visitors],
        [first_seen[k] for k in visitors],
        [s[0] for s in slots],
        [s[1] for s in slots],
        [counts[s][0] for s in slots],
        [counts[s][1] for s in slots],
        [counts[s][2] for s in slots],
        [counts[s][3] for s in slots],
        [k[0] for k in sub_slots],
        [k[1] for k in sub_slots],
        [k[2] for k in sub_slots],
        [counts[k[:2]][0] for k in sub_slots],
        [counts[k[:2]][1] for k in sub_slots],
        [by_sub1[k][0] for k in sub_slots],
        [by_sub1[k][1] for k in sub_slots],
    ]
