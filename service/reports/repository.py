"""Every query of the performance report: rollups for clicks, conversions and the ledger.

Each query returns rows of (key, currency, metrics...) already summed in PostgreSQL; the
service merges them. Raw clicks are read only for the sub1 of converting clicks, by key.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, func, literal, literal_column, null, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from service.auth.keys import Principal
from service.auth.scope import in_programs, of_partner
from service.conversions import repository as conversions
from service.ledger import repository as commissions
from service.models import (
    Click,
    ClickRollupHourly,
    ClickRollupSub1Hourly,
    CommissionEntry,
    Conversion,
    ConversionStatus,
    ConversionType,
    EntryKind,
    Link,
    Partner,
    Program,
    Refund,
)


@dataclass(frozen=True)
class Query:
    """What one report reads: the range, the grouping, the filters and who asks."""

    start: datetime
    end: datetime
    time_zone: str
    group_by: str
    # The filters asked for (None: no filter); the key's own reach comes from `principal`.
    program_ids: frozenset[uuid.UUID] | None
    partner_id: uuid.UUID | None
    link_id: uuid.UUID | None
    principal: Principal


def readable(principal: Principal, rollup: Any) -> Select[Any]:
    """The click rollup rows (hourly or sub1) a key may read: its programs, its partner."""
    return select(rollup).where(
        in_programs(principal, rollup.program_id), of_partner(principal, rollup.partner_id)
    )


def _day(q: Query, at: Any) -> ColumnElement[Any]:
    # timezone(zone, timestamptz) is the local wall time; its date is the local day.
    return func.date(func.timezone(q.time_zone, at))


# The click id is a UUIDv7 whose first 48 bits are the click's millisecond, which is also
# its clicked_at: the raw click is found by primary key in its own partition. (PostgreSQL
# multiplies the interval in float8; milliseconds since 1970 are far inside its 2**53.)
_CLICKED_AT: ColumnElement[datetime] = literal_column(
    "(timestamptz '1970-01-01 00:00:00+00' + "
    "(('x' || substr(replace(conversions.click_id::text, '-', ''), 1, 12))::bit(48)::bigint)"
    " * interval '1 millisecond')"
)


# The sub1 of a conversion's click: one primary-key probe per conversion, whatever the
# size of the clicks table (LATERAL keeps the planner from hashing all of it).
_CLICK = (
    select(Click.sub1.label("sub1"))
    .where(
        # Only conversions won by a click carry a link_id; the others have no sub1.
        Conversion.link_id.is_not(None),
        Click.id == Conversion.click_id,
        Click.clicked_at == _CLICKED_AT,
    )
    .limit(1)
    .lateral("click")
)


def _with_click(stmt: Select[Any]) -> Select[Any]:
    return stmt.outerjoin(_CLICK, true())


async def click_rows(session: AsyncSession, q: Query) -> Sequence[Any]:
    """Clicks, unique clicks and bots per key and currency, from the hourly rollups."""
    t: Any = ClickRollupSub1Hourly if q.group_by == "sub1" else ClickRollupHourly
    key = {
        "day": lambda: _day(q, t.hour),
        "partner": lambda: t.partner_id,
        "link": lambda: t.link_id,
        "program": lambda: t.program_id,
        "sub1": lambda: t.sub1,
    }[q.group_by]()
    uniques = null() if q.group_by == "sub1" else func.sum(t.unique_clicks)
    stmt = (
        readable(q.principal, t)
        .with_only_columns(
            key.label("key"),
            Program.currency.label("currency"),
            func.sum(t.clicks).label("clicks"),
            uniques.label("unique_clicks"),
            func.sum(t.bots).label("bots"),
        )
        .join(Program, Program.id == t.program_id)
        .where(t.hour >= q.start, t.hour < q.end)
        .group_by(key, Program.currency)
    )
    if q.program_ids is not None:
        stmt = stmt.where(t.program_id.in_(q.program_ids))
    if q.partner_id is not None:
        stmt = stmt.where(t.partner_id == q.partner_id)
    if q.link_id is not None:
        stmt = stmt.where(t.link_id == q.link_id)
    return (await session.execute(stmt)).all()


def _conversion_key(q: Query, partner: Any) -> ColumnElement[Any]:
    return {
        "day": lambda: _day(q, Conversion.occurred_at),
        "partner": lambda: partner,
        "link": lambda: Conversion.link_id,
        "program": lambda: Conversion.program_id,
        "sub1": lambda: func.coalesce(_CLICK.c.sub1, ""),
    }[q.group_by]()


def _conversion_filters(stmt: Select[Any], q: Query) -> Select[Any]:
    stmt = stmt.where(
        Conversion.occurred_at >= q.start,
        Conversion.occurred_at < q.end,
        Conversion.partner_id.is_not(None),
    )
    if q.program_ids is not None:
        stmt = stmt.where(Conversion.program_id.in_(q.program_ids))
    if q.link_id is not None:
        stmt = stmt.where(Conversion.link_id == q.link_id)
    if q.group_by == "sub1":
        stmt = _with_click(stmt)
    return stmt


async def conversion_rows(session: AsyncSession, q: Query) -> Sequence[Any]:
    """Leads, sales and net revenue per key and program currency (attributed, not rejected)."""
    refunded = (
        select(func.coalesce(func.sum(Refund.program_amount_minor), 0))
        .where(Refund.conversion_id == Conversion.id)
        .scalar_subquery()
    )
    is_sale = Conversion.type == ConversionType.sale
    net = func.coalesce(Conversion.program_amount_minor, 0) - refunded
    key = _conversion_key(q, Conversion.partner_id)
    stmt = (
        conversions.readable(q.principal)
        .with_only_columns(
            key.label("key"),
            Conversion.program_currency.label("currency"),
            func.count().filter(Conversion.type == ConversionType.lead).label("leads"),
            func.count().filter(is_sale).label("sales"),
            func.coalesce(func.sum(net).filter(is_sale), 0).label("revenue_minor"),
        )
        .where(Conversion.status != ConversionStatus.rejected)
    )
    stmt = _conversion_filters(stmt, q).group_by(key, Conversion.program_currency)
    if q.partner_id is not None:
        stmt = stmt.where(Conversion.partner_id == q.partner_id)
    return (await session.execute(stmt)).all()


async def commission_rows(session: AsyncSession, q: Query) -> Sequence[Any]:
    """Ledger sums per key and currency, bucketed by the conversion's occurred_at.

    Every kind counts (reversals of refunds and rejections net out). Grouped by partner,
    each entry goes to its own partner, so a parent's overrides land in the parent's row;
    otherwise only the attributed partner's entries count (overrides are left out).
    """
    key = _conversion_key(q, CommissionEntry.partner_id)
    stmt = (
        commissions.readable(q.principal)
        .with_only_columns(
            key.label("key"),
            CommissionEntry.currency.label("currency"),
            func.sum(CommissionEntry.amount_minor).label("commission_minor"),
        )
        .join(Conversion, Conversion.id == CommissionEntry.conversion_id)
    )
    stmt = _conversion_filters(stmt, q).group_by(key, CommissionEntry.currency)
    if q.group_by != "partner":
        stmt = stmt.where(CommissionEntry.partner_id == Conversion.partner_id)
    if q.partner_id is not None:
        stmt = stmt.where(CommissionEntry.partner_id == q.partner_id)
    rows = list((await session.execute(stmt)).all())
    if q.link_id is None:
        rows.extend(await _click_bounty_rows(session, q))
    return rows


async def _click_bounty_rows(session: AsyncSession, q: Query) -> Sequence[Any]:
    # Bounties belong to no conversion (nor, in the ledger, to a link): they are bucketed
    # by when they were written, under no link and no sub1.
    e = CommissionEntry
    key: Any = {
        "day": lambda: _day(q, e.created_at),
        "partner": lambda: e.partner_id,
        "link": lambda: None,
        "program": lambda: e.program_id,
        "sub1": lambda: None,
    }[q.group_by]()
    constant = {"link": null(), "sub1": literal("")}.get(q.group_by)
    stmt = (
        commissions.readable(q.principal)
        .with_only_columns(
            (key if constant is None else constant).label("key"),
            e.currency.label("currency"),
            func.sum(e.amount_minor).label("commission_minor"),
        )
        .where(
            e.conversion_id.is_(None),
            e.kind == EntryKind.click_bounty,
            e.created_at >= q.start,
            e.created_at < q.end,
        )
        .group_by(*([e.currency] if constant is not None else [key, e.currency]))
    )
    if q.program_ids is not None:
        stmt = stmt.where(e.program_id.in_(q.program_ids))
    if q.partner_id is not None:
        stmt = stmt.where(e.partner_id == q.partner_id)
    return (await session.execute(stmt)).all()


async def partner_names(session: AsyncSession, ids: set[uuid.UUID]) -> dict[uuid.UUID, str]:
    """Names of these partners."""
    if not ids:
        return {}
    rows = await session.execute(select(Partner.id, Partner.name).where(Partner.id.in_(ids)))
    return {r.id: r.name for r in rows}


async def program_names(session: AsyncSession, ids: set[uuid.UUID]) -> dict[uuid.UUID, str]:
    """Names of these programs."""
    if not ids:
        return {}
    rows = await session.execute(select(Program.id, Program.name).where(Program.id.in_(ids)))
    return {r.id: r.name for r in rows}


async def link_codes(session: AsyncSession, ids: set[uuid.UUID]) -> dict[uuid.UUID, str]:
    """Codes of these links."""
    if not ids:
        return {}
    rows = await session.execute(select(Link.id, Link.code).where(Link.id.in_(ids)))
    return {r.id: r.code for r in rows}
