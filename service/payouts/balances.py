"""A partner's money at a glance: payable, pending, on hold (the preview's split) and paid."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession

from service.auth.keys import Principal
from service.errors import NotFound
from service.kit.money import format_minor
from service.kit.time import utc_now
from service.partners import repository as partners
from service.payouts import totals
from service.payouts.preview import compute_balances
from service.programs import repository as programs


class BalanceItem(BaseModel):
    partner_id: uuid.UUID
    currency: str
    payable: str = Field(description="available, not held and in no payout; may be negative")
    pending: str = Field(description="not yet available (hold period)")
    on_hold: str = Field(description="entries of conversions under review")
    paid: str = Field(description="entries in payouts marked paid")


class Balances(BaseModel):
    as_of: datetime
    program_id: uuid.UUID | None
    items: list[BalanceItem]


async def balances(
    session: AsyncSession,
    by: Principal,
    program_id: uuid.UUID | None,
    partner_id: uuid.UUID | None,
) -> Balances:
    """Per partner and currency, within what the caller reads (a partner: itself)."""
    if program_id is not None and await programs.get(session, by, program_id) is None:
        raise NotFound(f"program {program_id} does not exist")
    if partner_id is not None and await partners.get(session, by, partner_id) is None:
        raise NotFound(f"partner {partner_id} does not exist")
    now = utc_now()
    unpaid = {
        (b.partner_id, b.currency): b
        for b in await compute_balances(session, by, now, program_id)
        if partner_id is None or b.partner_id == partner_id
    }
    paid = await totals.paid_sums(session, by, program_id, partner_id)
    items = []
    for pid, cur in sorted(set(unpaid) | set(paid), key=lambda k: (str(k[0]), k[1])):
        b = unpaid.get((pid, cur))
        items.append(
            BalanceItem(
                partner_id=pid,
                currency=cur,
                payable=format_minor(b.payable if b else 0, cur),
                pending=format_minor(b.pending if b else 0, cur),
                on_hold=format_minor(b.on_hold if b else 0, cur),
                paid=format_minor(paid.get((pid, cur), 0), cur),
            )
        )
    return Balances(as_of=now, program_id=program_id, items=items)
