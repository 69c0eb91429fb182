"""Rows written with plain SQL for the payout migrations' tests: at an older revision the
models describe tables that do not exist yet."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime

import asyncpg

AVAILABLE = datetime(2026, 11, 1, tzinfo=UTC)


async def connect(url: str) -> asyncpg.Connection:
    return await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))


@asynccontextmanager
async def connected(url: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection to the database at `url`, closed on the way out."""
    conn = await connect(url)
    try:
        yield conn
    finally:
        await conn.close()


async def program_partner_payout(conn: asyncpg.Connection, ids: dict[str, uuid.UUID]) -> None:
    """A program, an active partner, a run and its open payout of 15.00 USD, under the ids
    in `ids` ("program", "partner", "run", "payout")."""
    await conn.execute(
        "INSERT INTO programs (id, name, currency, time_zone, default_url, allowed_domains,"
        " click_param, attribution_window_days, attribution_order, hold_days,"
        " min_payout_minor) VALUES ($1, 'p', 'USD', 'UTC', 'https://a.test/',"
        " '{}', 'aff_click_id', 30, '{click}', 30, 0)",
        ids["program"],
    )
    await conn.execute(
        "INSERT INTO partners (id, name, email, status, payout_details, metadata)"
        " VALUES ($1, 'a', 'a@a.test', 'active', '{}', '{}')",
        ids["partner"],
    )
    await conn.execute(
        "INSERT INTO payout_runs (id, idempotency_key, request_hash, as_of)"
        " VALUES ($1, 'k', $2, now())",
        ids["run"],
        bytes(32),
    )
    await conn.execute(
        "INSERT INTO payouts (id, run_id, partner_id, currency, amount_minor, entry_count,"
        " status, payout_details) VALUES ($1, $2, $3, 'USD', 1500, 1, 'open', '{}')",
        ids["payout"],
        ids["run"],
        ids["partner"],
    )


async def add_entry(
    conn: asyncpg.Connection, ids: dict[str, uuid.UUID], key: str, amount_minor: int = 1500
) -> None:
    """A commission entry of the partner in the program, available on AVAILABLE, its new
    id put in `ids` under `key` (at a revision with unpaid_entries, its trigger adds it)."""
    ids[key] = uuid.uuid4()
    await conn.execute(
        "INSERT INTO commission_entries (id, partner_id, program_id, kind, amount_minor,"
        " currency, available_at, period_month, explain)"
        " VALUES ($1, $2, $3, 'commission', $4, 'USD', $5, $6, '{}')",
        ids[key],
        ids["partner"],
        ids["program"],
        amount_minor,
        AVAILABLE,
        date(2026, 10, 1),
    )
