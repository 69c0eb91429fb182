"""What a shop's event asks of the conversion path: plain data, made by pure functions.

Each provider module turns a verified payload into a Plan; service.py carries it out with
the same record_conversion and record_refund as the API.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any


class PayloadInvalid(ValueError):
    """A verified body that is not the JSON object its provider documents."""


@dataclass(frozen=True)
class Sale:
    """A paid order: the fields of POST /v1/conversions."""

    order_id: str
    amount: Decimal
    currency: str
    occurred_at: datetime | None = None
    click_id: str | None = None
    promo_code: str | None = None
    # The shop's id of the redeemed promo code (a Stripe promotion code id): resolved to the
    # promo code listing it among its external_ids when promo_code is absent.
    promo_external_id: str | None = None
    customer_id: str | None = None
    customer_email: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RefundPart:
    """A refund of a sale, either of an amount in the sale's currency or, for a provider
    that reports a running total against the gross charge, of a share of the whole."""

    refund_id: str
    order_ids: tuple[str, ...]
    amount: Decimal | None = None
    # (refunded so far, gross charged), both in the provider's minor units.
    cumulative: tuple[int, int] | None = None
    # Conversions whose metadata holds this (key, value) are the order too (Stripe's payment
    # intent of a sale recorded under its invoice id).
    metadata_match: tuple[str, str] | None = None
    occurred_at: datetime | None = None


@dataclass(frozen=True)
class Cancel:
    """An order cancelled after its sale: the conversion is rejected."""

    order_id: str


@dataclass(frozen=True)
class Plan:
    """What one event does; nothing at all means it is ignored, for `ignored`'s reason."""

    sale: Sale | None = None
    refunds: tuple[RefundPart, ...] = ()
    cancel: Cancel | None = None
    ignored: str | None = None

    @staticmethod
    def ignore(reason: str) -> Plan:
        """A plan that does nothing, for the reason given."""
        return Plan(ignored=reason)


def load_json(body: bytes) -> dict[str, Any]:
    """The body as a JSON object, numbers as Decimal (never a float near an amount)."""
    try:
        value = json.loads(body, parse_float=Decimal)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise PayloadInvalid(f"the body is not JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise PayloadInvalid("the body is not a JSON object")
    return value


def body_key(body: bytes) -> str:
    """A dedupe key for a delivery that carries no id of its own."""
    return "sha256:" + hashlib.sha256(body).hexdigest()


def hmac_sha256(secret: str, message: bytes) -> bytes:
    """HMAC-SHA256 of the message under the secret, as every shop signs."""
    return hmac.new(secret.encode(), message, hashlib.sha256).digest()


def text(value: Any, limit: int = 200) -> str | None:
    """A carrier value (id, code, email) as stripped text, or None when empty or absent."""
    if value is None or isinstance(value, bool | dict | list):
        return None
    out = str(value).strip()
    return out[:limit] if out else None


def obj(value: Any) -> dict[str, Any]:
    """A nested object, or an empty one where the payload has none."""
    return value if isinstance(value, dict) else {}


def items(value: Any) -> list[dict[str, Any]]:
    """A list of objects, dropping anything that is not one."""
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def id_of(value: Any) -> str | None:
    """An id given either plainly or as an expanded object with `id` (Stripe's expansion)."""
    if isinstance(value, dict):
        return text(value.get("id"))
    return text(value)


def decimal(value: Any, name: str) -> Decimal:
    """A decimal string or number of the payload, exactly."""
    if isinstance(value, bool) or value is None:
        raise PayloadInvalid(f"{name} is missing")
    if isinstance(value, float):
        raise PayloadInvalid(f"{name} is a float")
    try:
        out = Decimal(str(value).strip())
    except ArithmeticError as exc:
        raise PayloadInvalid(f"{name} is not a number: {value!r}") from exc
    if not out.is_finite():
        raise PayloadInvalid(f"{name} is not a finite number")
    return out


def integer(value: Any, name: str) -> int:
    """An integer of the payload (Stripe's minor units)."""
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise PayloadInvalid(f"{name} is not an integer: {value!r}")
    if isinstance(value, Decimal) and value != value.to_integral_value():
        raise PayloadInvalid(f"{name} is not an integer: {value!r}")
    return int(value)


def currency(value: Any) -> str:
    """A currency code, upper-cased (Stripe sends them lower-case)."""
    code = text(value, 10)
    if code is None:
        raise PayloadInvalid("currency is missing")
    return code.upper()


def instant(value: Any, *, naive_is_utc: bool = False) -> datetime | None:
    """A time of the payload: unix seconds, or RFC 3339 (WooCommerce's *_gmt have no offset)."""
    if value is None or value == "" or isinstance(value, bool):
        return None
    if isinstance(value, int | Decimal):
        return datetime.fromtimestamp(int(value), UTC)
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError as exc:
        raise PayloadInvalid(f"not a time: {value!r}") from exc
    if moment.tzinfo is None:
        if not naive_is_utc:
            raise PayloadInvalid(f"a time without an offset: {value!r}")
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def named_value(entries: Sequence[dict[str, Any]], names: Sequence[str], key: str) -> str | None:
    """The value of the first entry named one of `names` ({name|key: ..., value: ...} lists)."""
    for name in names:
        for entry in entries:
            if entry.get(key) == name:
                found = text(entry.get("value"))
                if found:
                    return found
    return None
