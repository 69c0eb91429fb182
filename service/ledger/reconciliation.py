"""The ledger's books against the payouts: sum(entries) = paid + open + unpaid.

Checked per partner and currency, and per payout (its stored amount and count
against the entries locked into it), over all programs or one; and each entry
in exactly one of payout_entries and unpaid_entries, the latter a true copy.
"""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import BigInteger, ColumnElement, and_, cast, exists, func, or_, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from service.errors import NotFound
from service.kit.money import format_minor
from service.models import (
    CommissionEntry,
    Payout,
    PayoutEntry,
    PayoutRun,
    PayoutStatus,
    Program,
    UnpaidEntry,
)
from service.payouts.schemas import PayoutStatusName


class ReconciliationItem(BaseModel):
    partner_id: uuid.UUID
    currency: str
    entries_total: str
    paid: str
    open: str
    unpaid: str
    balanced: bool


class ReconciliationTotals(BaseModel):
    entries_total: str
    paid: str
    open: str
    unpaid: str
    balanced: bool


class PayoutMismatch(BaseModel):
    payout_id: uuid.UUID
    partner_id: uuid.UUID
    currency: str
    status: PayoutStatusName
    amount: str = Field(description="the payout's stored amount")
    entries_total: str = Field(description="the sum of the entries locked into it")


class Reconciliation(BaseModel):
    program_id: uuid.UUID | None
    items: list[ReconciliationItem]
    totals: dict[str, ReconciliationTotals] = Field(description="per currency")
    mismatches: list[PayoutMismatch] = Field(
        description=(
            "payouts whose amount differs from their entries (failed: any entry left), or of no run"
        )
    )
    balanced: bool


def _sum(expr: Any, when: ColumnElement[bool] | None = None) -> ColumnElement[int]:
    """sum(expr) as bigint, 0 over no rows; only rows where `when` holds, if given."""
    total = func.sum(expr) if when is None else func.sum(expr).filter(when)
    return cast(func.coalesce(total, 0), BigInteger)


async def balance_rows(
    session: AsyncSession, program_id: uuid.UUID | None
) -> list[tuple[uuid.UUID, str, int, int, int, int]]:
    """(partner, currency, entries_total, paid, open, unpaid) per partner and currency.

    Over all programs, paid and open come from the payouts' own amounts, so the
    identity checks the ledger against the payouts rather than against itself.
    A payout may span programs, so for one program they come from its entries.
    """
    e, p, pe = CommissionEntry, Payout, PayoutEntry
    if program_id is None:
        entries = (
            select(
                e.partner_id,
                e.currency,
                cast(func.sum(e.amount_minor), BigInteger).label("total"),
                _sum(e.amount_minor, pe.entry_id.is_(None)).label("unpaid"),
            )
            .outerjoin(pe, pe.entry_id == e.id)
            .group_by(e.partner_id, e.currency)
            .cte("e")
        )
        payouts = (
            select(
                p.partner_id,
                p.currency,
                _sum(p.amount_minor, p.status == PayoutStatus.paid).label("paid"),
                _sum(p.amount_minor, p.status == PayoutStatus.open).label("open"),
            )
            .group_by(p.partner_id, p.currency)
            .cte("p")
        )
        partner = func.coalesce(entries.c.partner_id, payouts.c.partner_id)
        currency = func.coalesce(entries.c.currency, payouts.c.currency)
        stmt = (
            select(
                partner,
                currency,
                func.coalesce(entries.c.total, 0),
                func.coalesce(payouts.c.paid, 0),
                func.coalesce(payouts.c.open, 0),
                func.coalesce(entries.c.unpaid, 0),
            )
            .select_from(entries)
            .join(
                payouts,
                and_(
                    payouts.c.partner_id == entries.c.partner_id,
                    payouts.c.currency == entries.c.currency,
                ),
                full=True,
            )
            .order_by(partner, currency)
        )
    else:
        stmt = (
            select(
                e.partner_id,
                e.currency,
                cast(func.sum(e.amount_minor), BigInteger),
                _sum(e.amount_minor, p.status == PayoutStatus.paid),
                _sum(e.amount_minor, p.status == PayoutStatus.open),
                _sum(e.amount_minor, pe.entry_id.is_(None)),
            )
            .outerjoin(pe, pe.entry_id == e.id)
            .outerjoin(p, p.id == pe.payout_id)
            .where(e.program_id == program_id)
            .group_by(e.partner_id, e.currency)
            .order_by(e.partner_id, e.currency)
        )
    rows = await session.execute(stmt)
    return [(r[0], r[1], r[2], r[3], r[4], r[5]) for r in rows]


async def payout_mismatches(session: AsyncSession, program_id: uuid.UUID | None) -> list[Any]:
    """Payouts whose amount or count differs from their entries; failed ones still holding any;
    any that no run made."""
    e, p, pe = CommissionEntry, Payout, PayoutEntry
    locked = (
        select(
            pe.payout_id,
            cast(func.sum(e.amount_minor), BigInteger).label("total"),
            func.count().label("n"),
        )
        .join(e, e.id == pe.entry_id)
        .group_by(pe.payout_id)
        .subquery("s")
    )
    total = func.coalesce(locked.c.total, 0)
    count = func.coalesce(locked.c.n, 0)
    stmt = (
        select(p.id, p.partner_id, p.currency, p.status, p.amount_minor, total)
        .outerjoin(PayoutRun, PayoutRun.id == p.run_id)
        .outerjoin(locked, locked.c.payout_id == p.id)
        .where(
            or_(
                and_(
                    p.status.in_([PayoutStatus.open, PayoutStatus.paid]),
                    or_(p.amount_minor != total, p.entry_count != count),
                ),
                and_(p.status == PayoutStatus.failed, count > 0),
                # payouts.run_id has no foreign key (migration 0804): a payout of no run
                # is one no run made.
                PayoutRun.id.is_(None),
            )
        )
        .order_by(p.id)
    )
    if program_id is not None:
        of_program = (
            select(pe.payout_id).join(e, e.id == pe.entry_id).where(e.program_id == program_id)
        )
        stmt = stmt.where(or_(p.id.in_(of_program), PayoutRun.program_id == program_id))
    return list(await session.execute(stmt))


async def out_of_step(
    session: AsyncSession, program_id: uuid.UUID | None
) -> set[tuple[uuid.UUID, str]]:
    """(partner, currency) with an entry in both or neither of payout_entries and unpaid_entries,
    or in two payouts.

    Also an unpaid_entries row of no entry, or whose copied columns differ from its entry's:
    runs and previews read unpaid_entries alone, so it must be exactly the entries in no payout.
    """
    e, u, pe = CommissionEntry, UnpaidEntry, PayoutEntry
    copied = ("partner_id", "program_id", "currency", "amount_minor", "available_at")
    differs = tuple_(*(getattr(u, c) for c in copied), u.conversion_id).is_distinct_from(
        tuple_(*(getattr(e, c) for c in copied), e.conversion_id)
    )
    partner = func.coalesce(e.partner_id, u.partner_id)
    currency = func.coalesce(e.currency, u.currency)
    stmt = (
        select(partner, currency)
        .select_from(e)
        .join(u, u.entry_id == e.id, full=True)
        .outerjoin(pe, pe.entry_id == e.id)
        .where(
            or_(
                and_(u.entry_id.is_(None), pe.entry_id.is_(None)),
                and_(u.entry_id.is_not(None), pe.entry_id.is_not(None)),
                e.id.is_(None),
                and_(u.entry_id.is_not(None), differs),
            )
        )
        .group_by(partner, currency)
    )
    # No index keeps an entry in one payout (payout_entries is keyed by payout), so the links
    # are counted per entry: in a statement of its own (over a million links, 0.4 s more);
    # joined into the one above, each parallel worker built the count again (1.3 s more).
    twice = select(pe.entry_id).group_by(pe.entry_id).having(func.count() > 1).subquery("twice")
    linked_twice = select(e.partner_id, e.currency).join(twice, twice.c.entry_id == e.id)
    if program_id is not None:
        stmt = stmt.where(func.coalesce(e.program_id, u.program_id) == program_id)
        linked_twice = linked_twice.where(e.program_id == program_id)
    rows = await session.execute(stmt)
    return {(r[0], r[1]) for r in rows} | {
        (r[0], r[1]) for r in await session.execute(linked_twice)
    }


async def reconciliation(session: AsyncSession, program_id: uuid.UUID | None) -> Reconciliation:
    """sum(entries) = paid + open + unpaid per partner and currency, and per payout."""
    if program_id is not None and not await session.scalar(
        select(exists().where(Program.id == program_id))
    ):
        raise NotFound(f"program {program_id} does not exist")
    mismatches = [
        PayoutMismatch(
            payout_id=r[0],
            partner_id=r[1],
            currency=r[2],
            status=r[3],
            amount=format_minor(r[4], r[2]),
            entries_total=format_minor(r[5], r[2]),
        )
        for r in await payout_mismatches(session, program_id)
    ]
    strays = await out_of_step(session, program_id)
    off = {(m.partner_id, m.currency) for m in mismatches} | strays
    items: list[ReconciliationItem] = []
    sums: dict[str, list[int]] = {}
    unbalanced: set[str] = set()
    for partner_id, cur, total, paid, open_, unpaid in await balance_rows(session, program_id):
        ok = total == paid + open_ + unpaid and (partner_id, cur) not in off
        if not ok:
            unbalanced.add(cur)
        items.append(
            ReconciliationItem(
                partner_id=partner_id,
                currency=cur,
                entries_total=format_minor(total, cur),
                paid=format_minor(paid, cur),
                open=format_minor(open_, cur),
                unpaid=format_minor(unpaid, cur),
                balanced=ok,
            )
        )
        s = sums.setdefault(cur, [0, 0, 0, 0])
        for i, v in enumerate((total, paid, open_, unpaid)):
            s[i] += v
    totals = {
        cur: ReconciliationTotals(
            entries_total=format_minor(s[0], cur),
            paid=format_minor(s[1], cur),
            open=format_minor(s[2], cur),
            unpaid=format_minor(s[3], cur),
            balanced=s[0] == s[1] + s[2] + s[3] and cur not in unbalanced,
        )
        for cur, s in sorted(sums.items())
    }
    return Reconciliation(
        program_id=program_id,
        items=items,
        totals=totals,
        mismatches=mismatches,
        balanced=not mismatches and not strays and all(i.balanced for i in items),
    )
