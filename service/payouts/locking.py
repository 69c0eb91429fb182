"""Locking a run's entries into its payouts, and giving a payout's entries back: the
statements that move entries between unpaid_entries and payout_entries."""

from __future__ import annotations

import typing
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Select,
    Table,
    Text,
    cast,
    column,
    delete,
    exists,
    func,
    literal,
    select,
)
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.ext.asyncio import AsyncSession

from service.kit.planner import planner
from service.models import (
    CommissionEntry,
    Conversion,
    ConversionStatus,
    Partner,
    Payout,
    PayoutEntry,
    PayoutStatus,
    UnpaidEntry,
)
from service.payouts.repository import UUIDS, one_of

# The DML below runs on the tables, not the mapped classes: the ORM's bulk paths would
# add RETURNING to synchronise objects no caller holds.
_entries = typing.cast(Table, CommissionEntry.__table__)
_payouts = typing.cast(Table, Payout.__table__)
_links = typing.cast(Table, PayoutEntry.__table__)
_unpaid = typing.cast(Table, UnpaidEntry.__table__)


def _not_in_review(entry_conversion_id: Any) -> ColumnElement[bool]:
    """No conversion of this entry is under review.

    An entry is held while its conversion is under review; rejected conversions
    have written their reversals, so their entries stay payable and net out.
    """
    return ~exists().where(
        Conversion.id == entry_conversion_id, Conversion.status == ConversionStatus.review
    )


Target = tuple[uuid.UUID, uuid.UUID, str]


def _targets(targets: Sequence[Target]) -> Any:
    """The (payout_id, partner_id, currency) triples as rows: one unnest over three arrays."""
    return (
        func.unnest(
            literal([t[0] for t in targets], UUIDS),
            literal([t[1] for t in targets], UUIDS),
            literal([t[2] for t in targets], ARRAY(Text)),
        )
        .table_valued(
            column("payout_id", UUID(as_uuid=True)),
            column("partner_id", UUID(as_uuid=True)),
            column("currency", Text),
        )
        .render_derived(name="m")
    )


# A run's payouts as the run lists them: these columns, in this order (runs.py unpacks them).
_LISTED = (
    "id",
    "partner_id",
    "currency",
    "amount_minor",
    "entry_count",
    "status",
    "period_start",
    "period_end",
)


def run_listing(payouts: Any) -> Select[Any]:
    """Payouts (the table, or rows just inserted into it) with their partner's name, in the
    order a run lists them: id, partner_id, name, currency, amount_minor, entry_count,
    status, period_start, period_end."""
    c = payouts.c
    listed = [c[name] for name in _LISTED]
    return (
        select(*listed[:2], Partner.name, *listed[2:])
        .join(Partner, Partner.id == c.partner_id)
        .order_by(Partner.name, c.partner_id, c.currency)
    )


async def lock_entries(
    session: AsyncSession,
    run_id: uuid.UUID,
    targets: Sequence[Target],
    as_of: datetime,
    program_id: uuid.UUID | None,
) -> list[Any]:
    """Lock the payable entries into new payouts of the run, one per target that locked any.

    One statement: the payable rows are deleted from unpaid_entries, what the DELETE
    returns is inserted into payout_entries, and summed into the payouts, which are
    inserted with their totals (and the partner's payout method copied); the entries
    themselves are not written. Runs over overlapping scopes are serialised (lock_scope);
    a DELETE also waits on rows another transaction deleted, and skips them once it
    commits: an entry is linked only by the one statement that deleted its unpaid row.
    Returns the payouts as a run lists them (run_listing); a target that locked
    nothing has no payout.
    """
    if not targets:
        return []
    m = _targets(targets)
    u = _unpaid.c
    payable = [
        u.partner_id == m.c.partner_id,
        u.currency == m.c.currency,
        u.available_at <= as_of,
        _not_in_review(u.conversion_id),
    ]
    if program_id is not None:
        payable.append(u.program_id == program_id)
    chosen = (
        delete(_unpaid)
        .where(*payable)
        .returning(
            u.entry_id.label("entry_id"),
            m.c.payout_id,
            m.c.partner_id,
            m.c.currency,
            u.amount_minor,
            u.available_at,
        )
        .cte("chosen")
    )
    locked = (
        _links.insert()
        .from_select(
            ["entry_id", "payout_id"],
            # In key order, (payout_id, entry_id): the run's payouts have the newest ids,
            # so the primary key only grows at its end, a page after another.
            select(chosen.c.entry_id, chosen.c.payout_id).order_by(
                chosen.c.payout_id, chosen.c.entry_id
            ),
        )
        .cte("locked")
    )
    totals = (
        select(
            chosen.c.payout_id,
            chosen.c.partner_id,
            chosen.c.currency,
            cast(func.sum(chosen.c.amount_minor), BigInteger).label("amount"),
            func.count().label("n"),
            func.min(chosen.c.available_at).label("first_at"),
            func.max(chosen.c.available_at).label("last_at"),
        )
        .group_by(chosen.c.payout_id, chosen.c.partner_id, chosen.c.currency)
        .subquery("totals")
    )
    p = Partner
    rows = select(
        totals.c.payout_id,
        literal(run_id, UUID(as_uuid=True)),
        totals.c.partner_id,
        totals.c.currency,
        totals.c.amount,
        totals.c.n,
        literal(PayoutStatus.open.value),
        totals.c.first_at,
        totals.c.last_at,
        p.payout_method,
        p.payout_details,
    ).join(p, p.id == totals.c.partner_id)
    columns = (
        "id",
        "run_id",
        "partner_id",
        "currency",
        "amount_minor",
        "entry_count",
        "status",
        "period_start",
        "period_end",
        "payout_method",
        "payout_details",
    )
    inserted = (
        _payouts.insert()
        .from_select(columns, rows)
        .returning(*(_payouts.c[name] for name in _LISTED))
        .cte("inserted")
    )
    stmt = run_listing(inserted).add_cte(locked)
    # The planner takes unnest() for 100 rows and would look up each partner's unpaid
    # entries by index, once per partner; one hash join over the unpaid entries is
    # what thousands of partners need.
    async with planner(session, enable_nestloop="off"):
        return list(await session.execute(stmt))


async def release_entries(session: AsyncSession, payout_ids: Sequence[uuid.UUID]) -> int:
    """Give the entries of these payouts back to the unpaid balance.

    Their links are deleted and the entries put back in unpaid_entries in one
    statement, so that no entry is ever in both or in neither.
    """
    if not payout_ids:
        return 0
    released = (
        delete(_links)
        .where(one_of(_links.c.payout_id, payout_ids))
        .returning(_links.c.entry_id)
        .cte("released")
    )
    e = _entries.c
    columns = [c.name for c in _unpaid.c if c.name != "entry_id"]
    back = select(e.id, *(e[name] for name in columns)).join(released, released.c.entry_id == e.id)
    stmt = _unpaid.insert().from_select(["entry_id", *columns], back).add_cte(released)
    result = await session.execute(stmt)
    return int(result.rowcount)  # type: ignore[attr-defined]


async def delete_payouts(session: AsyncSession, payout_ids: Sequence[uuid.UUID]) -> None:
    """Drop payouts of a run in progress that ended up with nothing to pay."""
    if payout_ids:
        await session.execute(delete(_payouts).where(one_of(_payouts.c.id, payout_ids)))
