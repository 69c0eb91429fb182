"""Refunds of a sale, once per refund id: the amount left to refund, and the reversals."""

from __future__ import annotations

import functools
import typing
from dataclasses import dataclass
from datetime import UTC
from decimal import Decimal
from operator import attrgetter

from sqlalchemy import Table, bindparam, func, insert, inspect, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from service import audit
from service.auth.keys import Principal
from service.conversions.intake import decimal_or_text, same_request
from service.conversions.schemas import RefundCreate
from service.errors import Conflict, field_error
from service.events import announce
from service.kit.columns import Columns
from service.kit.driver import Prepared, binds
from service.kit.idempotency import request_hash
from service.kit.ids import new_id
from service.kit.money import MoneyError, from_minor, parse_amount, round_to_int, to_minor
from service.kit.time import utc_now
from service.ledger import reversals
from service.ledger import service as ledger
from service.models import AuditEvent, CommissionEntry, Conversion, ConversionStatus, Refund
from service.programs.cache import cached_program


def _refund_hash(body: RefundCreate) -> bytes:
    return request_hash(
        {
            "program_id": body.program_id,
            "order_id": body.order_id,
            "refund_id": body.refund_id,
            "amount": decimal_or_text(body.amount),
            "occurred_at": body.occurred_at,
        }
    )


@dataclass(frozen=True)
class RecordedRefund:
    """A refund as recorded, with its sale: new (with the reversals it wrote) or replayed
    (None: read them from the ledger)."""

    refund: Refund
    conversion: Conversion
    created: bool
    reversals: list[CommissionEntry] | None


def _replayed(existing: Refund, digest: bytes, body: RefundCreate) -> Refund:
    if not same_request(existing.request_hash, digest, body):
        raise Conflict(
            f"refund {body.refund_id!r} was already recorded with other content",
            errors=[{"field": "refund_id", "message": "already recorded with other content"}],
        )
    return existing


async def record_refund(session: AsyncSession, body: RefundCreate, by: Principal) -> RecordedRefund:
    """A refund of part or all of a sale, once per refund_id."""
    program = await cached_program(session, body.program_id)
    if program is None or not by.sees_program(program.id):
        raise field_error("program_id", "no such program")
    digest = _refund_hash(body)
    # The sale first: a refund, new or replayed, is of a stored sale (a stored refund keeps
    # its sale by a foreign key), and under the sale's row lock the refund id is looked up
    # once, settled by whatever refund of the order committed before.
    # Both read as detached objects, not through the session: the sale's changes are
    # written by the statement below, which also tells the object (set_committed_value).
    locked = await _LOCK_SALE.fetchrow(
        session, {"program_id": program.id, "order_id": body.order_id}
    )
    if locked is None:
        raise field_error("order_id", "no sale with this order id in the program")
    conversion = _CONVERSION.detached(locked)
    # The conversion row lock serialises refunds of one order.
    found = await _REFUND_OF_PROGRAM.fetchrow(
        session, {"program_id": program.id, "refund_id": body.refund_id}
    )
    if found is not None:
        existing = _REFUND.detached(found)
        return RecordedRefund(_replayed(existing, digest, body), conversion, False, None)
    if conversion.status == ConversionStatus.rejected:
        raise Conflict("the conversion was rejected; its commissions are already reversed")
    try:
        amount = parse_amount(body.amount, conversion.currency)
    except MoneyError as exc:
        raise field_error("amount", str(exc)) from exc
    if amount <= 0:
        raise field_error("amount", "must be more than zero")
    amount_minor = to_minor(amount, conversion.currency)
    total = conversion.amount_minor or 0
    remaining = total - conversion.refunded_minor
    if amount_minor > remaining:
        raise field_error(
            "amount",
            f"exceeds what remains to refund ({from_minor(remaining, conversion.currency)} "
            f"{conversion.currency})",
        )
    program_total = conversion.program_amount_minor or 0
    before = conversion.refunded_minor
    after = before + amount_minor
    full = after == total

    def in_program(cumulative: int) -> int:
        # Proportional and telescoping: a full refund is exactly the program amount.
        if cumulative == total:
            return program_total
        return round_to_int(Decimal(program_total) * cumulative / total)

    prog_before, prog_after = in_program(before), in_program(after)
    refund = _REFUND.new(
        id=new_id(),
        program_id=program.id,
        conversion_id=conversion.id,
        refund_id=body.refund_id,
        amount_minor=amount_minor,
        currency=conversion.currency,
        program_amount_minor=prog_after - prog_before,
        request_hash=digest,
        created_at=(body.occurred_at or utc_now()).astimezone(UTC),
    )
    reversal = await reversals.plan_reversal(
        session,
        conversion,
        program,
        amount_minor=prog_after - prog_before,
        refunded_before_minor=prog_before,
        refund_id=refund.id,
        full=full,
        reason=f"refund {body.refund_id}",
    )
    trail = audit.values(
        by,
        "conversion.refunded",
        "conversion",
        conversion.id,
        {
            "refund_id": body.refund_id,
            "amount": f"{amount:f}",
            "refunded_total": f"{from_minor(after, conversion.currency):f}",
            **reversal.summary,
        },
    )
    # What the refund writes, in one statement: its row, its reversal's entries with the
    # month's new totals, the sale's new total (and `counted`, which a full refund's
    # reversal turned off) and the audit event.
    written = await _refunded(len(reversal.entries), reversal.totals is not None).fetchrow(
        session,
        {
            **{f"refund_{c}": refund.__dict__[c] for c in _REFUND_COLUMNS},
            **reversal.params(),
            "conversion_id": conversion.id,
            "refunded_minor": after,
            "counted": conversion.counted,
            **{f"audit_{k}": v for k, v in trail.items()},
        },
    )
    assert written is not None  # the sale's row is locked by this transaction
    for entry in reversal.entries:
        # The server's now(), the transaction's start, as the sale's updated_at.
        entry.created_at = written[0]
    # The sale as written: this object, and the one the session holds if a caller loaded
    # the sale through it (a shop's hook does, and reads its total again for its next part).
    identity = inspect(conversion).key
    assert identity is not None  # set by Columns.detached
    held = session.sync_session.identity_map.get(identity)
    for sale_ in (conversion, held):
        if sale_ is None:
            continue
        for key, value in (
            ("refunded_minor", after),
            ("counted", conversion.counted),
            ("updated_at", written[0]),
        ):
            set_committed_value(sale_, key, value)
    await announce.entries(session, reversal.entries)
    await announce.refund(session, refund, conversion)
    # In the ledger's order (by id) as the refund's GET reads them.
    return RecordedRefund(refund, conversion, True, sorted(reversal.entries, key=attrgetter("id")))


# Built once per number of reversal entries (see record_refund): the sale's refunded total
# and `counted`, with the refund's row (every column given: refunds have no server
# defaults), its reversal and the audit event as CTEs of the same statement.
_refunds = typing.cast(Table, Refund.__table__)
_REFUND = Columns(Refund)
_REFUND_COLUMNS = tuple(c.name for c in _REFUND.columns)
_conversions = typing.cast(Table, Conversion.__table__)
_CONVERSION = Columns(Conversion)
# Built once: the sale of an order, locked; a refund of the program by its refund id.
_LOCK_SALE = Prepared(
    select(*_CONVERSION.columns)
    .where(
        _conversions.c.program_id == bindparam("program_id", type_=_conversions.c.program_id.type),
        _conversions.c.type == "sale",
        _conversions.c.order_id == bindparam("order_id", type_=_conversions.c.order_id.type),
    )
    .with_for_update()
)
_REFUND_OF_PROGRAM = Prepared(
    select(*_REFUND.columns).where(
        _refunds.c.program_id == bindparam("program_id", type_=_refunds.c.program_id.type),
        _refunds.c.refund_id == bindparam("refund_id", type_=_refunds.c.refund_id.type),
    )
)
_audit_events = typing.cast(Table, AuditEvent.__table__)
_SALE_REFUNDED = (
    update(_conversions)
    .where(_conversions.c.id == bindparam("conversion_id", type_=_conversions.c.id.type))
    .values(**binds(_conversions, ("refunded_minor", "counted")), updated_at=func.now())
    .returning(_conversions.c.updated_at)
    .add_cte(
        insert(_refunds).values(binds(_refunds, _REFUND_COLUMNS, prefix="refund_")).cte("refund"),
        insert(_audit_events)
        .values(binds(_audit_events, audit.COLUMNS, prefix="audit_"))
        .cte("audited"),
    )
)


@functools.lru_cache(maxsize=16)
def _refunded(entries: int, saves_month: bool) -> Prepared:
    return Prepared(_SALE_REFUNDED.add_cte(*ledger.entry_ctes(entries, save_month=saves_month)))
