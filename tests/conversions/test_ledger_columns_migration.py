"""Migration 0201: what a conversion counted moves out of attribution["ledger"] and back."""

import asyncio
import json
import uuid
from datetime import datetime

import asyncpg

from service import migrate

EXPLAIN = {"rule": {"event": "sale"}, "reason": None, "month_total_after": "12.00"}
DECISION = {"partner_id": None, "method": None, "reasons": []}
# (order id, occurred_at, attribution as the code before 0201 stored it)
ROWS = [
    # 03:00 UTC on 1 March is still February in New York: the month is the program's.
    (
        "earned",
        "2026-03-01T03:00:00+00:00",
        {
            **DECISION,
            "ledger": {
                "counted": True,
                "hold_days": 0,
                "month": "2026-02-01",
                "event": "sale",
                "explain": EXPLAIN,
            },
        },
    ),
    (
        "no-terms",
        "2026-03-05T12:00:00+00:00",
        {**DECISION, "ledger": {"counted": False, "note": "no agreement in force at occurred_at"}},
    ),
    ("unattributed", "2026-03-05T12:00:00+00:00", {**DECISION, "ledger": {"counted": False}}),
]


async def _connect(url: str) -> asyncpg.Connection:
    return await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))


async def _seed(url: str) -> None:
    conn = await _connect(url)
    try:
        program = uuid.uuid4()
        await conn.execute(
            "INSERT INTO programs (id, name, currency, time_zone, default_url, allowed_domains,"
            " click_param, attribution_window_days, attribution_order, hold_days,"
            " min_payout_minor) VALUES ($1, 'p', 'USD', 'America/New_York', 'https://a.test/',"
            " '{}', 'aff_click_id', 30, '{click}', 30, 0)",
            program,
        )
        for order_id, at, attribution in ROWS:
            await conn.execute(
                "INSERT INTO conversions (id, program_id, type, order_id, status, currency,"
                " program_currency, occurred_at, request_hash, items, metadata, attribution,"
                " refunded_minor) VALUES ($1, $2, 'sale', $3, 'accepted', 'USD', 'USD',"
                " $4, $5, '[]', '{}', $6::jsonb, 0)",
                uuid.uuid4(),
                program,
                order_id,
                datetime.fromisoformat(at),
                bytes(32),
                json.dumps(attribution),
            )
    finally:
        await conn.close()


async def _fetch(url: str, columns: str) -> dict[str, asyncpg.Record]:
    conn = await _connect(url)
    try:
        rows = await conn.fetch(f"SELECT order_id, {columns} FROM conversions")
    finally:
        await conn.close()
    return {r["order_id"]: r for r in rows}


async def test_columns_are_backfilled_and_the_json_comes_back_on_downgrade(pg_server):
    url = await pg_server.new_database()
    await asyncio.to_thread(migrate.upgrade, url, "0104")
    await _seed(url)

    await asyncio.to_thread(migrate.upgrade, url, "0201")
    cols = "attribution, counted, hold_days, commission_note, commission_explain"
    after = await _fetch(url, cols)
    for row in after.values():
        assert json.loads(row["attribution"]) == DECISION
    assert after["earned"]["counted"] is True
    assert after["earned"]["hold_days"] == 0
    assert json.loads(after["earned"]["commission_explain"]) == EXPLAIN
    assert after["earned"]["commission_note"] is None
    assert after["no-terms"]["counted"] is False
    assert after["no-terms"]["hold_days"] is None
    assert after["no-terms"]["commission_note"] == "no agreement in force at occurred_at"
    assert after["unattributed"]["counted"] is False
    assert after["unattributed"]["commission_explain"] is None

    await asyncio.to_thread(migrate.downgrade, url, "0104")
    before = await _fetch(url, "attribution")
    assert {k: json.loads(r["attribution"]) for k, r in before.items()} == {
        order_id: attribution for order_id, _, attribution in ROWS
    }
