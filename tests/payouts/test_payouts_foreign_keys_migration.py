"""Migration 0804: payouts lose their foreign keys on partner_id and run_id, keeping every
row; a downgrade adds them back, and refuses (changing nothing) while a payout names a
partner or a run that does not exist."""

import asyncio
import uuid

import asyncpg
import pytest

from service import migrate
from tests.payouts.migration_rows import connected, program_partner_payout


async def _keys(conn: asyncpg.Connection) -> set[str]:
    rows = await conn.fetch(
        "SELECT conname FROM pg_constraint WHERE conrelid = 'payouts'::regclass AND contype = 'f'"
    )
    return {r["conname"] for r in rows}


async def _payouts(conn: asyncpg.Connection) -> set[tuple[uuid.UUID, uuid.UUID, uuid.UUID]]:
    rows = await conn.fetch("SELECT id, run_id, partner_id FROM payouts")
    return {(r["id"], r["run_id"], r["partner_id"]) for r in rows}


async def _orphan(conn: asyncpg.Connection, ids: dict[str, uuid.UUID]) -> uuid.UUID:
    # A payout of a partner that does not exist.
    orphan = uuid.uuid4()
    await conn.execute(
        "INSERT INTO payouts (id, run_id, partner_id, currency, amount_minor, entry_count,"
        " status, payout_details) VALUES ($1, $2, $3, 'USD', 100, 0, 'open', '{}')",
        orphan,
        ids["run"],
        uuid.uuid4(),
    )
    return orphan


KEYS = {"fk_payouts_partner_id_partners", "fk_payouts_run_id_payout_runs"}


async def test_payouts_keep_their_rows_with_or_without_the_keys(pg_server):
    url = await pg_server.new_database()
    await asyncio.to_thread(migrate.upgrade, url, "0803")
    ids = {k: uuid.uuid4() for k in ("program", "partner", "run", "payout")}
    async with connected(url) as conn:
        await program_partner_payout(conn, ids)
        assert await _keys(conn) == KEYS
        with pytest.raises(asyncpg.ForeignKeyViolationError):
            await _orphan(conn, ids)
        rows = await _payouts(conn)
    assert rows == {(ids["payout"], ids["run"], ids["partner"])}

    await asyncio.to_thread(migrate.upgrade, url, "0804")
    async with connected(url) as conn:
        assert await _keys(conn) == set()
        assert await _payouts(conn) == rows
        orphan = await _orphan(conn, ids)

    # The keys cannot come back while a payout names no partner: nothing changes.
    with pytest.raises(Exception, match="fk_payouts_partner_id_partners"):
        await asyncio.to_thread(migrate.downgrade, url, "0803")
    async with connected(url) as conn:
        assert await conn.fetchval("SELECT version_num FROM alembic_version") == "0804"
        assert await _keys(conn) == set()
        await conn.execute("DELETE FROM payouts WHERE id = $1", orphan)

    await asyncio.to_thread(migrate.downgrade, url, "0803")
    async with connected(url) as conn:
        assert await _keys(conn) == KEYS
        assert await _payouts(conn) == rows

    await asyncio.to_thread(migrate.upgrade, url, "head")
    async with connected(url) as conn:
        assert await _payouts(conn) == rows
