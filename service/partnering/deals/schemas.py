from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field

Status = Literal["submitted", "approved", "rejected", "expired"]


class DealCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    program_id: uuid.UUID
    company: str = Field(min_length=1, max_length=200)
    domain: str = Field(min_length=1, max_length=253, description="the customer's web domain")
    contact_email: EmailStr | None = None
    expected_value: str | None = Field(
        default=None, description="decimal string in the program currency"
    )
    notes: str | None = Field(default=None, max_length=5000)


class DealDecision(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(default=None, max_length=2000, description="the partner sees it")


class DealOut(BaseModel):
    id: uuid.UUID
    program_id: uuid.UUID
    partner_id: uuid.UUID
    company: str
    domain: str
    contact_email: str | None
    expected_value: str | None
    currency: str
    notes: str | None
    status: Status = Field(description="expired: approved, and deal_days have passed")
    reason: str | None
    decided_at: datetime | None
    expires_at: datetime | None
    created_at: datetime
    updated_at: datetime
