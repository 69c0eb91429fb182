"""Adjustments: an admin's bonus or correction, written as a ledger entry of kind
`adjustment` through the ledger's own writer, payable like any other entry."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from service import audit
from service.agreements.service import in_force
from service.auth.keys import Principal
from service.commissions.state import EntryDraft, MonthState, Outcome
from service.errors import ValidationFailed
from service.events import announce
from service.kit.money import MoneyError, format_amount, parse_amount
from service.kit.time import month_start, utc_now
from service.ledger.service import draft_entries, write_drafted
from service.models import CommissionEntry, EntryKind
from service.partnering import membership
from service.partnering.adjustments.schemas import AdjustmentCreate


def _amount(body: AdjustmentCreate, currency: str) -> Decimal:
    errors = []
    amount = Decimal(0)
    if body.currency.upper() != currency:
        errors.append(
            {"field": "currency", "message": f"must be the program's currency {currency}"}
        )
    else:
        try:
            amount = parse_amount(body.amount, currency, allow_negative=True)
        except MoneyError as exc:
            errors.append({"field": "amount", "message": str(exc)})
        else:
            if amount == 0:
                errors.append({"field": "amount", "message": "must not be zero"})
    if errors:
        raise ValidationFailed(errors)
    return amount


async def create_adjustment(
    session: AsyncSession, body: AdjustmentCreate, by: Principal
) -> CommissionEntry:
    """Write one adjustment entry for a partner of the program, available now."""
    program = await membership.program_for(session, body.program_id, by)
    partner = await membership.partner_in_program(
        session, body.partner_id, program, field="partner_id"
    )
    amount = _amount(body, program.currency)
    now = utc_now()
    found = await in_force(session, partner.id, program.id, now, program.currency)
    explain = {"reason": body.reason, "amount": format_amount(amount, program.currency)}
    # Outside every rule: it moves no month total, so tiers and caps are not touched.
    outcome = Outcome(
        entries=(
            EntryDraft(kind=EntryKind.adjustment, amount=amount, beneficiary="partner", explain={}),
        ),
        new_state=MonthState.empty(),
        explain=explain,
    )
    rows = draft_entries(
        outcome,
        partner_id=partner.id,
        parent_id=None,
        program_id=program.id,
        currency=program.currency,
        conversion_id=None,
        refund_id=None,
        available_at=now,
        agreement_id=found.agreement.id if found else None,
        agreement_version=found.version.version if found else None,
        month=month_start(now, program.time_zone),
        event="adjust",
        context=explain,
    )
    await write_drafted(session, rows, None)
    (row,) = rows
    audit.record(
        session,
        by,
        "adjustment.created",
        "commission_entry",
        row.id,
        {"partner_id": partner.id, "program_id": program.id, **explain},
    )
    await announce.entries(session, [row])
    return row
