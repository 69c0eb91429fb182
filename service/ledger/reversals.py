"""Reversing what a conversion earned: for a refund of part or all of it, and for its
rejection (by the fraud rules, or in review)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import and_, bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from service.agreements.service import load_terms
from service.commissions.engine import compute_refund
from service.commissions.state import RefundInput, stored_items
from service.events import announce, outbox
from service.kit.columns import Columns
from service.kit.driver import Prepared
from service.kit.money import from_minor
from service.kit.time import month_start
from service.ledger import months
from service.ledger.service import draft_entries, entry_params, write_drafted
from service.models import AgreementVersion, CommissionEntry, Conversion, Partner, Program

NOTHING_TO_REVERSE = "the conversion earned nothing to reverse"


# Built once: what a reversal reads, in one round trip where five were. The month's row is
# upserted and locked (months.LOCK, a CTE; the lock the reversal's entries are computed
# under), and beside it: what the conversion earned its partner so far and when its first
# entry became available (both kept steady by the conversion's row lock, which every writer
# of a conversion's entries holds), the partner, and the agreement version the conversion
# was computed under.
_PARTNER = Columns(Partner)
_VERSION = Columns(AgreementVersion)
_reversed_month = months.LOCK.cte("month")
_of_conversion = bindparam("conversion_id", type_=CommissionEntry.conversion_id.type)
_REVERSAL = Prepared(
    select(
        _reversed_month.c.state,
        select(func.coalesce(func.sum(CommissionEntry.amount_minor), 0))
        .where(
            CommissionEntry.conversion_id == _of_conversion,
            CommissionEntry.partner_id == bindparam("partner_id", type_=Partner.id.type),
        )
        .scalar_subquery(),
        select(func.min(CommissionEntry.available_at))
        .where(CommissionEntry.conversion_id == _of_conversion)
        .scalar_subquery(),
        # The event subscriptions' version: the reversal's entries are announced next.
        outbox.VERSION,
        *_PARTNER.columns,
        *_VERSION.columns,
    )
    .select_from(_reversed_month)
    .join(Partner, Partner.id == bindparam("partner_id", type_=Partner.id.type))
    .join(
        AgreementVersion,
        and_(
            AgreementVersion.agreement_id
            == bindparam("agreement_id", type_=AgreementVersion.agreement_id.type),
            AgreementVersion.version
            == bindparam("agreement_version", type_=AgreementVersion.version.type),
        ),
    )
)


@dataclass(frozen=True)
class Planned:
    """A reversal computed under its month's lock, not yet written: its entries (every
    column but created_at), the month's new totals (months.save_params; None when the
    conversion earned nothing to reverse) and what it reversed, for the audit trail."""

    entries: list[CommissionEntry]
    totals: dict[str, Any] | None
    summary: dict[str, Any]

    def params(self) -> dict[str, Any]:
        """The parameters of ledger.entry_ctes(len(entries), save_month=totals is not None)."""
        return {**entry_params(self.entries), **(self.totals or {})}


async def plan_reversal(
    session: AsyncSession,
    conversion: Conversion,
    program: Program,
    *,
    amount_minor: int,
    refunded_before_minor: int,
    refund_id: uuid.UUID | None,
    full: bool,
    reason: str,
) -> Planned:
    """The reversal of part or all of a conversion (program currency minor units), its
    month locked until the transaction ends; a full one leaves the conversion not counted."""
    if conversion.partner_id is None or not conversion.counted:
        return Planned([], None, {"reversed": "0", "note": NOTHING_TO_REVERSE})
    assert conversion.agreement_id is not None and conversion.agreement_version is not None
    event = conversion.type
    month = month_start(conversion.occurred_at, program.time_zone)
    rows = await _REVERSAL.fetch(
        session,
        {
            "partner_id": conversion.partner_id,
            "conversion_id": conversion.id,
            "agreement_id": conversion.agreement_id,
            "agreement_version": conversion.agreement_version,
            **months.key(conversion.partner_id, program.id, month, event),
        },
    )
    assert rows, "the conversion's partner and agreement version are kept by foreign keys"
    found = rows[0]
    state = months.state_from_json(found[0] or {})
    earned, original_available = found[1], found[2]
    await outbox.hold(session, found[3])
    partner = _PARTNER.detached(found, 4)
    # Reversals use the terms the conversion was computed under, whatever came since.
    terms = load_terms(_VERSION.detached(found, 4 + len(_PARTNER)), program.currency)
    total_minor = conversion.program_amount_minor or 0
    outcome = compute_refund(
        terms,
        RefundInput(
            event=event,  # type: ignore[arg-type]
            amount=from_minor(amount_minor, program.currency),
            conversion_amount=from_minor(total_minor, program.currency),
            refunded_before=from_minor(refunded_before_minor, program.currency),
            items=stored_items(conversion.items, conversion.fx_rate),
            earned=from_minor(int(earned or 0), program.currency),
            full=full,
            counted=True,
        ),
        state,
        program.currency,
        has_parent=partner.parent_id is not None,
    )
    # A terms' hold of 0 days is a hold of 0 days, not "use the program's".
    hold_days = conversion.hold_days if conversion.hold_days is not None else program.hold_days
    entries = draft_entries(
        outcome,
        partner_id=partner.id,
        parent_id=partner.parent_id,
        program_id=program.id,
        currency=program.currency,
        conversion_id=conversion.id,
        refund_id=refund_id,
        # With the entries they reverse: netted together when unpaid, clawed back when paid.
        available_at=original_available or conversion.occurred_at + timedelta(days=hold_days),
        agreement_id=conversion.agreement_id,
        agreement_version=conversion.agreement_version,
        month=month,
        event=event,
        context={"reason": reason},
    )
    if full:
        conversion.counted = False
    return Planned(
        entries,
        months.save_params(partner.id, program.id, month, event, outcome.new_state),
        {
            "reversed": f"{outcome.partner_total():f}",
            "parent_reversed": f"{outcome.parent_total():f}",
        },
    )


async def write_reversal(session: AsyncSession, planned: Planned) -> None:
    """Write a planned reversal (its entries with the month's new totals; nothing when the
    conversion earned nothing to reverse) and announce its entries."""
    if planned.totals is not None:
        await write_drafted(session, planned.entries, planned.totals)
        await announce.entries(session, planned.entries)
