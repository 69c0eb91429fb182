"""Shopify: `X-Shopify-Hmac-Sha256` (base64) over the body, and its Order and Refund webhook
payloads mapped to sales, refunds and cancellations."""

from __future__ import annotations

import base64
import hmac
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlsplit

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

SIGNATURE_HEADER = "x-shopify-hmac-sha256"
TOPIC_HEADER = "x-shopify-topic"
# Kept for replays: what the mapping and the dedupe read.
HEADERS = (TOPIC_HEADER, "x-shopify-event-id", "x-shopify-webhook-id", "x-shopify-shop-domain")
CLICK_PARAM = "aff_click_id"


class SignatureInvalid(ValueError):
    """The X-Shopify-Hmac-Sha256 header does not vouch for this body."""


def verify(secrets: Sequence[str], headers: Mapping[str, str], body: bytes, now: float) -> None:
    """Accept the body only when its base64 HMAC-SHA256 under one of the secrets matches."""
    given = headers.get(SIGNATURE_HEADER)
    if not given:
        raise SignatureInvalid("missing X-Shopify-Hmac-Sha256 header")
    matched = False
    for secret in secrets:
        expected = base64.b64encode(hmac_sha256(secret, body))
        matched |= hmac.compare_digest(expected, given.strip().encode("utf-8", "replace"))
    if not matched:
        raise SignatureInvalid("X-Shopify-Hmac-Sha256 does not match the signing secret")


def event_key(headers: Mapping[str, str], body: bytes) -> str:
    """X-Shopify-Event-Id (the same for every subscription that the one event fires), else
    X-Shopify-Webhook-Id (the same on every retry)."""
    for name in ("x-shopify-event-id", "x-shopify-webhook-id"):
        found = text(headers.get(name), 300)
        if found:
            return found
    return body_key(body)


def topic(headers: Mapping[str, str]) -> str:
    """The X-Shopify-Topic header (orders/paid, refunds/create, ...)."""
    return text(headers.get(TOPIC_HEADER)) or "unknown"


def _landing_click(landing_site: Any) -> str | None:
    site = text(landing_site, 4000)
    if not site:
        return None
    values = parse_qs(urlsplit(site).query).get(CLICK_PARAM)
    return text(values[0]) if values else None


def _money(order: dict[str, Any], name: str) -> Decimal:
    return decimal(order.get(name) or "0", name)


def _sale(order: dict[str, Any]) -> Plan:
    order_id = id_of(order.get("id"))
    if order_id is None:
        raise PayloadInvalid("the order has no id")
    code = currency(order.get("currency"))
    # current_subtotal_price: line items after discounts, before shipping; it came in
    # API version 2020-10, subtotal_price before.
    field = (
        "current_subtotal_price"
        if order.get("current_subtotal_price") is not None
        else "subtotal_price"
    )
    amount = _money(order, field)
    if order.get("taxes_included") is True:
        # Tax-inclusive prices: the subtotal holds the line items' tax, which is no base.
        tax_field = (
            "current_total_tax" if order.get("current_total_tax") is not None else "total_tax"
        )
        shipping_tax = sum(
            (
                decimal(t.get("price") or "0", "shipping_lines[].tax_lines[].price")
                for line in items(order.get("shipping_lines"))
                for t in items(line.get("tax_lines"))
            ),
            Decimal(0),
        )
        amount -= _money(order, tax_field) - shipping_tax
    customer = obj(order.get("customer"))
    codes = [text(d.get("code"), 64) for d in items(order.get("discount_codes"))]
    return Plan(
        sale=Sale(
            order_id=order_id,
            amount=amount,
            currency=code,
            occurred_at=instant(order.get("processed_at")) or instant(order.get("created_at")),
            click_id=named_value(items(order.get("note_attributes")), [CLICK_PARAM], "name")
            or _landing_click(order.get("landing_site")),
            promo_code=next((c for c in codes if c), None),
            customer_id=id_of(customer.get("id")),
            customer_email=text(order.get("email"), 320)
            or text(order.get("contact_email"), 320)
            or text(customer.get("email"), 320),
        )
    )


def _line_subtotal(line: dict[str, Any]) -> Decimal:
    # subtotal_set carries the amount as a string; subtotal is a JSON number.
    shop = obj(obj(line.get("subtotal_set")).get("shop_money"))
    if shop.get("amount") is not None:
        return decimal(shop["amount"], "refund_line_items[].subtotal_set.shop_money.amount")
    return decimal(line.get("subtotal"), "refund_line_items[].subtotal")


def _refund(refund: dict[str, Any]) -> Plan:
    refund_id = id_of(refund.get("id"))
    order_id = id_of(refund.get("order_id"))
    if refund_id is None or order_id is None:
        raise PayloadInvalid("the refund has no id or order_id")
    lines = items(refund.get("refund_line_items"))
    amount = sum((_line_subtotal(line) for line in lines), Decimal(0))
    if amount <= 0:
        return Plan.ignore("the refund returns no line items (shipping or an adjustment only)")
    return Plan(
        refunds=(
            RefundPart(
                refund_id=refund_id,
                order_ids=(order_id,),
                amount=amount,
                occurred_at=instant(refund.get("processed_at"))
                or instant(refund.get("created_at")),
            ),
        )
    )


def plan(kind: str, payload: dict[str, Any], *, accept_test_events: bool) -> Plan:
    """What a Shopify webhook of this topic asks for."""
    if kind in ("orders/paid", "orders/cancelled") and payload.get("test") is True:
        if not accept_test_events:
            return Plan.ignore("a test order; the integration takes real ones")
    if kind == "orders/paid":
        return _sale(payload)
    if kind == "refunds/create":
        return _refund(payload)
    if kind == "orders/cancelled":
        order_id = id_of(payload.get("id"))
        if order_id is None:
            raise PayloadInvalid("the order has no id")
        return Plan(cancel=Cancel(order_id=order_id))
    return Plan.ignore(f"topic {kind} is not used")
