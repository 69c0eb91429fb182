"""Click bounties: `"event": "click"` rules pay per unique, non-bot click, once per partner,
link and program-time-zone day, from the hourly rollups, after the day has ended.

Any number of processes may run the job at once. Each (link, day) is paid in its own
transaction under the row lock of its `click_bounty_days` row, which records how many
unique clicks are paid: a second run pays only what the rollups gained since (late clicks,
as a correcting entry), and a day is never paid twice. Each run looks a week back for late
clicks, and further back when it has not run for longer, so no ended day is skipped.

The rollup keeps a visitor's first sight per link and UTC day, so in a program whose time
zone is not UTC a visitor seen on both UTC days a local day spans counts twice; an hour
counts in the local day it starts in (zones with half-hour offsets included).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import Date, cast, func, literal, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from service.agreements.service import in_force
from service.commissions.engine import compute_clicks
from service.ledger.months import lock_month, save_month
from service.ledger.service import write_entries
from service.models import (
    Agreement,
    AgreementVersion,
    ClickBountyDay,
    ClickRollupHourly,
    Partner,
    PartnerStatus,
    Program,
)

# Days before today looked at again on each run, for clicks that arrive late.
LOOKBACK_DAYS = 7


@dataclass(frozen=True)
class _Due:
    link_id: uuid.UUID
    partner_id: uuid.UUID
    day: date


def day_bounds(day: date, tz: str) -> tuple[datetime, datetime]:
    """The UTC start (inclusive) and end (exclusive) of a calendar day in a zone."""
    zone = ZoneInfo(tz)
    start = datetime.combine(day, time(), tzinfo=zone)
    end = datetime.combine(day + timedelta(days=1), time(), tzinfo=zone)
    return start.astimezone(ZoneInfo("UTC")), end.astimezone(ZoneInfo("UTC"))


async def _programs_with_click_rules(session: AsyncSession) -> list[Program]:
    has_click_rule = AgreementVersion.terms["rules"].contains([{"event": "click"}])
    stmt = select(Program).where(
        Program.id.in_(
            select(Agreement.program_id)
            .join(AgreementVersion, AgreementVersion.agreement_id == Agreement.id)
            .where(has_click_rule)
        )
    )
    return list((await session.scalars(stmt)).all())


def _local_day(tz: str) -> object:
    return cast(func.timezone(literal(tz), ClickRollupHourly.hour), Date)


async def _first_day(session: AsyncSession, program: Program, today: date) -> date:
    """The first day to look at: a week back for late clicks, or further when the job has
    not run for longer (from the day after the last one paid, or the first click ever)."""
    recent = today - timedelta(days=LOOKBACK_DAYS)
    last = await session.scalar(
        select(func.max(ClickBountyDay.day)).where(ClickBountyDay.program_id == program.id)
    )
    if last is not None:
        return min(recent, last + timedelta(days=1))
    first = await session.scalar(
        select(func.min(ClickRollupHourly.hour)).where(ClickRollupHourly.program_id == program.id)
    )
    if first is None:
        return recent
    return min(recent, first.astimezone(ZoneInfo(program.time_zone)).date())


async def _due(session: AsyncSession, program: Program, now: datetime) -> list[_Due]:
    """(link, day) pairs of ended days whose unique clicks differ from what is paid."""
    today = now.astimezone(ZoneInfo(program.time_zone)).date()
    since, _ = day_bounds(await _first_day(session, program, today), program.time_zone)
    until, _ = day_bounds(today, program.time_zone)
    day = _local_day(program.time_zone).label("day")  # type: ignore[attr-defined]
    sums = (
        select(
            ClickRollupHourly.link_id,
            ClickRollupHourly.partner_id,
            day,
            func.sum(ClickRollupHourly.unique_clicks).label("uniques"),
        )
        .where(
            ClickRollupHourly.program_id == program.id,
            ClickRollupHourly.hour >= since,
            ClickRollupHourly.hour < until,
        )
        .group_by(ClickRollupHourly.link_id, ClickRollupHourly.partner_id, day)
        .subquery()
    )
    rows = await session.execute(
        select(sums.c.link_id, sums.c.partner_id, sums.c.day)
        .outerjoin(
            ClickBountyDay,
            (ClickBountyDay.link_id == sums.c.link_id) & (ClickBountyDay.day == sums.c.day),
        )
        .where(func.coalesce(ClickBountyDay.unique_clicks, 0) != sums.c.uniques)
        .order_by(sums.c.day, sums.c.link_id)
    )
    return [_Due(r.link_id, r.partner_id, r.day) for r in rows]


async def _pay_day(session: AsyncSession, program: Program, due: _Due) -> int:
    """Pay one link's day up to its current unique clicks; the number of entries written."""
    await session.execute(
        insert(ClickBountyDay)
        .values(
            link_id=due.link_id,
            day=due.day,
            partner_id=due.partner_id,
            program_id=program.id,
            unique_clicks=0,
        )
        .on_conflict_do_nothing()
    )
    # The row lock makes concurrent runs take turns; the second sees what the first paid.
    paid_row = await session.scalar(
        select(ClickBountyDay)
        .where(ClickBountyDay.link_id == due.link_id, ClickBountyDay.day == due.day)
        .with_for_update()
    )
    assert paid_row is not None
    start, end = day_bounds(due.day, program.time_zone)
    current = int(
        await session.scalar(
            select(func.coalesce(func.sum(ClickRollupHourly.unique_clicks), 0)).where(
                ClickRollupHourly.link_id == due.link_id,
                ClickRollupHourly.hour >= start,
                ClickRollupHourly.hour < end,
            )
        )
        or 0
    )
    paid = paid_row.unique_clicks
    if current == paid:
        return 0
    written = 0
    partner = await session.get(Partner, due.partner_id)
    # The terms in force at the end of the day pay for it.
    found = await in_force(
        session, due.partner_id, program.id, end - timedelta(microseconds=1), program.currency
    )
    if (
        partner is not None
        and partner.status == PartnerStatus.active
        and found is not None
        and found.terms.rule_for("click") is not None
    ):
        month = due.day.replace(day=1)
        state = await lock_month(session, partner.id, program.id, month, "click")
        outcome = compute_clicks(
            found.terms, state, current - paid, program.currency, partner.parent_id is not None
        )
        await save_month(session, partner.id, program.id, month, "click", outcome.new_state)
        hold_days = (
            found.terms.hold_days if found.terms.hold_days is not None else program.hold_days
        )
        rows = write_entries(
            session,
            outcome,
            partner_id=partner.id,
            parent_id=partner.parent_id,
            program_id=program.id,
            currency=program.currency,
            conversion_id=None,
            refund_id=None,
            available_at=end + timedelta(days=hold_days),
            agreement_id=found.agreement.id,
            agreement_version=found.version.version,
            month=month,
            event="click",
            context={
                "day": due.day.isoformat(),
                "time_zone": program.time_zone,
                "link_id": str(due.link_id),
                "unique_clicks": current,
                "paid_before": paid,
                "hold_days": hold_days,
            },
        )
        written = len(rows)
    # Clicks no rule pays (no agreement, no click rule, a partner not active) are settled
    # too: they do not wait to be paid by terms that come later.
    await session.execute(
        update(ClickBountyDay)
        .where(ClickBountyDay.link_id == due.link_id, ClickBountyDay.day == due.day)
        .values(unique_clicks=current, updated_at=func.now())
    )
    return written


async def run_click_bounties(sessionmaker: async_sessionmaker[AsyncSession], now: datetime) -> int:
    """Pay the click bounties of every ended day not paid yet (or paid short); the number
    of ledger entries written."""
    async with sessionmaker() as session:
        programs = await _programs_with_click_rules(session)
        work = [(program, await _due(session, program, now)) for program in programs]
    written = 0
    for program, dues in work:
        for due in dues:
            async with sessionmaker() as session, session.begin():
                written += await _pay_day(session, program, due)
    return written
