"""Request and response shapes of payouts. Money is a decimal string beside its currency."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from service.kit.time import Instant
from service.ledger.schemas import EntryOut

PayoutStatusName = Literal["open", "paid", "failed"]
Format = Literal["json", "csv"]


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value.strip()


class PreviewItem(BaseModel):
    partner_id: uuid.UUID
    partner_name: str
    partner_email: str
    payout_method: str | None
    currency: str
    payable: str = Field(description="available, not held and in no payout; may be negative")
    pending: str = Field(description="not yet available (hold period)")
    on_hold: str = Field(description="entries of conversions under review")
    carried: str = Field(description="the payable balance when it is not paid now")
    min_payout: str
    eligible: bool
    entry_count: int = Field(description="payable entries a run would lock")


class PreviewTotals(BaseModel):
    payable: str
    pending: str
    on_hold: str
    carried: str
    eligible_count: int
    amount_to_pay: str


class Preview(BaseModel):
    as_of: datetime
    program_id: uuid.UUID | None
    items: list[PreviewItem]
    totals: dict[str, PreviewTotals] = Field(description="per currency")


class RunCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    as_of: Instant = Field(description="entries available at or before this are paid")
    program_id: uuid.UUID | None = Field(default=None, description="all programs when null")


class RunPayout(BaseModel):
    id: uuid.UUID
    partner_id: uuid.UUID
    partner_name: str
    currency: str
    amount: str
    entry_count: int
    status: PayoutStatusName
    period_start: datetime | None
    period_end: datetime | None


class AmountCount(BaseModel):
    amount: str
    count: int


class RunOut(BaseModel):
    id: uuid.UUID
    as_of: datetime
    program_id: uuid.UUID | None
    idempotency_key: str
    created_at: datetime
    payouts: list[RunPayout]
    totals: dict[str, AmountCount] = Field(description="per currency")


class RunSummary(BaseModel):
    id: uuid.UUID
    as_of: datetime
    program_id: uuid.UUID | None
    idempotency_key: str
    created_at: datetime
    totals: dict[str, AmountCount] = Field(description="per currency")


class PayoutOut(BaseModel):
    id: uuid.UUID
    run_id: uuid.UUID
    partner_id: uuid.UUID
    currency: str
    amount: str
    entry_count: int
    status: PayoutStatusName
    period_start: datetime | None
    period_end: datetime | None
    payout_method: str | None
    reference: str | None
    paid_at: datetime | None
    failed_at: datetime | None
    failure_reason: str | None
    created_at: datetime
    updated_at: datetime


class PayoutDetail(PayoutOut):
    entries: list[EntryOut] = Field(description="the ledger entries locked into this payout")


class MarkPaid(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reference: str = Field(min_length=1, max_length=500, description="the transfer reference")
    paid_at: Instant | None = Field(default=None, description="defaults to now")

    _reference = field_validator("reference")(_not_blank)


class MarkFailed(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=2000)

    _reason = field_validator("reason")(_not_blank)


class ReportItem(BaseModel):
    partner_id: uuid.UUID
    partner_name: str
    partner_email: str
    currency: str
    amount: str
    payout_count: int
    references: list[str]


class Report(BaseModel):
    from_: datetime = Field(alias="from", serialization_alias="from")
    to: datetime
    items: list[ReportItem]
    totals: dict[str, AmountCount] = Field(description="per currency")

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)
