"""Click bounties: `"event": "click"` rules pay per unique, non-bot click, once per partner,
link and program-time-zone day, from the hourly rollups, after the day has ended.

Any number of processes may run the job at once. A partner's links are paid for a day in
one transaction (up to 500 links each) under the row locks of their `click_bounty_days`
rows, which record how many unique clicks are paid: a second run pays only what the
rollups gained since (late clicks, as a correcting entry), and a day is never paid twice.
Each run looks a week back for late clicks, and further back when it has not run for
longer, so no ended day is skipped. The terms in force at the end of the day pay for it;
clicks no rule pays (no agreement, no click rule, a partner not active when the job runs)
are settled without an entry.

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
from service.events import announce
from service.ledger.months import lock_month, save_month
from service.ledger.service import draft_entries, write_drafted
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


async def _pay_day(
    session: AsyncSession,
    program: Program,
    partner_id: uuid.UUID,
    day: date,
    links: list[uuid.UUID],
) -> int:
    """Pay a partner's links for one day up to their current unique clicks; the number of
    entries written (one per link whose count moved)."""
    links = sorted(links)
    await session.execute(
        insert(ClickBountyDay)
        .values(
            [
                {
                    "link_id": link,
                    "day": day,
                    "partner_id": partner_id,
                    "program_id": program.id,
                    "unique_clicks": 0,
                }
                for link in links
            ]
        )
        .on_conflict_do_nothing()
    )
    # The rows' locks (taken in link order by every run) make concurrent runs take turns;
    # the second reads what the first paid.
    paid = dict(
        (
            await session.execute(
                select(ClickBountyDay.link_id, ClickBountyDay.unique_clicks)
                .where(ClickBountyDay.link_id.in_(links), ClickBountyDay.day == day)
                .order_by(ClickBountyDay.link_id)
                .with_for_update()
            )
        ).all()
    )
    start, end = day_bounds(day, program.time_zone)
    current = dict(
        (
            await session.execute(
                select(ClickRollupHourly.link_id, func.sum(ClickRollupHourly.unique_clicks))
                .where(
                    ClickRollupHourly.link_id.in_(links),
                    ClickRollupHourly.hour >= start,
                    ClickRollupHourly.hour < end,
                )
                .group_by(ClickRollupHourly.link_id)
            )
        ).all()
    )
    moved = [
        (link, int(current.get(link) or 0), paid[link])
        for link in links
        if int(current.get(link) or 0) != paid[link]
    ]
    if not moved:
        return 0
    written = 0
    partner = await session.get(Partner, partner_id)
    # The terms in force at the end of the day pay for it.
    found = await in_force(
        session, partner_id, program.id, end - timedelta(microseconds=1), program.currency
    )
    if (
        partner is not None
        and partner.status == PartnerStatus.active
        and found is not None
        and found.terms.rule_for("click") is not None
    ):
        month = day.replace(day=1)
        state = await lock_month(session, partner.id, program.id, month, "click")
        hold_days = (
            found.terms.hold_days if found.terms.hold_days is not None else program.hold_days
        )
        for link, now_count, before in moved:
            outcome = compute_clicks(
                found.terms,
                state,
                now_count - before,
                program.currency,
                partner.parent_id is not None,
            )
            state = outcome.new_state
            rows = draft_entries(
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
                    "day": day.isoformat(),
                    "time_zone": program.time_zone,
                    "link_id": str(link),
                    "unique_clicks": now_count,
                    "paid_before": before,
                    "hold_days": hold_days,
                },
            )
            await write_drafted(session, rows, None)
            await announce.entries(session, rows)
            written += len(rows)
        await save_month(session, partner.id, program.id, month, "click", state)
    # Clicks no rule pays (no agreement, no click rule, a partner not active) are settled
    # too: they do not wait to be paid by terms that come later.
    for link, now_count, _ in moved:
        await session.execute(
            update(ClickBountyDay)
            .where(ClickBountyDay.link_id == link, ClickBountyDay.day == day)
            .values(unique_clicks=now_count, updated_at=func.now())
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
        # One transaction per partner and day: its links share the month's cap and tiers.
        groups: dict[tuple[uuid.UUID, date], list[uuid.UUID]] = {}
        for due in dues:
            groups.setdefault((due.partner_id, due.day), []).append(due.link_id)
        for (partner_id, day), links in sorted(groups.items()):
            for batch in _batches(links):
                async with sessionmaker() as session, session.begin():
                    written += await _pay_day(session, program, partner_id, day, batch)
    return written


def _batches(links: list[uuid.UUID], size: int = 500) -> list[list[uuid.UUID]]:
    # Bounded transactions for partners with very many links.
    ordered = sorted(links)
    return [ordered[i : i + size] for i in range(0, len(ordered), size)]
