"""Migration 0803: payout_entries keyed by (payout_id, entry_id) alone, and back on downgrade;
the links themselves are kept both ways."""

import asyncio
import uuid

import asyncpg

from service import migrate
from tests.payouts.migration_rows import add_entry, connect, program_partner_payout


async def _seed(url: str) -> dict[str, uuid.UUID]:
    ids = {k: uuid.uuid4() for k in ("program", "partner", "run", "payout")}
    conn = await connect(url)
    try:
        await program_partner_payout(conn, ids)
        for key in ("a", "b"):
            await add_entry(conn, ids, key, 750)
        await conn.execute(
            "DELETE FROM unpaid_entries WHERE entry_id = ANY($1::uuid[])", [ids["a"], ids["b"]]
        )
        await conn.execute(
            "INSERT INTO payout_entries (entry_id, payout_id) SELECT unnest($1::uuid[]), $2",
            [ids["a"], ids["b"]],
            ids["payout"],
        )
    finally:
        await conn.close()
    return ids


async def _indexes(conn: asyncpg.Connection) -> set[str]:
    rows = await conn.fetch("SELECT indexdef FROM pg_indexes WHERE tablename = 'payout_entries'")
    return {r["indexdef"].split(" ON public.payout_entries USING ")[1] for r in rows}


async def _links(conn: asyncpg.Connection) -> set[tuple[uuid.UUID, uuid.UUID]]:
    rows = await conn.fetch("SELECT entry_id, payout_id FROM payout_entries")
    return {(r["entry_id"], r["payout_id"]) for r in rows}


async def test_the_links_keep_their_rows_under_either_key(pg_server):
    url = await pg_server.new_database()
    await asyncio.to_thread(migrate.upgrade, url, "0802")
    ids = await _seed(url)
    links = {(ids["a"], ids["payout"]), (ids["b"], ids["payout"])}

    await asyncio.to_thread(migrate.upgrade, url, "0803")
    conn = await connect(url)
    try:
        assert await _indexes(conn) == {"btree (payout_id, entry_id)"}
        assert await _links(conn) == links
    finally:
        await conn.close()

    await asyncio.to_thread(migrate.downgrade, url, "0802")
    conn = await connect(url)
    try:
        assert await _indexes(conn) == {"btree (entry_id)", "btree (payout_id)"}
        assert await _links(conn) == links
        # The old key again refuses an entry in two payouts.
        try:
            await conn.execute(
                "INSERT INTO payout_entries (entry_id, payout_id) VALUES ($1, $2)",
                ids["a"],
                uuid.uuid4(),
            )
        except asyncpg.UniqueViolationError:
            pass
        else:
            raise AssertionError("a second link of one entry was accepted")
    finally:
        await conn.close()

    await asyncio.to_thread(migrate.upgrade, url, "head")
    conn = await connect(url)
    try:
        assert await _links(conn) == links
    finally:
        await conn.close()
