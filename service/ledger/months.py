"""Month totals: one row per partner-month and rule event, locked while it changes."""

from __future__ import annotations

import typing
import uuid
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import Table, bindparam, func, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from service.commissions.state import MonthState
from service.kit.driver import Prepared
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


_month_totals = typing.cast(Table, MonthTotal.__table__)
_KEY = ("partner_id", "program_id", "month", "event")


def _key_params() -> list[Any]:
    return [_month_totals.c[k] == bindparam(f"k_{k}", type_=_month_totals.c[k].type) for k in _KEY]


def key(partner_id: uuid.UUID, program_id: uuid.UUID, month: date, event: str) -> dict[str, Any]:
    """The parameters naming one month row, for LOCK and SAVE."""
    return {
        "k_partner_id": partner_id,
        "k_program_id": program_id,
        "k_month": month,
        "k_event": event,
    }


# Built once: as Core statements on the table, so that neither the ORM's DML paths nor
# the statement's construction run per conversion.
# The month's row, made if new and locked either way, with its state: an upsert that touches
# the row takes its lock and returns it in one round trip (as a statement of its own, or as
# a CTE of the statement that reads the terms too, in ledger.service).
LOCK = (
    insert(_month_totals)
    .values({**{k: bindparam(f"k_{k}", type_=_month_totals.c[k].type) for k in _KEY}, "state": {}})
    .on_conflict_do_update(index_elements=list(_KEY), set_={"state": _month_totals.c.state})
    .returning(_month_totals.c.state)
)
_LOCK = Prepared(LOCK)
# The save, as a statement of its own or as a CTE of the entries' insert (see save_params).
SAVE = (
    update(_month_totals)
    .where(*_key_params())
    .values(state=bindparam("new_state", type_=_month_totals.c.state.type), updated_at=func.now())
)
_SAVE = Prepared(SAVE)


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
    row = await _LOCK.fetchrow(session, key(partner_id, program_id, month, event))
    assert row is not None  # the upsert returns the row it inserted or locked
    return state_from_json(row[0] or {})


async def save_month(
    session: AsyncSession,
    partner_id: uuid.UUID,
    program_id: uuid.UUID,
    month: date,
    event: str,
    state: MonthState,
) -> None:
    """Store the month's new state (its row is already locked by lock_month)."""
    await save(session, save_params(partner_id, program_id, month, event, state))


async def save(session: AsyncSession, params: dict[str, Any]) -> None:
    """Store a month's new state (its row already locked by lock_month); `params` are
    save_params'."""
    await _SAVE.fetch(session, params)


def save_params(
    partner_id: uuid.UUID, program_id: uuid.UUID, month: date, event: str, state: MonthState
) -> dict[str, Any]:
    """The parameters of SAVE."""
    return {**key(partner_id, program_id, month, event), "new_state": state_to_json(state)}
