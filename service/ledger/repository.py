"""Every read of ledger entries, starting from what a key may see."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from service.auth.keys import Principal
from service.auth.scope import in_programs, of_partner
from service.kit.driver import among
from service.kit.pagination import PageParams, page_of, paginate_query
from service.models import CommissionEntry, PayoutEntry, UnpaidEntry


def readable(principal: Principal) -> Select[CommissionEntry]:
    """The entries a key may read: a partner its own, a bound key its programs' only."""
    return select(CommissionEntry).where(
        in_programs(principal, CommissionEntry.program_id),
        of_partner(principal, CommissionEntry.partner_id),
    )


def readable_unpaid(principal: Principal) -> Select[UnpaidEntry]:
    """The unpaid entries a key may read, by the rule of readable()."""
    return select(UnpaidEntry).where(
        in_programs(principal, UnpaidEntry.program_id),
        of_partner(principal, UnpaidEntry.partner_id),
    )


async def by_conversion(
    session: AsyncSession, principal: Principal, conversion_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[CommissionEntry]]:
    """The readable entries of these conversions, oldest first, in one query."""
    out: dict[uuid.UUID, list[CommissionEntry]] = {cid: [] for cid in conversion_ids}
    if not conversion_ids:
        return out
    rows = await session.scalars(
        readable(principal)
        .where(among(CommissionEntry.conversion_id, conversion_ids))
        .order_by(CommissionEntry.id)
    )
    for row in rows:
        assert row.conversion_id is not None
        out[row.conversion_id].append(row)
    return out


def _in_payout(stmt: Select[CommissionEntry], payout_id: uuid.UUID) -> Select[CommissionEntry]:
    """Only the entries locked into this payout."""
    return stmt.join(PayoutEntry, PayoutEntry.entry_id == CommissionEntry.id).where(
        PayoutEntry.payout_id == payout_id
    )


async def of_payout(
    session: AsyncSession, principal: Principal, payout_id: uuid.UUID
) -> list[CommissionEntry]:
    """The readable entries locked into a payout, by availability."""
    rows = await session.scalars(
        _in_payout(readable(principal), payout_id).order_by(
            CommissionEntry.available_at, CommissionEntry.id
        )
    )
    return list(rows.all())


async def of_refund(
    session: AsyncSession, principal: Principal, refund_id: uuid.UUID
) -> list[CommissionEntry]:
    """The readable reversals written for a refund, oldest first."""
    rows = await session.scalars(
        readable(principal)
        .where(CommissionEntry.refund_id == refund_id)
        .order_by(CommissionEntry.id)
    )
    return list(rows.all())


async def page(
    session: AsyncSession,
    principal: Principal,
    params: PageParams,
    *,
    partner_id: uuid.UUID | None = None,
    program_id: uuid.UUID | None = None,
    conversion_id: uuid.UUID | None = None,
    payout_id: uuid.UUID | None = None,
    kind: str | None = None,
    unpaid: bool | None = None,
) -> tuple[list[CommissionEntry], str | None]:
    """A page of the readable entries, filtered."""
    stmt = readable(principal)
    if partner_id is not None:
        stmt = stmt.where(CommissionEntry.partner_id == partner_id)
    if program_id is not None:
        stmt = stmt.where(CommissionEntry.program_id == program_id)
    if conversion_id is not None:
        stmt = stmt.where(CommissionEntry.conversion_id == conversion_id)
    if payout_id is not None:
        stmt = _in_payout(stmt, payout_id)
    if kind is not None:
        stmt = stmt.where(CommissionEntry.kind == kind)
    if unpaid:
        stmt = stmt.where(
            select(UnpaidEntry.entry_id)
            .where(UnpaidEntry.entry_id == CommissionEntry.id)
            .correlate(CommissionEntry)
            .exists()
        )
    rows = list((await session.scalars(paginate_query(stmt, CommissionEntry.id, params))).all())
    return page_of(rows, params)
