"""Month state under lock, and ledger entries written from the engine's outcomes."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import func, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from service.commissions.state import MonthState, Outcome
from service.kit.money import to_minor
from service.models import CommissionEntry, MonthTotal


def state_to_json(state: MonthState) -> dict[str, Any]:
    """A MonthState as stored in month_totals.state."""
    return state.as_json()


def state_from_json(data: dict[str, Any]) -> MonthState:
    """The inverse of state_to_json; an empty dict is an empty month."""
    if not data:
        return MonthState.empty()
    return MonthState(
        revenue=Decimal(data.get("revenue") or "0"),
        count=int(data.get("count") or 0),
        category_revenue=tuple(
            sorted((k, Decimal(v)) for k, v in (data.get("category_revenue") or {}).items())
        ),
        commission=Decimal(data.get("commission") or "0"),
        override=Decimal(data.get("override") or "0"),
    )


async def lock_month(
    session: AsyncSession,
    partner_id: uuid.UUID,
    program_id: uuid.UUID,
    month: date,
    event: str,
) -> MonthState:
    """The month's state, with its row locked until the transaction ends.

    The lock serialises every conversion, refund and rejection of one partner-month,
    so that two of them cannot both take the same tier or cap room.
    """
    # An upsert that touches the row takes its lock and returns it in one round trip.
    stmt = insert(MonthTotal).values(
        partner_id=partner_id, program_id=program_id, month=month, event=event, state={}
    )
    data = await session.scalar(
        stmt.on_conflict_do_update(
            index_elements=["partner_id", "program_id", "month", "event"],
            set_={"state": MonthTotal.state},
        ).returning(MonthTotal.state)
    )
    return state_from_json(data or {})


async def save_month(
    session: AsyncSession,
    partner_id: uuid.UUID,
    program_id: uuid.UUID,
    month: date,
    event: str,
    state: MonthState,
) -> None:
    """Store the month's new state (its row is already locked by lock_month)."""
    await session.execute(
        update(MonthTotal)
        .where(
            MonthTotal.partner_id == partner_id,
            MonthTotal.program_id == program_id,
            MonthTotal.month == month,
            MonthTotal.event == event,
        )
        .values(state=state_to_json(state), updated_at=func.now())
    )


def write_entries(
    session: AsyncSession,
    outcome: Outcome,
    *,
    partner_id: uuid.UUID,
    parent_id: uuid.UUID | None,
    program_id: uuid.UUID,
    currency: str,
    conversion_id: uuid.UUID | None,
    refund_id: uuid.UUID | None,
    available_at: datetime,
    agreement_id: uuid.UUID | None,
    agreement_version: int | None,
    month: date,
    event: str,
    context: dict[str, Any],
) -> list[CommissionEntry]:
    """Add one ledger row per drafted entry; the parent's go to the parent."""
    rows = []
    for draft in outcome.entries:
        beneficiary = partner_id if draft.beneficiary == "partner" else parent_id
        if beneficiary is None:
            continue
        row = CommissionEntry(
            partner_id=beneficiary,
            program_id=program_id,
            conversion_id=conversion_id,
            refund_id=refund_id,
            kind=draft.kind,
            amount_minor=to_minor(draft.amount, currency),
            currency=currency,
            available_at=available_at,
            agreement_id=agreement_id,
            agreement_version=agreement_version,
            period_month=month,
            rule_event=event,
            explain={**draft.explain, **context, "beneficiary": draft.beneficiary},
        )
        session.add(row)
        rows.append(row)
    return rows
