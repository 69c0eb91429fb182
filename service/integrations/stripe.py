"""Stripe: `Stripe-Signature` over "{t}.{body}", and its Event, Checkout Session, Invoice and
Charge objects mapped to sales and refunds."""

from __future__ import annotations

import hmac
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from service.integrations.plans import (
    PayloadInvalid,
    Plan,
    RefundPart,
    Sale,
    body_key,
    currency,
    hmac_sha256,
    id_of,
    instant,
    integer,
    obj,
    text,
)

SIGNATURE_HEADER = "stripe-signature"
# Stripe's own advice and default in its libraries.
TOLERANCE_SECONDS = 300

# Stripe's amounts are integers in its own minor unit per currency, which is not always
# ISO 4217's (https://docs.stripe.com/currencies). Zero-decimal: the amount is whole units.
ZERO_DECIMAL = frozenset("BIF CLP DJF GNF JPY KMF KRW MGA PYG RWF UGX VND VUV XAF XOF XPF".split())
# Three-decimal: thousandths (the last digit is always 0 in charges).
THREE_DECIMAL = frozenset("BHD JOD KWD OMR TND".split())
# Every other currency is two-decimal in the API, including ISK (zero-decimal in ISO, yet
# 100 is one krona in Stripe), HUF and TWD (charged in hundredths, paid out in whole units).


def stripe_exponent(code: str) -> int:
    """Digits of Stripe's minor unit for the currency."""
    if code in ZERO_DECIMAL:
        return 0
    if code in THREE_DECIMAL:
        return 3
    return 2


def from_stripe_minor(amount: int, code: str) -> Decimal:
    """Stripe's integer amount as an exact Decimal of currency units."""
    return Decimal(amount).scaleb(-stripe_exponent(code))


class SignatureInvalid(ValueError):
    """The Stripe-Signature header does not vouch for this body."""


def verify(secrets: Sequence[str], headers: Mapping[str, str], body: bytes, now: float) -> None:
    """Accept the body only when one v1 signature matches one of the secrets, within 300 s."""
    header = headers.get(SIGNATURE_HEADER)
    if not header:
        raise SignatureInvalid("missing Stripe-Signature header")
    timestamp: str | None = None
    signatures: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isascii() and value.isdigit() and len(value) <= 12:
            timestamp = value
        elif key == "v1" and value:
            signatures.append(value.strip())
    if timestamp is None or not signatures:
        raise SignatureInvalid("Stripe-Signature needs t= and at least one v1=")
    signed = timestamp.encode() + b"." + body
    matched = False
    for secret in secrets:
        expected = hmac_sha256(secret, signed).hex()
        for candidate in signatures:
            # Every pair is compared, so the time taken says nothing about which one matched.
            matched |= hmac.compare_digest(expected.encode(), candidate.encode("utf-8", "replace"))
    if not matched:
        raise SignatureInvalid("no v1 signature matches the signing secret")
    if abs(now - int(timestamp)) > TOLERANCE_SECONDS:
        raise SignatureInvalid(f"the signature's timestamp is more than {TOLERANCE_SECONDS}s away")


def event_key(payload: dict[str, Any] | None, body: bytes) -> str:
    """The Event's id (evt_...): Stripe's redeliveries carry the same one."""
    found = text(payload.get("id"), 300) if payload else None
    return found or body_key(body)


def topic(payload: dict[str, Any] | None) -> str:
    """The Event's type."""
    return (text(payload.get("type")) if payload else None) or "unknown"


def _metadata(*sources: Any) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for source in sources:
        merged = {**obj(source), **merged}
    return merged


def _promotion_code(discounts: Any) -> str | None:
    """The first promotion code id among discounts: each either a Discount object (with
    `promotion_code`), a Checkout Session's {coupon, promotion_code}, or a breakdown entry
    {amount, discount}; `promotion_code` is an id or, expanded, a PromotionCode object.
    A discount given only by its id (di_..., unexpanded) names no promotion code."""
    if not isinstance(discounts, list):
        return None
    for entry in discounts:
        item = obj(entry)
        found = id_of(item.get("promotion_code")) or id_of(
            obj(item.get("discount")).get("promotion_code")
        )
        if found:
            return found
    return None


def _sale_from_session(event: dict[str, Any], session: dict[str, Any]) -> Plan:
    status = session.get("payment_status")
    if status != "paid":
        return Plan.ignore(f"checkout session payment_status is {status!r}, not 'paid'")
    code = currency(session.get("currency"))
    details = obj(session.get("total_details"))
    total = integer(session.get("amount_total"), "amount_total")
    tax = integer(details.get("amount_tax") or 0, "total_details.amount_tax")
    shipping = integer(details.get("amount_shipping") or 0, "total_details.amount_shipping")
    payment_intent = id_of(session.get("payment_intent"))
    invoice = id_of(session.get("invoice"))
    order_id = invoice or payment_intent or id_of(session.get("id"))
    if order_id is None:
        raise PayloadInvalid("the checkout session has no id")
    metadata = obj(session.get("metadata"))
    customer = obj(session.get("customer_details"))
    extra = {"stripe_payment_intent": payment_intent} if payment_intent and invoice else {}
    return Plan(
        sale=Sale(
            order_id=order_id,
            amount=from_stripe_minor(total - tax - shipping, code),
            currency=code,
            occurred_at=instant(event.get("created")),
            click_id=text(session.get("client_reference_id")) or text(metadata.get("aff_click_id")),
            promo_code=text(metadata.get("aff_promo_code"), 64),
            promo_external_id=_promotion_code(session.get("discounts"))
            or _promotion_code(obj(details.get("breakdown")).get("discounts")),
            customer_id=id_of(session.get("customer")),
            customer_email=text(customer.get("email"), 320) or text(session.get("customer_email")),
            metadata=extra,
        )
    )


def _invoice_payment_intent(invoice: dict[str, Any]) -> str | None:
    found = id_of(invoice.get("payment_intent"))
    if found:
        return found
    # From API version 2025-03-31 an invoice lists its payments instead.
    for entry in obj(invoice.get("payments")).get("data") or []:
        payment = obj(obj(entry).get("payment"))
        found = id_of(payment.get("payment_intent"))
        if found:
            return found
    return None


def _sale_from_invoice(event: dict[str, Any], invoice: dict[str, Any]) -> Plan:
    code = currency(invoice.get("currency"))
    raw = invoice.get("total_excluding_tax")
    if raw is None:  # API versions before 2022-08-01
        raw = integer(invoice.get("total"), "total") - integer(invoice.get("tax") or 0, "tax")
    amount = integer(raw, "total_excluding_tax")
    shipping = obj(invoice.get("shipping_cost"))
    amount -= integer(shipping.get("amount_subtotal") or 0, "shipping_cost.amount_subtotal")
    if amount <= 0:
        return Plan.ignore("the invoice charged nothing before tax")
    order_id = id_of(invoice.get("id"))
    if order_id is None:
        raise PayloadInvalid("the invoice has no id")
    metadata = _metadata(
        invoice.get("metadata"),
        obj(invoice.get("subscription_details")).get("metadata"),
        obj(obj(invoice.get("parent")).get("subscription_details")).get("metadata"),
    )
    payment_intent = _invoice_payment_intent(invoice)
    paid_at = instant(obj(invoice.get("status_transitions")).get("paid_at"))
    return Plan(
        sale=Sale(
            order_id=order_id,
            amount=from_stripe_minor(amount, code),
            currency=code,
            occurred_at=paid_at or instant(event.get("created")),
            click_id=text(metadata.get("aff_click_id")),
            promo_code=text(metadata.get("aff_promo_code"), 64),
            # `discounts` (from API version 2020-08-27), else the older single `discount`.
            promo_external_id=_promotion_code(invoice.get("discounts"))
            or _promotion_code([invoice.get("discount")]),
            customer_id=id_of(invoice.get("customer")),
            customer_email=text(invoice.get("customer_email"), 320),
            metadata={"stripe_payment_intent": payment_intent} if payment_intent else {},
        )
    )


def _refund_from_charge(event: dict[str, Any], charge: dict[str, Any]) -> Plan:
    charge_id = id_of(charge.get("id"))
    gross = integer(charge.get("amount"), "amount")
    refunded = integer(charge.get("amount_refunded"), "amount_refunded")
    if charge_id is None or gross <= 0:
        raise PayloadInvalid("the charge has no id or no amount")
    payment_intent = id_of(charge.get("payment_intent"))
    order_ids = tuple(o for o in (id_of(charge.get("invoice")), payment_intent) if o)
    if not order_ids:
        return Plan.ignore("the charge belongs to no invoice or payment intent")
    # Refunds are listed newest first; from API version 2022-11-15 they are not included,
    # and the running total names the refund instead.
    listed = [obj(r) for r in obj(charge.get("refunds")).get("data") or []]
    refund_id = (id_of(listed[0]) if listed else None) or f"{charge_id}:{refunded}"
    return Plan(
        refunds=(
            RefundPart(
                refund_id=refund_id,
                order_ids=order_ids,
                cumulative=(refunded, gross),
                metadata_match=("stripe_payment_intent", payment_intent)
                if payment_intent
                else None,
                occurred_at=instant(event.get("created")),
            ),
        )
    )


def plan(payload: dict[str, Any], *, accept_test_events: bool) -> Plan:
    """What a Stripe Event asks for."""
    kind = topic(payload)
    if payload.get("object") not in (None, "event"):
        raise PayloadInvalid("the body is not a Stripe Event")
    if payload.get("livemode") is False and not accept_test_events:
        return Plan.ignore("a test-mode event (livemode false); the integration takes live ones")
    data = obj(obj(payload.get("data")).get("object"))
    if kind in ("checkout.session.completed", "checkout.session.async_payment_succeeded"):
        return _sale_from_session(payload, data)
    if kind == "invoice.paid":
        return _sale_from_invoice(payload, data)
    if kind == "charge.refunded":
        return _refund_from_charge(payload, data)
    return Plan.ignore(f"event type {kind} is not used")
