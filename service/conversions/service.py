"""Conversions: idempotent intake, attribution, commissions, refunds, review."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from service import audit
from service.agreements.service import in_force, load_terms
from service.auth.keys import Principal
from service.commissions.engine import compute_conversion, compute_refund
from service.commissions.state import ConversionInput, Item, RefundInput
from service.conversions import attribution as attr
from service.conversions import repository
from service.conversions.ledger import lock_month, save_month, write_entries
from service.conversions.schemas import ConversionCreate, RefundCreate
from service.errors import Conflict, NotFound, ValidationFailed, field_error
from service.fraud import rules as fraud
from service.fraud.repository import stored_facts
from service.fraud.schemas import rules_in_force
from service.kit.idempotency import request_hash
from service.kit.ids import new_id
from service.kit.money import (
    MoneyError,
    from_minor,
    is_currency,
    parse_amount,
    round_money,
    round_to_int,
    to_minor,
)
from service.kit.time import month_start, utc_now
from service.links.service import check_promo_code, consume_promo_code
from service.models import (
    AgreementVersion,
    Click,
    CommissionEntry,
    Conversion,
    ConversionStatus,
    Customer,
    FxRate,
    Link,
    Partner,
    PartnerStatus,
    Program,
    Refund,
)
from service.tracking.clickid import ClickIdInvalid, ClickIdSigner

# A backend's clock may run ahead of ours by this much before "in the future" is refused.
FUTURE_SLACK = timedelta(minutes=5)
# conversions.fx_rate is NUMERIC(24, 12).
FX_RATE_QUANTUM = Decimal("1e-12")


@dataclass(frozen=True)
class Context:
    """What the conversion path needs from the running app."""

    signer: ClickIdSigner
    email_key: bytes


def keyed_hash(key: bytes, value: str) -> bytes:
    """A keyed hash of a personal value (emails), so the plain value is never stored."""
    return hmac.new(key, value.strip().lower().encode(), hashlib.sha256).digest()


def _legacy_hash(body: ConversionCreate | RefundCreate) -> bytes:
    # Requests stored before hashes were normalized: their replays must still match.
    raw = body.model_dump(mode="json", exclude_unset=True)
    canonical = json.dumps(raw, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).digest()


def _same_request(stored: bytes, digest: bytes, body: ConversionCreate | RefundCreate) -> bool:
    return hmac.compare_digest(stored, digest) or hmac.compare_digest(stored, _legacy_hash(body))


def _decimal_or_text(text: str) -> Decimal | str:
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
                    "amount": _decimal_or_text(it.amount),
                    "quantity": it.quantity,
                }
                for it in body.items
            ],
            "metadata": body.metadata,
        }
    )


def _refund_hash(body: RefundCreate) -> bytes:
    return request_hash(
        {
            "program_id": body.program_id,
            "order_id": body.order_id,
            "refund_id": body.refund_id,
            "amount": _decimal_or_text(body.amount),
            "occurred_at": body.occurred_at,
        }
    )


# --- reading ----------------------------------------------------------------


async def get_conversion(
    session: AsyncSession, conversion_id: uuid.UUID, by: Principal
) -> Conversion:
    """A conversion the caller may see, or NotFound."""
    conversion = await repository.get(session, by, conversion_id)
    if conversion is None:
        raise NotFound(f"conversion {conversion_id} does not exist")
    return conversion


async def entries_of(session: AsyncSession, *where: Any) -> list[CommissionEntry]:
    """Ledger entries matching `where` (a conversion's, or a refund's), oldest first."""
    rows = await session.scalars(select(CommissionEntry).where(*where).order_by(CommissionEntry.id))
    return list(rows.all())


# --- intake -----------------------------------------------------------------


@dataclass
class _Parsed:
    program: Program
    currency: str
    amount: Decimal | None
    program_amount: Decimal | None
    fx_rate: Decimal | None
    items: tuple[Item, ...]
    occurred_at: datetime


async def _fx_rate(session: AsyncSession, base: str, quote: str, day: Any) -> Decimal | None:
    direct = await session.scalar(
        select(FxRate.rate)
        .where(FxRate.base_currency == base, FxRate.quote_currency == quote, FxRate.date <= day)
        .order_by(FxRate.date.desc())
        .limit(1)
    )
    if direct is not None:
        return Decimal(direct)
    inverse = await session.scalar(
        select(FxRate.rate)
        .where(FxRate.base_currency == quote, FxRate.quote_currency == base, FxRate.date <= day)
        .order_by(FxRate.date.desc())
        .limit(1)
    )
    if inverse is None:
        return None
    # Rounded as the conversion stores it (12 places), so the first answer, its replay
    # and every later refund use one and the same rate.
    return (Decimal(1) / Decimal(inverse)).quantize(FX_RATE_QUANTUM, rounding=ROUND_HALF_EVEN)


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
    prices: list[Decimal] = []
    for i, item in enumerate(body.items):
        try:
            prices.append(parse_amount(item.amount, currency))
        except MoneyError as exc:
            errors.append({"field": f"items[{i}].amount", "message": str(exc)})
    now = utc_now()
    occurred_at = (body.occurred_at or now).astimezone(UTC)
    if occurred_at > now + FUTURE_SLACK:
        errors.append({"field": "occurred_at", "message": "must not be in the future"})
    if body.customer_email is not None and "@" not in body.customer_email:
        errors.append({"field": "customer_email", "message": "not an email address"})
    if errors:
        raise ValidationFailed(errors)
    rate = None
    if currency != program.currency:
        day = occurred_at.astimezone(ZoneInfo(program.time_zone)).date()
        rate = await _fx_rate(session, currency, program.currency, day)
        if rate is None:
            raise field_error(
                "currency",
                f"no FX rate {currency}->{program.currency} dated on or before {day.isoformat()}; "
                "POST one to /v1/fx-rates",
            )
    factor = rate if rate is not None else Decimal(1)
    program_amount = None if amount is None else round_money(amount * factor, program.currency)
    items = tuple(
        Item(sku=it.sku, category=it.category, amount=price * factor, quantity=it.quantity)
        for it, price in zip(body.items, prices, strict=True)
    )
    return _Parsed(program, currency, amount, program_amount, rate, items, occurred_at)


def _partner_unavailable(partner: Partner | None) -> str | None:
    if partner is None:
        return "partner no longer exists"
    if partner.status != PartnerStatus.active:
        return f"partner {partner.status}"
    return None


async def _by_promo(
    session: AsyncSession, program: Program, code: str | None, at: datetime
) -> tuple[attr.Candidate, uuid.UUID | None]:
    if not code:
        return attr.Candidate(reason="no promo code sent"), None
    row, reason = await check_promo_code(session, program.id, code, at)
    if row is None:
        return attr.Candidate(reason=reason or "promo code unknown"), None
    partner = await session.get(Partner, row.partner_id)
    unavailable = _partner_unavailable(partner)
    if unavailable:
        return attr.Candidate(reason=unavailable), None
    return attr.Candidate(partner_id=row.partner_id, detail={"promo_code": row.code}), row.id


async def _by_click(
    session: AsyncSession, ctx: Context, program: Program, token: str | None, at: datetime
) -> tuple[attr.Candidate, Any]:
    if not token:
        return attr.Candidate(reason="no click id sent"), None
    try:
        click = ctx.signer.verify(token)
    except ClickIdInvalid as exc:
        reason = {
            "malformed": "click id malformed",
            "unknown key id": "click id signed with an unknown key",
        }.get(exc.reason, "click id signature invalid")
        return attr.Candidate(reason=reason), None
    found = (
        await session.execute(
            select(Link, Partner)
            .join(Partner, Partner.id == Link.partner_id)
            .where(Link.id == click.link_id)
        )
    ).first()
    if found is None or found[0].program_id != program.id:
        return attr.Candidate(reason="click id belongs to another program"), click
    link, partner = found
    bot = click.bot
    if bot is None:
        # An id signed before ids carried the bot bit: the click row knows.
        bot = await session.scalar(
            select(Click.is_bot).where(
                Click.id == click.click_uuid, Click.clicked_at == click.clicked_at
            )
        )
    if bot:
        return attr.Candidate(reason="click from a bot"), click
    if click.clicked_at > at + FUTURE_SLACK:
        return attr.Candidate(reason="click happened after the conversion"), click
    window = timedelta(days=program.attribution_window_days)
    if at - click.clicked_at > window:
        return (
            attr.Candidate(
                reason=f"click outside the attribution window ({program.attribution_window_days} days)"
            ),
            click,
        )
    unavailable = _partner_unavailable(partner)
    if unavailable:
        return attr.Candidate(reason=unavailable), click
    detail = {"click_id": str(click.click_uuid), "link_id": str(link.id)}
    return attr.Candidate(partner_id=link.partner_id, detail=detail), click


async def _customer(
    session: AsyncSession, program: Program, external_id: str | None
) -> Customer | None:
    if not external_id:
        return None
    await session.execute(
        insert(Customer)
        .values(id=new_id(), program_id=program.id, external_id=external_id)
        .on_conflict_do_nothing(index_elements=["program_id", "external_id"])
    )
    return await session.scalar(
        select(Customer)
        .where(Customer.program_id == program.id, Customer.external_id == external_id)
        .with_for_update()
    )


async def _by_customer(session: AsyncSession, customer: Customer | None) -> attr.Candidate:
    if customer is None:
        return attr.Candidate(reason="no customer id sent")
    if customer.partner_id is None:
        return attr.Candidate(reason="customer has no earlier attributed conversion")
    partner = await session.get(Partner, customer.partner_id)
    unavailable = _partner_unavailable(partner)
    if unavailable:
        return attr.Candidate(reason=unavailable)
    return attr.Candidate(
        partner_id=customer.partner_id, detail={"customer_id": customer.external_id}
    )


async def _commission(
    session: AsyncSession,
    conversion: Conversion,
    parsed: _Parsed,
    partner: Partner,
    recurring_since: datetime | None,
) -> dict[str, Any]:
    program = parsed.program
    found = await in_force(session, partner.id, program.id, parsed.occurred_at, program.currency)
    if found is None:
        return {"counted": False, "note": "no agreement in force at occurred_at"}
    conversion.agreement_id = found.agreement.id
    conversion.agreement_version = found.version.version
    event = conversion.type
    if found.terms.rule_for(event) is None:
        return {"counted": False, "note": f"the terms have no {event} rule"}
    month = month_start(parsed.occurred_at, program.time_zone)
    state = await lock_month(session, partner.id, program.id, month, event)
    outcome = compute_conversion(
        found.terms,
        ConversionInput(
            event=event,  # type: ignore[arg-type]
            amount=parsed.program_amount,
            occurred_at=parsed.occurred_at,
            items=parsed.items,
            recurring_since=recurring_since,
        ),
        state,
        program.currency,
        has_parent=partner.parent_id is not None,
    )
    await save_month(session, partner.id, program.id, month, event, outcome.new_state)
    hold_days = found.terms.hold_days if found.terms.hold_days is not None else program.hold_days
    write_entries(
        session,
        outcome,
        partner_id=partner.id,
        parent_id=partner.parent_id,
        program_id=program.id,
        currency=program.currency,
        conversion_id=conversion.id,
        refund_id=None,
        available_at=parsed.occurred_at + timedelta(days=hold_days),
        agreement_id=found.agreement.id,
        agreement_version=found.version.version,
        month=month,
        event=event,
        context={"hold_days": hold_days},
    )
    return {
        "counted": outcome.new_state != state,
        "month": month.isoformat(),
        "event": event,
        "hold_days": hold_days,
        "explain": outcome.explain,
    }


async def record_conversion(
    session: AsyncSession, body: ConversionCreate, by: Principal, ctx: Context
) -> tuple[Conversion, bool]:
    """Store a conversion once per (program, type, order_id); True when it is new."""
    program = await session.get(Program, body.program_id)
    if program is None or not by.sees_program(program.id):
        raise field_error("program_id", "no such program")
    parsed = await _parse(session, body, program)
    digest = _conversion_hash(body, parsed)
    conversion = await session.scalar(
        insert(Conversion)
        .values(
            id=new_id(),
            program_id=program.id,
            type=body.type,
            order_id=body.order_id,
            status=ConversionStatus.accepted,
            currency=parsed.currency,
            program_currency=program.currency,
            occurred_at=parsed.occurred_at,
            request_hash=digest,
            items=[],
            metadata={},
            attribution={},
            refunded_minor=0,
        )
        .on_conflict_do_nothing(index_elements=["program_id", "type", "order_id"])
        .returning(Conversion)
    )
    if conversion is None:
        existing = await session.scalar(
            select(Conversion).where(
                Conversion.program_id == program.id,
                Conversion.type == body.type,
                Conversion.order_id == body.order_id,
            )
        )
        assert existing is not None
        if not _same_request(existing.request_hash, digest, body):
            raise Conflict(
                f"order {body.order_id!r} was already recorded with other content",
                errors=[{"field": "order_id", "message": "already recorded with other content"}],
                extra={"conversion_id": str(existing.id)},
            )
        return existing, False

    conversion.amount_minor = (
        None if parsed.amount is None else to_minor(parsed.amount, parsed.currency)
    )
    conversion.program_amount_minor = (
        None if parsed.program_amount is None else to_minor(parsed.program_amount, program.currency)
    )
    conversion.fx_rate = parsed.fx_rate
    conversion.click_token = body.click_id
    conversion.promo_code = body.promo_code
    conversion.customer_external_id = body.customer_id
    conversion.customer_email_hash = (
        keyed_hash(ctx.email_key, body.customer_email) if body.customer_email else None
    )
    conversion.items = [it.model_dump(mode="json") for it in body.items]
    conversion.metadata_ = body.metadata

    customer = await _customer(session, program, body.customer_id)
    order = [m for m in program.attribution_order if m in attr.METHODS]
    found: dict[attr.Method, attr.Candidate] = {}
    promo_candidate, promo_id = await _by_promo(
        session, program, body.promo_code, parsed.occurred_at
    )
    found["promo_code"] = promo_candidate
    click_candidate, click = await _by_click(
        session, ctx, program, body.click_id, parsed.occurred_at
    )
    found["click"] = click_candidate
    found["customer"] = await _by_customer(session, customer)
    decision = attr.choose(order, found)  # type: ignore[arg-type]
    if decision.method == "promo_code" and promo_id is not None:
        if not await consume_promo_code(session, promo_id):
            found["promo_code"] = attr.Candidate(reason="promo code used up")
            decision = attr.choose(order, found)  # type: ignore[arg-type]
        else:
            conversion.promo_code_id = promo_id
    if click is not None:
        conversion.click_id = click.click_uuid
        if decision.method == "click":
            conversion.link_id = click.link_id

    ledger: dict[str, Any] = {"counted": False}
    if decision.partner_id is not None:
        partner = await session.get(Partner, decision.partner_id)
        assert partner is not None
        conversion.partner_id = partner.id
        conversion.attribution_method = decision.method
        by_click = click if decision.method == "click" else None
        hits = await _fraud_hits(session, program, conversion, partner, by_click, body)
        verdict = fraud.status_for(hits)
        recurring_since = None
        if decision.method == "customer" and customer is not None:
            recurring_since = customer.first_attributed_at
        if customer is not None:
            conversion.customer_id = customer.id
            # A rejected sale binds no customer to the partner for later ones.
            if customer.partner_id is None and verdict != ConversionStatus.rejected:
                customer.partner_id = partner.id
            # The recurring window counts from the first attributed sale: a lead earns
            # by its own rule and starts nothing.
            if body.type == "sale" and customer.first_attributed_at is None:
                customer.first_conversion_id = conversion.id
                customer.first_attributed_at = parsed.occurred_at
        if hits:
            conversion.fraud = [h.as_json() for h in hits]
            conversion.review_reason = fraud.review_reason(hits)
        ledger = await _commission(session, conversion, parsed, partner, recurring_since)
        conversion.attribution = {**decision.as_json(), "ledger": ledger}
        if verdict == ConversionStatus.rejected:
            # Stored with its entries and their reversals, so it is seen to earn nothing.
            await _reverse(
                session,
                conversion,
                program,
                amount_minor=conversion.program_amount_minor or 0,
                refunded_before_minor=0,
                refund_id=None,
                full=True,
                reason=f"rejected by fraud rules: {conversion.review_reason}",
            )
        if verdict is not None:
            conversion.status = verdict
    else:
        if customer is not None:
            conversion.customer_id = customer.id
        conversion.attribution = {**decision.as_json(), "ledger": ledger}
    await session.flush()
    audit.record(
        session,
        by,
        "conversion.recorded",
        "conversion",
        conversion.id,
        {
            "status": conversion.status,
            "partner_id": str(conversion.partner_id) if conversion.partner_id else None,
            "amount": None if parsed.amount is None else f"{parsed.amount:f}",
        },
    )
    return conversion, True


async def _fraud_hits(
    session: AsyncSession,
    program: Program,
    conversion: Conversion,
    partner: Partner,
    click: Any,
    body: ConversionCreate,
) -> list[fraud.Hit]:
    """The program's rules, as they stand now, over this conversion's facts."""
    rules = rules_in_force(program.fraud_rules)
    stored = await stored_facts(
        session,
        fraud.needs(rules),
        click_id=click.click_uuid if click is not None else None,
        clicked_at=click.clicked_at if click is not None else None,
        conversion_id=conversion.id,
        partner_id=partner.id,
        program_id=program.id,
        occurred_at=conversion.occurred_at,
    )
    facts = fraud.Facts(
        occurred_at=conversion.occurred_at,
        clicked_at=click.clicked_at if click is not None else None,
        customer_email=body.customer_email,
        partner_email=partner.email,
        paid_markers=stored.paid_markers,
        referrer_host=stored.referrer_host,
        visitor_clicks_before=stored.visitor_clicks_before,
        partner_conversions_before=stored.partner_conversions_before,
    )
    return fraud.evaluate(rules, facts)


# --- refunds and reversals ---------------------------------------------------


async def _reverse(
    session: AsyncSession,
    conversion: Conversion,
    program: Program,
    *,
    amount_minor: int,
    refunded_before_minor: int,
    refund_id: uuid.UUID | None,
    full: bool,
    reason: str,
) -> dict[str, Any]:
    """Reversal entries for part or all of a conversion (program currency minor units)."""
    ledger = dict(conversion.attribution.get("ledger") or {})
    if conversion.partner_id is None or not ledger.get("counted"):
        return {"reversed": "0", "note": "the conversion earned nothing to reverse"}
    partner = await session.get(Partner, conversion.partner_id)
    assert partner is not None and conversion.agreement_id is not None
    # Reversals use the terms the conversion was computed under, whatever came since.
    version = await session.scalar(
        select(AgreementVersion).where(
            AgreementVersion.agreement_id == conversion.agreement_id,
            AgreementVersion.version == conversion.agreement_version,
        )
    )
    assert version is not None
    terms = load_terms(version, program.currency)
    event = conversion.type
    month = month_start(conversion.occurred_at, program.time_zone)
    state = await lock_month(session, partner.id, program.id, month, event)
    earned = await session.scalar(
        select(func.coalesce(func.sum(CommissionEntry.amount_minor), 0)).where(
            CommissionEntry.conversion_id == conversion.id,
            CommissionEntry.partner_id == partner.id,
        )
    )
    total_minor = conversion.program_amount_minor or 0
    items = tuple(
        Item(
            sku=it["sku"],
            category=it.get("category"),
            amount=Decimal(it["amount"]) * (conversion.fx_rate or Decimal(1)),
            quantity=int(it.get("quantity", 1)),
        )
        for it in conversion.items
    )
    outcome = compute_refund(
        terms,
        RefundInput(
            event=event,  # type: ignore[arg-type]
            amount=from_minor(amount_minor, program.currency),
            conversion_amount=from_minor(total_minor, program.currency),
            refunded_before=from_minor(refunded_before_minor, program.currency),
            items=items,
            earned=from_minor(int(earned or 0), program.currency),
            full=full,
            counted=True,
        ),
        state,
        program.currency,
        has_parent=partner.parent_id is not None,
    )
    await save_month(session, partner.id, program.id, month, event, outcome.new_state)
    original_available = await session.scalar(
        select(func.min(CommissionEntry.available_at)).where(
            CommissionEntry.conversion_id == conversion.id
        )
    )
    # A terms' hold of 0 days is a hold of 0 days, not "use the program's".
    stored_hold = ledger.get("hold_days")
    hold_days = int(stored_hold) if stored_hold is not None else program.hold_days
    write_entries(
        session,
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
        ledger["counted"] = False
        conversion.attribution = {**conversion.attribution, "ledger": ledger}
    return {
        "reversed": f"{outcome.partner_total():f}",
        "parent_reversed": f"{outcome.parent_total():f}",
    }


async def record_refund(
    session: AsyncSession, body: RefundCreate, by: Principal
) -> tuple[Refund, bool]:
    """A refund of part or all of a sale, once per refund_id; True when it is new."""
    program = await session.get(Program, body.program_id)
    if program is None or not by.sees_program(program.id):
        raise field_error("program_id", "no such program")
    digest = _refund_hash(body)
    existing = await session.scalar(
        select(Refund).where(Refund.program_id == program.id, Refund.refund_id == body.refund_id)
    )
    if existing is not None:
        return _replayed(existing, digest, body), False
    conversion = await session.scalar(
        select(Conversion)
        .where(
            Conversion.program_id == program.id,
            Conversion.type == "sale",
            Conversion.order_id == body.order_id,
        )
        .with_for_update()
    )
    if conversion is None:
        raise field_error("order_id", "no sale with this order id in the program")
    # The conversion row lock serialises refunds of one order; look again under it.
    existing = await session.scalar(
        select(Refund).where(Refund.program_id == program.id, Refund.refund_id == body.refund_id)
    )
    if existing is not None:
        return _replayed(existing, digest, body), False
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
    refund = Refund(
        program_id=program.id,
        conversion_id=conversion.id,
        refund_id=body.refund_id,
        amount_minor=amount_minor,
        currency=conversion.currency,
        program_amount_minor=prog_after - prog_before,
        request_hash=digest,
        created_at=(body.occurred_at or utc_now()).astimezone(UTC),
    )
    session.add(refund)
    await session.flush()
    conversion.refunded_minor = after
    result = await _reverse(
        session,
        conversion,
        program,
        amount_minor=prog_after - prog_before,
        refunded_before_minor=prog_before,
        refund_id=refund.id,
        full=full,
        reason=f"refund {body.refund_id}",
    )
    await session.flush()
    audit.record(
        session,
        by,
        "conversion.refunded",
        "conversion",
        conversion.id,
        {
            "refund_id": body.refund_id,
            "amount": f"{amount:f}",
            "refunded_total": f"{from_minor(after, conversion.currency):f}",
            **result,
        },
    )
    return refund, True


def _replayed(existing: Refund, digest: bytes, body: RefundCreate) -> Refund:
    if not _same_request(existing.request_hash, digest, body):
        raise Conflict(
            f"refund {body.refund_id!r} was already recorded with other content",
            errors=[{"field": "refund_id", "message": "already recorded with other content"}],
        )
    return existing


# --- review -------------------------------------------------------------------

TRANSITIONS = {
    "review": {ConversionStatus.accepted},
    "approve": {ConversionStatus.review},
    "reject": {ConversionStatus.accepted, ConversionStatus.review},
}
TARGET = {
    "review": ConversionStatus.review,
    "approve": ConversionStatus.accepted,
    "reject": ConversionStatus.rejected,
}


async def decide(
    session: AsyncSession,
    conversion_id: uuid.UUID,
    action: str,
    reason: str | None,
    by: Principal,
) -> Conversion:
    """Hold, approve or reject a conversion; a rejection reverses what it earned."""
    conversion = await session.scalar(
        select(Conversion).where(Conversion.id == conversion_id).with_for_update()
    )
    if conversion is None:
        raise NotFound(f"conversion {conversion_id} does not exist")
    if conversion.status not in TRANSITIONS[action]:
        raise Conflict(f"a conversion in status {conversion.status} cannot be {action}ed")
    before = conversion.status
    deltas: dict[str, Any] = {}
    if action == "reject":
        program = await session.get(Program, conversion.program_id)
        assert program is not None
        total = conversion.program_amount_minor or 0
        refunded = await session.scalar(
            select(func.coalesce(func.sum(Refund.program_amount_minor), 0)).where(
                Refund.conversion_id == conversion.id
            )
        )
        deltas = await _reverse(
            session,
            conversion,
            program,
            amount_minor=total - int(refunded or 0),
            refunded_before_minor=int(refunded or 0),
            refund_id=None,
            full=True,
            reason=f"rejected: {reason}" if reason else "rejected",
        )
    conversion.status = TARGET[action]
    conversion.review_reason = reason if reason is not None else conversion.review_reason
    await session.flush()
    audit.record(
        session,
        by,
        f"conversion.{action}",
        "conversion",
        conversion.id,
        {"status": {"from": before, "to": conversion.status}, "reason": reason, **deltas},
    )
    return conversion
