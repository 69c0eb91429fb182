"""WooCommerce: `X-WC-Webhook-Signature` (base64) over the body, and its order webhooks
(the REST API's order object) mapped to sales, refunds and cancellations."""

from __future__ import annotations

import base64
import hmac
import re
from collections.abc import Mapping, Sequence
from decimal import Decimal
from fractions import Fraction
from typing import Any

from service.integrations.plans import (
    Cancel,
    PayloadInvalid,
    Plan,
    RefundPart,
    Sale,
    body_key,
    currency,
    decimal,
    hmac_sha256,
    id_of,
    instant,
    items,
    named_value,
    obj,
    text,
)
from service.kit.money import minor_units

SIGNATURE_HEADER = "x-wc-webhook-signature"
TOPIC_HEADER = "x-wc-webhook-topic"
HEADERS = (TOPIC_HEADER, "x-wc-webhook-delivery-id", "x-wc-webhook-id", "x-wc-webhook-source")
SALE_STATUSES = frozenset({"processing", "completed"})
ORDER_TOPICS = frozenset({"order.created", "order.updated"})
# The ping WooCommerce sends, unsigned, when a webhook is saved.
PING = re.compile(rb"webhook_id=\d{1,20}")
CLICK_KEYS = ("aff_click_id", "_aff_click_id")


class SignatureInvalid(ValueError):
    """The X-WC-Webhook-Signature header does not vouch for this body."""


def is_ping(headers: Mapping[str, str], body: bytes) -> bool:
    """WooCommerce's creation ping: `webhook_id=N` as a form body, and no signature."""
    return SIGNATURE_HEADER not in headers and PING.fullmatch(body.strip()) is not None


def verify(secrets: Sequence[str], headers: Mapping[str, str], body: bytes, now: float) -> None:
    """Accept the body only when its base64 HMAC-SHA256 under one of the secrets matches."""
    given = headers.get(SIGNATURE_HEADER)
    if not given:
        raise SignatureInvalid("missing X-WC-Webhook-Signature header")
    matched = False
    for secret in secrets:
        expected = base64.b64encode(hmac_sha256(secret, body))
        matched |= hmac.compare_digest(expected, given.strip().encode("utf-8", "replace"))
    if not matched:
        raise SignatureInvalid("X-WC-Webhook-Signature does not match the signing secret")


def event_key(headers: Mapping[str, str], body: bytes) -> str:
    """X-WC-Webhook-Delivery-ID."""
    return text(headers.get("x-wc-webhook-delivery-id"), 300) or body_key(body)


def topic(headers: Mapping[str, str]) -> str:
    """The X-WC-Webhook-Topic header (order.created, order.updated, ...)."""
    return text(headers.get(TOPIC_HEADER)) or "unknown"


def _base(order: dict[str, Any]) -> tuple[Decimal, Decimal]:
    total = decimal(order.get("total"), "total")
    tax = decimal(order.get("total_tax") or "0", "total_tax")
    shipping = decimal(order.get("shipping_total") or "0", "shipping_total")
    # total_tax holds shipping_tax too.
    return total, total - tax - shipping


def _scaled(cumulative: Decimal, total: Decimal, base: Decimal, code: str) -> Decimal:
    # Scaled on the running total, so the parts add up to the base once all is refunded.
    if cumulative >= total:
        return base
    quantum = 10 ** minor_units(code)
    share = Fraction(cumulative) * Fraction(base) / Fraction(total)
    return Decimal(round(share * quantum)) / quantum


def _refunds(order: dict[str, Any], order_id: str, code: str) -> tuple[RefundPart, ...]:
    entries = sorted(
        items(order.get("refunds")), key=lambda r: int(decimal(r.get("id"), "refunds[].id"))
    )
    if not entries:
        return ()
    total, base = _base(order)
    if total <= 0:
        return ()
    parts: list[RefundPart] = []
    running = Decimal(0)
    before = Decimal(0)
    for entry in entries:
        running += abs(decimal(entry.get("total"), "refunds[].total"))
        after = _scaled(running, total, base, code)
        refund_id = id_of(entry.get("id"))
        assert refund_id is not None
        if after > before:
            parts.append(
                RefundPart(refund_id=refund_id, order_ids=(order_id,), amount=after - before)
            )
        before = after
    return tuple(parts)


def plan(kind: str, payload: dict[str, Any], *, accept_test_events: bool) -> Plan:
    """What a WooCommerce order webhook asks for: the sale, each refund, a cancellation."""
    if kind not in ORDER_TOPICS:
        return Plan.ignore(f"topic {kind} is not used")
    order_id = id_of(payload.get("id"))
    if order_id is None:
        raise PayloadInvalid("the order has no id")
    status = text(payload.get("status")) or ""
    code = currency(payload.get("currency"))
    if status == "cancelled":
        return Plan(cancel=Cancel(order_id=order_id))
    sale = None
    if status in SALE_STATUSES:
        _, base = _base(payload)
        billing = obj(payload.get("billing"))
        customer = id_of(payload.get("customer_id"))
        coupons = [text(c.get("code"), 64) for c in items(payload.get("coupon_lines"))]
        sale = Sale(
            order_id=order_id,
            amount=base,
            currency=code,
            occurred_at=instant(payload.get("date_paid_gmt"), naive_is_utc=True)
            or instant(payload.get("date_created_gmt"), naive_is_utc=True),
            click_id=named_value(items(payload.get("meta_data")), CLICK_KEYS, "key"),
            promo_code=next((c for c in coupons if c), None),
            customer_id=None if customer in (None, "0") else customer,
            customer_email=text(billing.get("email"), 320),
        )
    refunds = _refunds(payload, order_id, code)
    if sale is None and not refunds:
        return Plan.ignore(f"order status {status!r} is not a sale and the order has no refunds")
    return Plan(sale=sale, refunds=refunds)
