"""Recording a conversion: parse, idempotency by order id, attribution, fraud, the ledger."""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import typing
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Table,
    bindparam,
    inspect,
    select,
)
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.ext.asyncio import AsyncSession

from service import audit
from service.auth.keys import Principal
from service.conversions import attribution as attr
from service.conversions.customers import bind_customer, binding_cte, binding_params, customer_of
from service.conversions.fx import rate_on
from service.conversions.judging import judge_and_plan
from service.conversions.schemas import ConversionCreate, RefundCreate
from service.errors import Conflict, ValidationFailed, field_error
from service.events import announce, outbox
from service.fraud import rules as fraud
from service.kit.columns import Columns
from service.kit.driver import Prepared
from service.kit.idempotency import request_hash
from service.kit.ids import new_id
from service.kit.money import MoneyError, is_currency, parse_amount, round_money, to_minor
from service.kit.time import utc_now
from service.ledger import reversals
from service.ledger import service as ledger
from service.links.promo_codes import give_back_promo_use
from service.models import (
    AuditEvent,
    CommissionEntry,
    Conversion,
    ConversionStatus,
    Program,
)
from service.programs.cache import cached_program
from service.tracking.clickid import ClickIdSigner


@dataclass(frozen=True)
class Recorded:
    """A conversion as recorded: new or replayed, and, when new and not rejected, the ledger
    entries it wrote (None: read them from the ledger)."""

    conversion: Conversion
    created: bool
    entries: list[CommissionEntry] | None


@dataclass(frozen=True)
class Context:
    """What the conversion path needs from the running app."""

    signer: ClickIdSigner
    email_key: bytes


def keyed_hash(key: bytes, value: str) -> bytes:
    """A keyed hash of a personal value (emails), so the plain value is never stored."""
    return hmac.new(key, value.strip().lower().encode(), hashlib.sha256).digest()


# --- idempotency --------------------------------------------------------------


def _legacy_hash(body: ConversionCreate | RefundCreate) -> bytes:
    # Requests stored before hashes were normalized: their replays must still match.
    raw = body.model_dump(mode="json", exclude_unset=True)
    canonical = json.dumps(raw, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).digest()


def same_request(stored: bytes, digest: bytes, body: ConversionCreate | RefundCreate) -> bool:
    """True when a stored request hash is this request's, normalized or as stored before."""
    return hmac.compare_digest(stored, digest) or hmac.compare_digest(stored, _legacy_hash(body))


def decimal_or_text(text: str) -> Decimal | str:
    """A decimal string as a Decimal for hashing, so that "10.0" and "10.00" hash alike."""
    try:
        value = Decimal(text.strip())
    except (ArithmeticError, ValueError):
        return text
    # Only a plain amount is normalized; anything else is refused later, as it is.
    return value if value.is_finite() and abs(value.adjusted()) <= 30 else text


def _conversion_hash(body: ConversionCreate, parsed: _Parsed) -> bytes:
    return request_hash(
        {
            "program_id": body.program_id,
            "type": body.type,
            "order_id": body.order_id,
            "amount": parsed.amount,
            "currency": parsed.currency,
            "occurred_at": body.occurred_at,
            "click_id": body.click_id,
            "promo_code": body.promo_code,
            "customer_id": body.customer_id,
            "customer_email": body.customer_email,
            "items": [
                {
                    "sku": it.sku,
                    "category": it.category,
                    "amount": decimal_or_text(it.amount),
                    "quantity": it.quantity,
                }
                for it in body.items
            ],
            "metadata": body.metadata,
        }
    )


# --- parsing ------------------------------------------------------------------


@dataclass
class _Parsed:
    currency: str
    amount: Decimal | None
    program_amount: Decimal | None
    fx_rate: Decimal | None
    occurred_at: datetime


async def _parse(session: AsyncSession, body: ConversionCreate, program: Program) -> _Parsed:
    errors: list[dict[str, str]] = []
    currency = body.currency or program.currency
    if not is_currency(currency):
        raise field_error("currency", "not an ISO 4217 currency code")
    amount = None
    if body.amount is None:
        if body.type == "sale":
            errors.append({"field": "amount", "message": "a sale needs an amount"})
    else:
        try:
            amount = parse_amount(body.amount, currency)
        except MoneyError as exc:
            errors.append({"field": "amount", "message": str(exc)})
    for i, item in enumerate(body.items):
        try:
            parse_amount(item.amount, currency)
        except MoneyError as exc:
            errors.append({"field": f"items[{i}].amount", "message": str(exc)})
    now = utc_now()
    occurred_at = (body.occurred_at or now).astimezone(UTC)
    if occurred_at > now + attr.FUTURE_SLACK:
        errors.append({"field": "occurred_at", "message": "must not be in the future"})
    if body.customer_email is not None and "@" not in body.customer_email:
        errors.append({"field": "customer_email", "message": "not an email address"})
    if errors:
        raise ValidationFailed(errors)
    rate = None
    if currency != program.currency:
        day = occurred_at.astimezone(ZoneInfo(program.time_zone)).date()
        rate = await rate_on(session, currency, program.currency, day)
        if rate is None:
            raise field_error(
                "currency",
                f"no FX rate {currency}->{program.currency} dated on or before {day.isoformat()}; "
                "POST one to /v1/fx-rates",
            )
    factor = rate if rate is not None else Decimal(1)
    program_amount = None if amount is None else round_money(amount * factor, program.currency)
    return _Parsed(currency, amount, program_amount, rate, occurred_at)


# --- recording ----------------------------------------------------------------


async def record_conversion(
    session: AsyncSession, body: ConversionCreate, by: Principal, ctx: Context
) -> Recorded:
    """Store a conversion once per (program, type, order_id), with what it earns."""
    program = await cached_program(session, body.program_id)
    if program is None or not by.sees_program(program.id):
        raise field_error("program_id", "no such program")
    parsed = await _parse(session, body, program)
    digest = _conversion_hash(body, parsed)
    # The whole row is decided first and inserted once at the end: the insert is also the
    # claim on the order id, and a replay finds it taken. Until then nothing is written
    # that a replay must not leave behind (the customer's row, an empty month row and the
    # month's lock are harmless; a promo code's use is given back).
    draft = _DRAFT.new(
        id=new_id(),
        program_id=program.id,
        type=body.type,
        order_id=body.order_id,
        status=ConversionStatus.accepted,
        amount_minor=None if parsed.amount is None else to_minor(parsed.amount, parsed.currency),
        currency=parsed.currency,
        program_amount_minor=(
            None
            if parsed.program_amount is None
            else to_minor(parsed.program_amount, program.currency)
        ),
        program_currency=program.currency,
        fx_rate=parsed.fx_rate,
        refunded_minor=0,
        occurred_at=parsed.occurred_at,
        click_token=body.click_id,
        promo_code=body.promo_code,
        customer_external_id=body.customer_id,
        customer_email_hash=(
            keyed_hash(ctx.email_key, body.customer_email) if body.customer_email else None
        ),
        items=[it.model_dump(mode="json") for it in body.items],
        metadata_=body.metadata,
        counted=False,
        fraud=[],
        request_hash=digest,
    )

    held = await customer_of(session, program, body.customer_id)
    customer = None if held is None else held.customer
    found = await attr.attribute(
        session,
        ctx.signer,
        program,
        promo_code=body.promo_code,
        click_token=body.click_id,
        customer=held,
        at=parsed.occurred_at,
        customer_email=body.customer_email,
    )
    decision, click, partner = found.decision, found.click, found.partner
    # The draft is never in a session: its values go in without the change events.
    _DRAFT.fill(
        draft,
        promo_code_id=found.promo_code_id,
        click_id=None if click is None else click.click_uuid,
        link_id=click.link_id if click is not None and decision.method == "click" else None,
        attribution=decision.as_json(),
        customer_id=None if customer is None else customer.id,
    )

    verdict = None
    earning = None
    if partner is not None:
        _DRAFT.fill(draft, partner_id=partner.id, attribution_method=decision.method)
        by_click = click if decision.method == "click" else None
        recurring_since = None
        if decision.method == "customer" and customer is not None:
            recurring_since = customer.first_attributed_at
        hits, earning = await judge_and_plan(
            session, program, draft, partner, by_click, body, recurring_since
        )
        verdict = fraud.status_for(hits)
        if hits:
            _DRAFT.fill(
                draft, fraud=[h.as_json() for h in hits], review_reason=fraud.review_reason(hits)
            )
        if verdict is not None:
            _DRAFT.fill(draft, status=verdict)

    values = _values(draft)
    trail = audit.values(
        by,
        "conversion.recorded",
        "conversion",
        draft.id,
        {
            "status": draft.status,
            "partner_id": str(draft.partner_id) if draft.partner_id else None,
            "amount": None if parsed.amount is None else f"{parsed.amount:f}",
        },
    )
    params = {**values, **{f"audit_{k}": v for k, v in trail.items()}}
    # What it earns, and its customer's binding to the partner (on the customer's first
    # attributed sale), go in with it, in the same statement, when it goes in at all.
    entries: list[CommissionEntry] = []
    if earning is not None:
        entries = ledger.earning_entries(earning, draft.id)
        params.update(ledger.earning_params(earning, entries))
    bound = (
        partner is not None
        and customer is not None
        and bind_customer(
            customer, partner.id, draft, rejected=verdict == ConversionStatus.rejected
        )
    )
    if bound:
        assert customer is not None
        params.update(binding_params(customer))
    statement = _insert_with(None if earning is None else len(entries), bound)
    inserted = await statement.fetchrow(session, params)
    if inserted is None:
        if found.promo_code_id is not None:
            await give_back_promo_use(session, found.promo_code_id)
        return Recorded(await _replayed(session, program, body, digest), False, None)

    # The row as written, and the draft is it, without reading back what was just sent:
    # detached, as loaded. It stays out of the session: nothing changes it after this (a
    # later read of the row in the transaction, a shop's refund of the same order say,
    # loads it), and the session's add, flush check and close cost 2% of a sale.
    conversion = draft
    loaded = conversion.__dict__  # the instance's state: what the ORM holds as loaded
    for key, name in _VALUE_NAMES:
        loaded.setdefault(key, values[name])
    loaded["created_at"] = inserted["created_at"]
    loaded["updated_at"] = inserted["updated_at"]
    _DRAFT.written(conversion)  # every value above, committed as loaded
    for entry in entries:
        # The server's now(), the transaction's start, as the conversion's.
        entry.created_at = inserted["created_at"]
    await outbox.hold(session, inserted["subscriptions"])

    answered: list[CommissionEntry] | None = entries
    if partner is not None:
        await announce.entries(session, entries)
        if verdict == ConversionStatus.rejected:
            answered = None
            # Stored with its entries and their reversals, so it is seen to earn nothing.
            reversal = await reversals.plan_reversal(
                session,
                conversion,
                program,
                amount_minor=conversion.program_amount_minor or 0,
                refunded_before_minor=0,
                refund_id=None,
                full=True,
                reason=f"rejected by fraud rules: {conversion.review_reason}",
            )
            await reversals.write_reversal(session, reversal)
    await announce.conversion_recorded(session, conversion)
    return Recorded(conversion, True, answered)


# Built once: the insert of a new conversion, every column a parameter (a JSON column
# given None stores SQL NULL, not a JSON null; the server sets the timestamps), and its
# audit event in the same statement, written only when the conversion was.
_conversions = typing.cast(Table, Conversion.__table__)
_audit_events = typing.cast(Table, AuditEvent.__table__)
_DRAFT = Columns(Conversion)
_CONVERSION_COLUMNS = tuple(
    (attribute.key, attribute.columns[0])
    for attribute in inspect(Conversion).column_attrs
    if attribute.key not in ("created_at", "updated_at")
)
_AUDIT_COLUMNS = audit.COLUMNS


def _param(name: str, column: ColumnElement[Any]) -> BindParameter[Any]:
    json = isinstance(column.type, JSONB)
    return bindparam(name, type_=JSONB(none_as_null=True) if json else column.type)


_inserted = (
    insert(_conversions)
    .values({column.name: _param(column.name, column) for _, column in _CONVERSION_COLUMNS})
    .on_conflict_do_nothing(index_elements=["program_id", "type", "order_id"])
    .returning(_conversions.c.created_at, _conversions.c.updated_at)
    .cte("inserted")
)
_audited = (
    insert(_audit_events)
    .from_select(
        list(_AUDIT_COLUMNS),
        select(*(_param(f"audit_{c}", _audit_events.c[c]) for c in _AUDIT_COLUMNS)).select_from(
            _inserted
        ),
    )
    .cte("audited")
)
# The event subscriptions' version comes along: the conversion's events need it next.
_INSERTING = select(
    _inserted.c.created_at, _inserted.c.updated_at, outbox.VERSION.label("subscriptions")
).add_cte(_audited)
_INSERT = Prepared(_INSERTING)


@functools.lru_cache(maxsize=32)
def _insert_with(entries: int | None, bound: bool) -> Prepared:
    """The insert, with an earning's `entries` entries and its month's new totals (None: it
    earns nothing), and with the customer's binding."""
    ctes = [] if entries is None else ledger.entry_ctes(entries, after=_inserted)
    if bound:
        ctes.append(binding_cte(_inserted))
    return Prepared(_INSERTING.add_cte(*ctes)) if ctes else _INSERT


# (attribute, column name) of each column _values reads.
_VALUE_NAMES = tuple((key, column.name) for key, column in _CONVERSION_COLUMNS)


def _values(draft: Conversion) -> dict[str, Any]:
    # Read from the instance's state: a column never set reads as None, as getattr would.
    get = draft.__dict__.get
    return {name: get(key) for key, name in _VALUE_NAMES}


async def _replayed(
    session: AsyncSession, program: Program, body: ConversionCreate, digest: bytes
) -> Conversion:
    """The stored conversion of this order, when this request is its replay; 409 otherwise."""
    existing = await session.scalar(
        select(Conversion).where(
            Conversion.program_id == program.id,
            Conversion.type == body.type,
            Conversion.order_id == body.order_id,
        )
    )
    assert existing is not None
    if not same_request(existing.request_hash, digest, body):
        raise Conflict(
            f"order {body.order_id!r} was already recorded with other content",
            errors=[{"field": "order_id", "message": "already recorded with other content"}],
            extra={"conversion_id": str(existing.id)},
        )
    return existing
