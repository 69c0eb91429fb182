"""Provider payloads as their documentation shows them (trimmed), and their signing."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from typing import Any


def stripe_header(secret: str, body: bytes, t: int | None = None, extra: list[str] = ()) -> str:
    t = int(time.time()) if t is None else t
    sig = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return ",".join([f"t={t}", *extra, f"v1={sig}"])


def b64_signature(secret: str, body: bytes) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def dumps(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload).encode()


def stripe_event(kind: str, obj: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "id": f"evt_{secrets.token_hex(12)}",
        "object": "event",
        "api_version": "2024-06-20",
        "created": int(time.time()),
        "livemode": True,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": kind,
        "data": {"object": obj},
        **extra,
    }


def checkout_session(**overrides: Any) -> dict[str, Any]:
    session: dict[str, Any] = {
        "id": f"cs_live_{secrets.token_hex(12)}",
        "object": "checkout.session",
        "amount_subtotal": 10500,
        "amount_total": 11300,
        "currency": "usd",
        "client_reference_id": None,
        "customer": "cus_NZKoSNL6vB4d6i",
        "customer_details": {"email": "jenny.rosen@example.com", "name": "Jenny Rosen"},
        "customer_email": None,
        "invoice": None,
        "livemode": True,
        "metadata": {},
        "mode": "payment",
        "payment_intent": f"pi_{secrets.token_hex(12)}",
        "payment_status": "paid",
        "status": "complete",
        "total_details": {"amount_discount": 0, "amount_shipping": 500, "amount_tax": 800},
    }
    session.update(overrides)
    return session


def invoice(**overrides: Any) -> dict[str, Any]:
    inv: dict[str, Any] = {
        "id": f"in_{secrets.token_hex(12)}",
        "object": "invoice",
        "amount_paid": 2180,
        "billing_reason": "subscription_cycle",
        "currency": "eur",
        "customer": "cus_NeZwdNtLEOXuvB",
        "customer_email": "jennyrosen@example.com",
        "livemode": True,
        "metadata": {},
        "status": "paid",
        "status_transitions": {"paid_at": int(time.time()) - 10},
        "subscription_details": {"metadata": {}},
        "subtotal": 2000,
        "tax": 180,
        "total": 2180,
        "total_excluding_tax": 2000,
    }
    inv.update(overrides)
    return inv


def charge(**overrides: Any) -> dict[str, Any]:
    ch: dict[str, Any] = {
        "id": f"ch_{secrets.token_hex(12)}",
        "object": "charge",
        "amount": 11300,
        "amount_captured": 11300,
        "amount_refunded": 0,
        "currency": "usd",
        "customer": "cus_NZKoSNL6vB4d6i",
        "invoice": None,
        "livemode": True,
        "paid": True,
        "payment_intent": None,
        "refunded": False,
        "status": "succeeded",
    }
    ch.update(overrides)
    return ch


def shopify_order(**overrides: Any) -> dict[str, Any]:
    order: dict[str, Any] = {
        "id": int.from_bytes(secrets.token_bytes(5), "big"),
        "admin_graphql_api_id": "gid://shopify/Order/820982911946154508",
        "contact_email": "jon@example.com",
        "created_at": "2026-11-20T16:15:47-05:00",
        "currency": "USD",
        "current_subtotal_price": "398.00",
        "current_total_price": "434.82",
        "current_total_tax": "26.82",
        "customer": {"id": 115310627314723954, "email": "john@example.com"},
        "discount_codes": [],
        "email": "jon@example.com",
        "financial_status": "paid",
        "landing_site": "/",
        "line_items": [
            {"id": 866550311766439020, "price": "199.00", "quantity": 2, "sku": "IPOD2008BLACK"}
        ],
        "name": "#9999",
        "note_attributes": [],
        "processed_at": "2026-11-20T16:15:47-05:00",
        "shipping_lines": [{"price": "10.00", "tax_lines": []}],
        "subtotal_price": "398.00",
        "taxes_included": False,
        "test": False,
        "total_price": "434.82",
        "total_tax": "26.82",
    }
    order.update(overrides)
    return order


def shopify_refund(order_id: int, subtotals: list[str], **overrides: Any) -> dict[str, Any]:
    refund: dict[str, Any] = {
        "id": int.from_bytes(secrets.token_bytes(5), "big"),
        "order_id": order_id,
        "created_at": "2026-11-21T12:00:00-05:00",
        "note": "Things were damaged",
        "refund_line_items": [
            {
                "id": 1000 + i,
                "line_item_id": 866550311766439020,
                "quantity": 1,
                "restock_type": "return",
                # The REST payload gives subtotal as a JSON number, beside its _set string.
                "subtotal": float(amount),
                "subtotal_set": {
                    "shop_money": {"amount": amount, "currency_code": "USD"},
                    "presentment_money": {"amount": amount, "currency_code": "USD"},
                },
                "total_tax": 0.0,
            }
            for i, amount in enumerate(subtotals)
        ],
        "transactions": [],
    }
    refund.update(overrides)
    return refund


def woo_order(**overrides: Any) -> dict[str, Any]:
    order: dict[str, Any] = {
        "id": int.from_bytes(secrets.token_bytes(3), "big"),
        "parent_id": 0,
        "status": "processing",
        "currency": "USD",
        "date_created_gmt": "2026-11-20T19:22:10",
        "date_paid_gmt": "2026-11-20T19:22:11",
        "discount_total": "0.00",
        "shipping_total": "10.00",
        "shipping_tax": "0.00",
        "total": "29.35",
        "total_tax": "1.35",
        "customer_id": 0,
        "billing": {"first_name": "John", "email": "john.doe@example.com"},
        "meta_data": [],
        "line_items": [
            {
                "id": 315,
                "name": "Woo Single #1",
                "product_id": 93,
                "quantity": 2,
                "sku": "",
                "price": 3,
                "subtotal": "6.00",
                "total": "6.00",
            }
        ],
        "coupon_lines": [],
        "refunds": [],
    }
    order.update(overrides)
    return order
