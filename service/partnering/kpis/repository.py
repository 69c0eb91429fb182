"""Every query of KPI targets and of the KPI report's actuals (rollups and the ledger, never
raw clicks), each through the readable() of the domain it reads."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from service.auth.keys import Principal
from service.auth.scope import in_programs
from service.conversions import repository as conversions
from service.kit.pagination import PageParams, page_of, paginate_query
from service.ledger import repository as ledger
from service.models import (
    ClickRollupHourly,
    CommissionEntry,
    Conversion,
    ConversionStatus,
    ConversionType,
    Customer,
    KpiTarget,
    Refund,
)
from service.reports import repository as reports


def readable(principal: Principal) -> Select[KpiTarget]:
    """The targets a key may read (admin keys, which reach every program)."""
    return select(KpiTarget).where(in_programs(principal, KpiTarget.program_id))


async def get(
    session: AsyncSession, principal: Principal, target_id: uuid.UUID
) -> KpiTarget | None:
    """A readable target by id, or None."""
    return await session.scalar(readable(principal).where(KpiTarget.id == target_id))


async def find(
    session: AsyncSession,
    principal: Principal,
    program_id: uuid.UUID,
    partner_id: uuid.UUID | None,
    period: str,
    start: date,
) -> KpiTarget | None:
    """The target of exactly this program, partner (or none), period and start."""
    partner = (
        KpiTarget.partner_id.is_(None)
        if partner_id is None
        else (KpiTarget.partner_id == partner_id)
    )
    return await session.scalar(
        readable(principal).where(
            KpiTarget.program_id == program_id,
            partner,
            KpiTarget.period == period,
            KpiTarget.start == start,
        )
    )


async def page(
    session: AsyncSession,
    principal: Principal,
    params: PageParams,
    *,
    program_id: uuid.UUID | None,
    partner_id: uuid.UUID | None,
) -> tuple[list[KpiTarget], str | None]:
    """A page of the readable targets, optionally of one program and partner."""
    stmt = readable(principal)
    if program_id is not None:
        stmt = stmt.where(KpiTarget.program_id == program_id)
    if partner_id is not None:
        stmt = stmt.where(KpiTarget.partner_id == partner_id)
    rows = list((await session.scalars(paginate_query(stmt, KpiTarget.id, params))).all())
    return page_of(rows, params)


@dataclass(frozen=True)
class Actuals:
    """What happened in a period, in minor units for money."""

    clicks: int
    leads: int
    sales: int
    revenue_minor: int
    new_customers: int
    commission_minor: int


async def actuals(
    session: AsyncSession,
    principal: Principal,
    program_id: uuid.UUID,
    partner_id: uuid.UUID | None,
    starts_at: datetime,
    ends_at: datetime,
    months: tuple[date, date],
) -> Actuals:
    """The period's clicks (hourly rollups), conversions and commission (the ledger's
    entries of the period's calendar months, bounties and adjustments included)."""
    r = ClickRollupHourly
    clicks_q = (
        reports.readable(principal, r)
        .with_only_columns(func.coalesce(func.sum(r.clicks), 0))
        .where(r.program_id == program_id, r.hour >= starts_at, r.hour < ends_at)
    )
    refunded = (
        select(func.coalesce(func.sum(Refund.program_amount_minor), 0))
        .where(Refund.conversion_id == Conversion.id)
        .scalar_subquery()
    )
    is_sale = Conversion.type == ConversionType.sale
    first_sale = Conversion.id.in_(
        select(Customer.first_conversion_id).where(Customer.program_id == program_id)
    )
    conv_q = (
        conversions.readable(principal)
        .with_only_columns(
            func.count().filter(Conversion.type == ConversionType.lead),
            func.count().filter(is_sale),
            func.coalesce(
                func.sum(func.coalesce(Conversion.program_amount_minor, 0) - refunded).filter(
                    is_sale
                ),
                0,
            ),
            func.count().filter(is_sale, first_sale),
        )
        .where(
            Conversion.program_id == program_id,
            Conversion.partner_id.is_not(None),
            Conversion.status != ConversionStatus.rejected,
            Conversion.occurred_at >= starts_at,
            Conversion.occurred_at < ends_at,
        )
    )
    e = CommissionEntry
    commission_q = (
        ledger.readable(principal)
        .with_only_columns(func.coalesce(func.sum(e.amount_minor), 0))
        .where(
            e.program_id == program_id,
            e.period_month >= months[0],
            e.period_month < months[1],
        )
    )
    if partner_id is not None:
        clicks_q = clicks_q.where(r.partner_id == partner_id)
        conv_q = conv_q.where(Conversion.partner_id == partner_id)
        commission_q = commission_q.where(e.partner_id == partner_id)
    clicks = int(await session.scalar(clicks_q) or 0)
    leads, sales, revenue, new_customers = (await session.execute(conv_q)).one()
    commission = int(await session.scalar(commission_q) or 0)
    return Actuals(
        clicks=clicks,
        leads=int(leads),
        sales=int(sales),
        revenue_minor=int(revenue),
        new_customers=int(new_customers),
        commission_minor=commission,
    )
