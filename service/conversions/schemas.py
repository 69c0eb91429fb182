from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from service.kit.jsondoc import Metadata
from service.kit.time import Instant
from service.ledger.schemas import EntryOut


def _no_float(value: object) -> object:
    if isinstance(value, bool) or isinstance(value, float | int):
        raise ValueError('must be a decimal string such as "12.34", not a JSON number')
    return value


class ItemIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sku: str = Field(min_length=1, max_length=200)
    category: str | None = Field(default=None, max_length=200)
    amount: str = Field(description="unit price, decimal string in the conversion currency")
    quantity: int = Field(default=1, ge=1, le=1_000_000)

    _amount = field_validator("amount", mode="before")(_no_float)


class ConversionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    program_id: uuid.UUID
    type: Literal["lead", "sale"]
    order_id: str = Field(min_length=1, max_length=200)
    amount: str | None = Field(default=None, description="decimal string; required for sales")
    currency: str | None = Field(default=None, description="default: the program's")
    occurred_at: Instant | None = Field(default=None, description="default: now")
    click_id: str | None = Field(default=None, max_length=200)
    promo_code: str | None = Field(default=None, min_length=1, max_length=64)
    customer_id: str | None = Field(default=None, min_length=1, max_length=200)
    customer_email: str | None = Field(default=None, max_length=320)
    items: list[ItemIn] = Field(default_factory=list, max_length=1000)
    metadata: Metadata = Field(default_factory=dict)

    _amount = field_validator("amount", mode="before")(_no_float)


class RefundCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    program_id: uuid.UUID
    order_id: str = Field(min_length=1, max_length=200)
    refund_id: str = Field(min_length=1, max_length=200)
    amount: str = Field(description="decimal string in the conversion's currency")
    occurred_at: Instant | None = None

    _amount = field_validator("amount", mode="before")(_no_float)


class ReviewDecision(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(default=None, max_length=2000, description="shown to the partner")


class Reason(BaseModel):
    method: str
    reason: str


class Attribution(BaseModel):
    partner_id: uuid.UUID | None
    method: Literal["promo_code", "click", "customer", "deal", "dispute"] | None = Field(
        description="dispute: credited by hand when the partner's dispute of a missing sale was accepted"
    )
    reasons: list[Reason]
    detail: dict[str, str] | None = None


class RefundOut(BaseModel):
    id: uuid.UUID
    refund_id: str
    conversion_id: uuid.UUID
    amount: str
    currency: str
    program_amount: str
    created_at: datetime
    reversals: list[EntryOut]


class FraudHit(BaseModel):
    rule: str
    action: Literal["hold", "reject"]
    detail: str


class ConversionOut(BaseModel):
    id: uuid.UUID
    program_id: uuid.UUID
    type: str
    order_id: str
    status: Literal["accepted", "review", "rejected"]
    review_reason: str | None = Field(
        description="why it is held or rejected: the fraud rules' details, or the reviewer's reason"
    )
    fraud: list[FraudHit] = Field(
        description="the fraud rules that fired when it was recorded, under the rules then in force"
    )
    amount: str | None
    currency: str
    program_amount: str | None
    program_currency: str
    fx_rate: str | None
    refunded_amount: str
    occurred_at: datetime
    click_id: str | None
    promo_code: str | None
    customer_id: str | None
    items: list[dict[str, Any]]
    metadata: dict[str, Any]
    attribution: Attribution
    commissions: list[EntryOut]
    created_at: datetime
    updated_at: datetime


class FxRateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    base_currency: str
    quote_currency: str
    rate: str = Field(description="quote units for one base unit, decimal string")
    date: date

    _rate = field_validator("rate", mode="before")(_no_float)


class FxRateOut(BaseModel):
    base_currency: str
    quote_currency: str
    rate: str
    date: date
