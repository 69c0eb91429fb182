"""Writing the ledger: what a conversion earns, and the reversals of refunds and rejections."""

from __future__ import annotations

import functools
import typing
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import CTE, Table, bindparam, exists, func, insert, select, union_all
from sqlalchemy.ext.asyncio import AsyncSession

from service.agreements.service import (
    OF_PAIR,
    PAIR,
    PAIR_COLUMNS,
    in_force_of,
)
from service.commissions.engine import compute_conversion
from service.commissions.state import (
    ConversionInput,
    Outcome,
    stored_items,
)
from service.events import announce
from service.kit.columns import Columns
from service.kit.driver import Prepared
from service.kit.ids import new_id
from service.kit.money import from_minor, to_minor
from service.kit.time import month_start
from service.ledger import months
from service.models import CommissionEntry, Conversion, Partner, Program

_entries = typing.cast(Table, CommissionEntry.__table__)
_ENTRY = Columns(CommissionEntry)
# What a conversion counted is noted on it: a new draft without change events (fill).
_CONVERSIONS = Columns(Conversion)


@functools.lru_cache(maxsize=32)
def _insert_entries(count: int, save_month: bool) -> Prepared:
    # Built once per number of rows: the entries of one outcome go in as one multi-row
    # INSERT, with the month's new totals (one round trip), and nothing is read back: the
    # server sets only their created_at, its now(), the transaction's start.
    return Prepared(select(func.now()).add_cte(*entry_ctes(count, save_month=save_month)))


def draft_entries(
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
    """One ledger row per drafted entry (the parent's go to the parent), not yet written:
    every column but created_at set, which the database gives (a new entry is in no
    payout: its payout_id is None, and not written, the column's own NULL)."""
    rows = []
    for draft in outcome.entries:
        beneficiary = partner_id if draft.beneficiary == "partner" else parent_id
        if beneficiary is None:
            continue
        rows.append(
            _ENTRY.new(
                id=new_id(),
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
                payout_id=None,
            )
        )
    return rows


def entry_params(rows: list[CommissionEntry]) -> dict[str, Any]:
    """The parameters that write drafted entries (draft_entries), in `entry_ctes` and the
    statements built here."""
    # Every column was given to _ENTRY.new: read from the instances' state.
    return {f"{c}_{i}": row.__dict__[c] for i, row in enumerate(rows) for c in _ENTRY_COLUMNS}


async def write_drafted(
    session: AsyncSession, rows: list[CommissionEntry], totals: dict[str, Any] | None
) -> None:
    """Write drafted entries (draft_entries), and with `totals` (months.save_params, of the
    month locked by lock_month) the month's new totals in the same statement; each row
    then holds the created_at the database gave it."""
    if not rows:
        if totals is not None:
            await months.save(session, totals)
        return
    if session.new:
        # The refund (or anything else new) an entry refers to goes in first.
        await session.flush(list(session.new))
    params = entry_params(rows)
    if totals is not None:
        params.update(totals)
    now = await _insert_entries(len(rows), totals is not None).fetchrow(session, params)
    assert now is not None
    for row in rows:
        row.created_at = now[0]


_ENTRY_COLUMNS = (
    "id",
    "partner_id",
    "program_id",
    "conversion_id",
    "refund_id",
    "kind",
    "amount_minor",
    "currency",
    "available_at",
    "agreement_id",
    "agreement_version",
    "period_month",
    "rule_event",
    "explain",
)


@dataclass(frozen=True)
class Earning:
    """What a new conversion earns, computed under its month's lock, not yet written."""

    partner: Partner
    program: Program
    month: date
    event: str
    outcome: Outcome
    available_at: datetime
    agreement_id: uuid.UUID
    agreement_version: int
    hold_days: int


# Built once: one round trip where two were, for every conversion that has a partner. The
# month's row is upserted and locked (months.LOCK, a CTE) and the pair's agreements with
# their versions are read beside it: a row per version, or one with NULLs when the pair has
# none, each with the month's state first. More columns may follow (TERMS_WIDTH on): a
# conversion's intake reads its fraud facts in the same statement.
_month = months.LOCK.cte("month")
TERMS_AND_MONTH = select(_month.c.state, *PAIR_COLUMNS).select_from(_month.outerjoin(PAIR, OF_PAIR))
TERMS_WIDTH = 1 + len(PAIR_COLUMNS)
_TERMS_AND_MONTH = Prepared(TERMS_AND_MONTH)


def terms_and_month_params(
    conversion: Conversion, program: Program, partner: Partner
) -> tuple[date, dict[str, Any]]:
    """The month a new conversion counts in, and the parameters of TERMS_AND_MONTH for it."""
    month = month_start(conversion.occurred_at, program.time_zone)
    return month, {
        "partner_id": partner.id,
        "program_id": program.id,
        **months.key(partner.id, program.id, month, conversion.type),
    }


async def plan_earning(
    session: AsyncSession,
    conversion: Conversion,
    program: Program,
    partner: Partner,
    recurring_since: datetime | None,
) -> Earning | None:
    """Compute what a new conversion earns under the agreement in force, its month locked
    until the transaction ends, and note on the conversion what it counted; None when it
    earns nothing (the note says why). Nothing is written until write_earning."""
    # The month is locked with the terms' read, before they say whether it earns: a
    # conversion that earns nothing leaves an empty month row, locked until the
    # transaction ends, which is harmless (a replay leaves the same).
    month, params = terms_and_month_params(conversion, program, partner)
    rows = await _TERMS_AND_MONTH.fetch(session, params)
    return earning_of(rows, month, conversion, program, partner, recurring_since)


def earning_of(
    rows: Sequence[Sequence[Any]],
    month: date,
    conversion: Conversion,
    program: Program,
    partner: Partner,
    recurring_since: datetime | None,
) -> Earning | None:
    """plan_earning, from the rows of TERMS_AND_MONTH read for the conversion's `month`."""
    at = conversion.occurred_at
    event = conversion.type
    state = months.state_from_json(rows[0][0] or {})
    found = in_force_of(rows, 1, at, program.currency)
    if found is None:
        _CONVERSIONS.fill(conversion, commission_note="no agreement in force at occurred_at")
        return None
    _CONVERSIONS.fill(
        conversion, agreement_id=found.agreement.id, agreement_version=found.version.version
    )
    if found.terms.rule_for(event) is None:
        _CONVERSIONS.fill(conversion, commission_note=f"the terms have no {event} rule")
        return None
    amount_minor = conversion.program_amount_minor
    outcome = compute_conversion(
        found.terms,
        ConversionInput(
            event=event,  # type: ignore[arg-type]
            amount=None if amount_minor is None else from_minor(amount_minor, program.currency),
            occurred_at=at,
            items=stored_items(conversion.items, conversion.fx_rate),
            recurring_since=recurring_since,
        ),
        state,
        program.currency,
        has_parent=partner.parent_id is not None,
    )
    hold_days = found.terms.hold_days if found.terms.hold_days is not None else program.hold_days
    _CONVERSIONS.fill(
        conversion,
        counted=outcome.new_state != state,
        hold_days=hold_days,
        commission_explain=outcome.explain,
    )
    return Earning(
        partner=partner,
        program=program,
        month=month,
        event=event,
        outcome=outcome,
        available_at=at + timedelta(days=hold_days),
        agreement_id=found.agreement.id,
        agreement_version=found.version.version,
        hold_days=hold_days,
    )


async def write_earning(
    session: AsyncSession, earning: Earning, conversion_id: uuid.UUID
) -> list[CommissionEntry]:
    """Save the month's new totals and write the entries of a planned earning (the
    conversion's row must exist by now); the entries written."""
    rows = earning_entries(earning, conversion_id)
    await write_drafted(session, rows, earning_totals(earning))
    await announce.entries(session, rows)
    return rows


def earning_totals(earning: Earning) -> dict[str, Any]:
    """The month's new totals of a planned earning: months.save_params."""
    partner, program = earning.partner, earning.program
    return months.save_params(
        partner.id, program.id, earning.month, earning.event, earning.outcome.new_state
    )


def earning_entries(earning: Earning, conversion_id: uuid.UUID) -> list[CommissionEntry]:
    """The entries of a planned earning, not yet written (write_drafted, or entry_ctes)."""
    partner, program = earning.partner, earning.program
    return draft_entries(
        earning.outcome,
        partner_id=partner.id,
        parent_id=partner.parent_id,
        program_id=program.id,
        currency=program.currency,
        conversion_id=conversion_id,
        refund_id=None,
        available_at=earning.available_at,
        agreement_id=earning.agreement_id,
        agreement_version=earning.agreement_version,
        month=earning.month,
        event=earning.event,
        context={"hold_days": earning.hold_days},
    )


def entry_ctes(count: int, *, save_month: bool = True, after: CTE | None = None) -> list[CTE]:
    """CTEs that write `count` drafted entries (parameters: entry_params) and, with
    `save_month`, the month's new totals (months.save_params), for a statement that writes
    something else beside them. With `after` (an INSERT ... RETURNING, as a CTE), only when
    that wrote a row: so the statement inserting a new conversion also writes what it
    earns, and a replay, whose insert finds its order taken, writes neither."""
    ctes = []
    if save_month:
        save = months.SAVE if after is None else months.SAVE.where(exists().select_from(after))
        ctes.append(save.cte("saved_month"))
    if count:
        binds = [
            [bindparam(f"{c}_{i}", type_=_entries.c[c].type) for c in _ENTRY_COLUMNS]
            for i in range(count)
        ]
        if after is None:
            rows = [dict(zip(_ENTRY_COLUMNS, row, strict=True)) for row in binds]
            ctes.append(insert(_entries).values(rows).cte("entries"))
        else:
            selects = [select(*row).select_from(after) for row in binds]
            source = selects[0] if count == 1 else union_all(*selects)
            entries = insert(_entries).from_select(list(_ENTRY_COLUMNS), source)
            ctes.append(entries.cte("entries"))
    return ctes


def earning_params(earning: Earning, rows: list[CommissionEntry]) -> dict[str, Any]:
    """The parameters of `entry_ctes` for these rows of the earning and its month."""
    return {**entry_params(rows), **earning_totals(earning)}


async def earn(
    session: AsyncSession,
    conversion: Conversion,
    program: Program,
    partner: Partner,
    recurring_since: datetime | None,
) -> list[CommissionEntry]:
    """Write the entries of a stored conversion under the agreement in force, note what it
    counted; the entries written."""
    earning = await plan_earning(session, conversion, program, partner, recurring_since)
    if earning is None:
        return []
    return await write_earning(session, earning, conversion.id)
