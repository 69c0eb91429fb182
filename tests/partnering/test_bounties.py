"""Click bounties from the hourly rollups: unique non-bot clicks, once per link and day in the
program's time zone, after the day has ended, caps, late clicks, runs twice and at once."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert

from service.models import ClickRollupHourly, CommissionEntry
from service.partnering.bounties import run_click_bounties
from tests.conversions.factories import setup
from tests.links.factories import create_link
from tests.reports.test_performance import BOT, VISITOR, _click

CENTS = {
    "rules": [
        {"event": "sale", "type": "percent", "percent": "10"},
        {"event": "click", "type": "flat", "amount": "0.02"},
    ],
    "hold_days": 0,
}
CAPPED = {
    "rules": [{"event": "click", "type": "flat", "amount": "0.02", "monthly_cap": "0.10"}],
    "hold_days": 0,
}


def z(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


async def world(
    client: Any, admin: dict, app: Any, terms: dict, tz: str
) -> tuple[dict, dict, dict]:
    program, partner = await setup(
        client, admin, terms=terms, time_zone=tz, effective_from=z("2025-01-01T00:00:00")
    )
    link = await create_link(client, admin, program, partner)
    return program, partner, link


async def put_rollup(
    app: Any, link: dict, hour: str, unique: int, clicks: int | None = None
) -> None:
    """An hourly rollup row as the click writer leaves it (or grown, for late clicks)."""
    async with app.state.sessionmaker() as session:
        await session.execute(
            insert(ClickRollupHourly)
            .values(
                link_id=uuid.UUID(link["id"]),
                hour=z(hour),
                partner_id=uuid.UUID(link["partner_id"]),
                program_id=uuid.UUID(link["program_id"]),
                clicks=clicks if clicks is not None else unique,
                unique_clicks=unique,
                bots=0,
            )
            .on_conflict_do_update(
                index_elements=["link_id", "hour"],
                set_={"unique_clicks": unique, "clicks": clicks if clicks is not None else unique},
            )
        )
        await session.commit()


async def bounties(app: Any, partner: dict) -> list[tuple[str, Decimal, int]]:
    """(day, amount, unique clicks then) of the partner's bounty entries, in writing order."""
    async with app.state.sessionmaker() as session:
        rows = (
            await session.scalars(
                select(CommissionEntry)
                .where(
                    CommissionEntry.partner_id == uuid.UUID(partner["id"]),
                    CommissionEntry.kind == "click_bounty",
                )
                .order_by(CommissionEntry.created_at, CommissionEntry.id)
            )
        ).all()
    return [
        (r.explain["day"], Decimal(r.amount_minor) / 100, r.explain["unique_clicks"]) for r in rows
    ]


async def test_days_in_the_program_time_zone_paid_once_they_have_ended(client, admin, app):
    # New York is UTC-5 in November: its 10th runs from 05:00Z on the 10th to 05:00Z on the 11th.
    _, partner, link = await world(client, admin, app, CENTS, "America/New_York")
    await put_rollup(app, link, "2026-11-10T04:00:00", 3)  # 23:00 on the 9th, local
    await put_rollup(app, link, "2026-11-10T05:00:00", 2)  # 00:00 on the 10th
    await put_rollup(app, link, "2026-11-11T04:00:00", 4)  # 23:00 on the 10th
    await put_rollup(app, link, "2026-11-11T05:00:00", 1)  # 00:00 on the 11th
    # 23:59 on the 10th in New York: only the 9th has ended.
    assert await run_click_bounties(app.state.sessionmaker, z("2026-11-11T04:59:00")) == 1
    assert await bounties(app, partner) == [("2026-11-09", Decimal("0.06"), 3)]
    # Midnight: the 10th has ended too (2 + 4 unique clicks); the 11th has not.
    assert await run_click_bounties(app.state.sessionmaker, z("2026-11-11T05:00:00")) == 1
    assert (await bounties(app, partner))[1:] == [("2026-11-10", Decimal("0.12"), 6)]
    assert await run_click_bounties(app.state.sessionmaker, z("2026-11-12T12:00:00")) == 1
    assert (await bounties(app, partner))[2:] == [("2026-11-11", Decimal("0.02"), 1)]


async def test_a_run_twice_or_two_at_once_pay_once(client, admin, app):
    _, partner, link = await world(client, admin, app, CENTS, "UTC")
    for h in range(5):
        await put_rollup(app, link, f"2026-11-20T1{h}:00:00", 2)
    now = z("2026-11-21T08:00:00")
    counts = await asyncio.gather(
        *(run_click_bounties(app.state.sessionmaker, now) for _ in range(3))
    )
    assert sorted(counts) == [0, 0, 1]
    assert await run_click_bounties(app.state.sessionmaker, now) == 0
    assert await bounties(app, partner) == [("2026-11-20", Decimal("0.20"), 10)]


async def test_late_clicks_are_paid_in_a_correcting_entry(client, admin, app):
    _, partner, link = await world(client, admin, app, CENTS, "UTC")
    await put_rollup(app, link, "2026-11-22T10:00:00", 5)
    await run_click_bounties(app.state.sessionmaker, z("2026-11-23T01:00:00"))
    # Clicks of the 22nd that reached the rollup after the run.
    await put_rollup(app, link, "2026-11-22T10:00:00", 7)
    await put_rollup(app, link, "2026-11-22T23:00:00", 1)
    assert await run_click_bounties(app.state.sessionmaker, z("2026-11-23T02:00:00")) == 1
    assert await bounties(app, partner) == [
        ("2026-11-22", Decimal("0.10"), 5),
        ("2026-11-22", Decimal("0.06"), 8),
    ]


async def test_the_monthly_cap_applies_and_a_new_month_starts_over(client, admin, app):
    _, partner, link = await world(client, admin, app, CAPPED, "UTC")
    await put_rollup(app, link, "2026-11-01T10:00:00", 3)  # 0.06
    await put_rollup(app, link, "2026-11-02T10:00:00", 6)  # 0.12, room 0.04
    await put_rollup(app, link, "2026-11-03T10:00:00", 1)  # cap reached: nothing
    await put_rollup(app, link, "2026-12-01T10:00:00", 1)  # December: 0.02
    assert await run_click_bounties(app.state.sessionmaker, z("2026-12-02T00:00:00")) == 3
    assert await bounties(app, partner) == [
        ("2026-11-01", Decimal("0.06"), 3),
        ("2026-11-02", Decimal("0.04"), 6),
        ("2026-12-01", Decimal("0.02"), 1),
    ]
    # The capped day is settled, not retried on every run.
    assert await run_click_bounties(app.state.sessionmaker, z("2026-12-02T01:00:00")) == 0


async def test_a_partners_links_share_the_months_cap(client, admin, app):
    program, partner, link = await world(client, admin, app, CAPPED, "UTC")
    other = await create_link(client, admin, program, partner)
    first, second = sorted([link, other], key=lambda x: uuid.UUID(x["id"]))
    await put_rollup(app, first, "2026-11-05T10:00:00", 4)  # 0.08
    await put_rollup(app, second, "2026-11-05T11:00:00", 4)  # 0.08, room 0.02
    assert await run_click_bounties(app.state.sessionmaker, z("2026-11-06T00:00:00")) == 2
    # Whichever link's entry took the room, the day pays the cap and no more.
    assert sorted(await bounties(app, partner)) == [
        ("2026-11-05", Decimal("0.02"), 4),
        ("2026-11-05", Decimal("0.08"), 4),
    ]


async def test_real_clicks_a_bot_and_a_repeated_visitor(client, admin, app):
    _, partner, link = await world(client, admin, app, CENTS, "UTC")
    await _click(client, link["code"], VISITOR[1])
    await _click(client, link["code"], VISITOR[1])  # the same visitor again: not unique
    await _click(client, link["code"], VISITOR[2])
    await _click(client, link["code"], BOT)  # a bot counts for nothing
    today = datetime.now(UTC)
    # Today has not ended: nothing is paid.
    assert await run_click_bounties(app.state.sessionmaker, today) == 0
    tomorrow = today.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1, hours=1)
    assert await run_click_bounties(app.state.sessionmaker, tomorrow) == 1
    assert await bounties(app, partner) == [(today.date().isoformat(), Decimal("0.04"), 2)]
    async with app.state.sessionmaker() as session:
        entry = await session.scalar(
            select(CommissionEntry).where(
                CommissionEntry.partner_id == uuid.UUID(partner["id"]),
                CommissionEntry.kind == "click_bounty",
            )
        )
    assert entry is not None and entry.conversion_id is None
    assert entry.period_month == today.date().replace(day=1)


async def test_no_click_rule_pays_nothing_and_settles(client, admin, app):
    sale_only = {"rules": [{"event": "sale", "type": "percent", "percent": "10"}]}
    program, partner, link = await world(client, admin, app, sale_only, "UTC")
    # The program has a click rule through another partner, so it is looked at.
    _, other = await setup(
        client, admin, terms=CENTS, program=program, effective_from=z("2025-01-01T00:00:00")
    )
    del other
    await put_rollup(app, link, "2026-11-25T10:00:00", 4)
    await run_click_bounties(app.state.sessionmaker, z("2026-11-26T10:00:00"))
    assert await bounties(app, partner) == []
    async with app.state.sessionmaker() as session:
        await session.execute(
            update(ClickRollupHourly)
            .where(ClickRollupHourly.link_id == uuid.UUID(link["id"]))
            .values(unique_clicks=4)
        )
        await session.commit()
    assert await run_click_bounties(app.state.sessionmaker, z("2026-11-26T11:00:00")) == 0
