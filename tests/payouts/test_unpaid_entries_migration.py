"""Migration 0802: unpaid_entries filled from the entries in no payout, kept by a trigger,
dropped on downgrade and filled again on the next upgrade."""

import asyncio
import uuid

import asyncpg

from service import migrate
from tests.payouts.migration_rows import AVAILABLE, add_entry, connect, program_partner_payout


async def _seed(url: str) -> dict[str, uuid.UUID]:
    ids = {k: uuid.uuid4() for k in ("program", "partner", "run", "payout")}
    conn = await connect(url)
    try:
        await program_partner_payout(conn, ids)
        await add_entry(conn, ids, "paid")
        await add_entry(conn, ids, "unpaid")
        await conn.execute(
            "INSERT INTO payout_entries (entry_id, payout_id) VALUES ($1, $2)",
            ids["paid"],
            ids["payout"],
        )
    finally:
        await conn.close()
    return ids


async def _unpaid(conn: asyncpg.Connection) -> dict[uuid.UUID, tuple]:
    rows = await conn.fetch(
        "SELECT entry_id, partner_id, program_id, currency, amount_minor, available_at,"
        " conversion_id FROM unpaid_entries"
    )
    return {r["entry_id"]: tuple(r)[1:] for r in rows}


async def test_unpaid_entries_are_filled_kept_and_dropped(pg_server):
    url = await pg_server.new_database()
    await asyncio.to_thread(migrate.upgrade, url, "0801")
    ids = await _seed(url)

    await asyncio.to_thread(migrate.upgrade, url, "0802")
    conn = await connect(url)
    try:
        copy = (ids["partner"], ids["program"], "USD", 1500, AVAILABLE, None)
        assert await _unpaid(conn) == {ids["unpaid"]: copy}
        # Written after the migration: the trigger adds it, one statement or many rows.
        await add_entry(conn, ids, "later")
        assert set(await _unpaid(conn)) == {ids["unpaid"], ids["later"]}
    finally:
        await conn.close()

    await asyncio.to_thread(migrate.downgrade, url, "0801")
    conn = await connect(url)
    try:
        assert await conn.fetchval("SELECT to_regclass('unpaid_entries')") is None
        # No trigger left behind to insert into a table that is gone.
        await add_entry(conn, ids, "after_downgrade")
        assert await conn.fetchval("SELECT count(*) FROM commission_entries") == 4
        links = await conn.fetch("SELECT entry_id, payout_id FROM payout_entries")
        assert [(r["entry_id"], r["payout_id"]) for r in links] == [(ids["paid"], ids["payout"])]
    finally:
        await conn.close()

    await asyncio.to_thread(migrate.upgrade, url, "0802")
    conn = await connect(url)
    try:
        assert set(await _unpaid(conn)) == {ids["unpaid"], ids["later"], ids["after_downgrade"]}
    finally:
        await conn.close()
