"""What a run would pay now: balances per partner and currency against their minimums."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from service.auth.keys import Principal
from service.errors import NotFound
from service.kit.money import MoneyError, format_minor, parse_amount, to_minor
from service.kit.time import utc_now
from service.payouts import repository as repo
from service.payouts.rules import Balance, balances
from service.payouts.schemas import Preview, PreviewItem, PreviewTotals


async def compute_balances(
    session: AsyncSession, by: Principal, as_of: datetime, program_id: uuid.UUID | None
) -> list[Balance]:
    """Per partner and currency: payable, pending, on hold and the minimum that applies."""
    slices = await repo.unpaid_slices(session, by, as_of, program_id)
    program_ids = sorted({s.program_id for s in slices})
    programs = await repo.program_minimums(session, program_ids)
    minimums: dict[tuple[uuid.UUID, uuid.UUID], int] = {}
    for s in slices:
        minimums[(s.partner_id, s.program_id)] = programs[s.program_id][1]
    # The agreement's terms may set their own min_payout (in the program currency).
    for partner_id, pid, text_value in await repo.agreement_minimums(session, program_ids, as_of):
        if (partner_id, pid) not in minimums:
            continue
        try:
            currency = programs[pid][0]
            minimums[(partner_id, pid)] = to_minor(parse_amount(text_value, currency), currency)
        except MoneyError:
            continue  # terms are validated on write; a bad value falls back to the program's
    return balances(slices, minimums)


async def ensure_program(session: AsyncSession, program_id: uuid.UUID | None) -> None:
    """A 404 for a program_id that names no program."""
    if program_id is None:
        return
    if not await repo.program_minimums(session, [program_id]):
        raise NotFound(f"program {program_id} does not exist")


async def build_preview(
    session: AsyncSession, by: Principal, as_of: datetime | None, program_id: uuid.UUID | None
) -> Preview:
    """What a run at as_of would pay, hold and carry, per partner and currency."""
    when = as_of or utc_now()
    await ensure_program(session, program_id)
    rows = await compute_balances(session, by, when, program_id)
    partners = await repo.partner_infos(session, sorted({b.partner_id for b in rows}))
    items: list[PreviewItem] = []
    sums: dict[str, dict[str, int]] = {}
    for b in rows:
        info = partners[b.partner_id]
        cur = b.currency
        items.append(
            PreviewItem(
                partner_id=b.partner_id,
                partner_name=info.name,
                partner_email=info.email,
                payout_method=info.payout_method,
                currency=cur,
                payable=format_minor(b.payable, cur),
                pending=format_minor(b.pending, cur),
                on_hold=format_minor(b.on_hold, cur),
                carried=format_minor(b.carried, cur),
                min_payout=format_minor(b.min_payout, cur),
                eligible=b.eligible,
                entry_count=b.payable_count,
            )
        )
        t = sums.setdefault(cur, dict.fromkeys(_PREVIEW_SUMS, 0))
        t["payable"] += b.payable
        t["pending"] += b.pending
        t["on_hold"] += b.on_hold
        t["carried"] += b.carried
        if b.eligible:
            t["eligible_count"] += 1
            t["amount_to_pay"] += b.payable
    items.sort(key=lambda i: (i.partner_name, str(i.partner_id), i.currency))
    totals = {
        cur: PreviewTotals(
            payable=format_minor(t["payable"], cur),
            pending=format_minor(t["pending"], cur),
            on_hold=format_minor(t["on_hold"], cur),
            carried=format_minor(t["carried"], cur),
            eligible_count=t["eligible_count"],
            amount_to_pay=format_minor(t["amount_to_pay"], cur),
        )
        for cur, t in sorted(sums.items())
    }
    return Preview(as_of=when, program_id=program_id, items=items, totals=totals)


_PREVIEW_SUMS = ("payable", "pending", "on_hold", "carried", "eligible_count", "amount_to_pay")
