"""Month totals: one row per partner-month and rule event, locked while it changes."""

from __future__ import annotations

import uuid
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import func, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from service.commissions.state import MonthState
from service.models import MonthTotal


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
