"""Migration 0701: entries' payout_id moves into payout_entries, and back on downgrade."""

import asyncio
import uuid
from datetime import UTC, date, datetime

from service import migrate
from tests.payouts.migration_rows import connect, program_partner_payout


async def _seed(url: str) -> dict[str, uuid.UUID]:
    ids = {k: uuid.uuid4() for k in ("program", "partner", "run", "payout", "paid", "unpaid")}
    conn = await connect(url)
    try:
        await program_partner_payout(conn, ids)
        for key, payout in (("paid", ids["payout"]), ("unpaid", None)):
            await conn.execute(
                "INSERT INTO commission_entries (id, partner_id, program_id, kind, amount_minor,"
                " currency, available_at, period_month, explain, payout_id)"
                " VALUES ($1, $2, $3, 'commission', 1500, 'USD', $4, $5, '{}', $6)",
                ids[key],
                ids["partner"],
                ids["program"],
                datetime(2026, 11, 1, tzinfo=UTC),
                date(2026, 10, 1),
                payout,
            )
    finally:
        await conn.close()
    return ids


async def test_payout_ids_move_to_the_link_table_and_back(pg_server):
    url = await pg_server.new_database()
    await asyncio.to_thread(migrate.upgrade, url, "0301")
    ids = await _seed(url)

    await asyncio.to_thread(migrate.upgrade, url, "0701")
    conn = await connect(url)
    try:
        links = await conn.fetch("SELECT entry_id, payout_id FROM payout_entries")
        assert [(r["entry_id"], r["payout_id"]) for r in links] == [(ids["paid"], ids["payout"])]
        columns = await conn.fetchval(
            "SELECT count(*) FROM information_schema.columns"
            " WHERE table_name = 'commission_entries' AND column_name = 'payout_id'"
        )
        assert columns == 0
    finally:
        await conn.close()

    await asyncio.to_thread(migrate.downgrade, url, "0301")
    conn = await connect(url)
    try:
        rows = await conn.fetch("SELECT id, payout_id FROM commission_entries")
        assert {r["id"]: r["payout_id"] for r in rows} == {
            ids["paid"]: ids["payout"],
            ids["unpaid"]: None,
        }
        assert await conn.fetchval("SELECT to_regclass('payout_entries')") is None
    finally:
        await conn.close()
