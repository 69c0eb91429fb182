"""Payouts summed and listed: a run's payouts and totals, the paid report, what was paid."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, and_, cast, func, select
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.ext.asyncio import AsyncSession

from service.auth.keys import Principal
from service.ledger import repository as commissions
from service.models import CommissionEntry, Partner, Payout, PayoutEntry, PayoutStatus
from service.payouts import locking
from service.payouts import repository as repo


async def run_payouts(session: AsyncSession, run_id: uuid.UUID) -> list[Any]:
    """The payouts of a run as a run lists them (locking.run_listing), then the partner's email
    and the payout's method and details."""
    p = Payout
    rows = await session.execute(
        locking.run_listing(Payout.__table__)
        .add_columns(Partner.email, p.payout_method, p.payout_details)
        .where(p.run_id == run_id)
    )
    return list(rows)


async def run_totals(
    session: AsyncSession, run_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, dict[str, tuple[int, int]]]:
    """Amount and count of payouts per run and currency."""
    p = Payout
    rows = await session.execute(
        select(p.run_id, p.currency, cast(func.sum(p.amount_minor), BigInteger), func.count())
        .where(repo.one_of(p.run_id, run_ids))
        .group_by(p.run_id, p.currency)
        .order_by(p.run_id, p.currency)
    )
    out: dict[uuid.UUID, dict[str, tuple[int, int]]] = {}
    for run_id, currency, amount, count in rows:
        out.setdefault(run_id, {})[currency] = (amount, count)
    return out


async def paid_report(session: AsyncSession, start: datetime, end: datetime) -> list[Any]:
    """Paid payouts with paid_at in [start, end), per partner and currency."""
    p = Payout
    rows = await session.execute(
        select(
            p.partner_id,
            Partner.name,
            Partner.email,
            p.currency,
            cast(func.sum(p.amount_minor), BigInteger),
            func.count(),
            func.array_agg(aggregate_order_by(p.reference, p.paid_at, p.id)),
        )
        .join(Partner, Partner.id == p.partner_id)
        .where(p.status == PayoutStatus.paid, p.paid_at >= start, p.paid_at < end)
        .group_by(p.partner_id, Partner.name, Partner.email, p.currency)
        .order_by(Partner.name, p.partner_id, p.currency)
    )
    return list(rows)


async def paid_sums(
    session: AsyncSession,
    principal: Principal,
    program_id: uuid.UUID | None,
    partner_id: uuid.UUID | None,
) -> dict[tuple[uuid.UUID, str], int]:
    """Readable entries locked into paid payouts, summed per partner and currency."""
    e = CommissionEntry
    stmt = (
        commissions.readable(principal)
        .with_only_columns(e.partner_id, e.currency, repo.summed(e.amount_minor))
        .join(PayoutEntry, PayoutEntry.entry_id == e.id)
        .join(
            Payout,
            and_(
                Payout.id == PayoutEntry.payout_id,
                Payout.status == PayoutStatus.paid,
                # Implied by the lock; stated so that one partner's sums start from its
                # payouts and read their links by key (payout_entries has no index on
                # entry_id).
                Payout.partner_id == e.partner_id,
                Payout.currency == e.currency,
            ),
        )
        .group_by(e.partner_id, e.currency)
    )
    if program_id is not None:
        stmt = stmt.where(e.program_id == program_id)
    if partner_id is not None:
        stmt = stmt.where(e.partner_id == partner_id)
    return {(r[0], r[1]): int(r[2]) for r in await session.execute(stmt)}
