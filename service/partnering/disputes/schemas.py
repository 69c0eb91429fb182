from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Kind = Literal["missing", "declined"]
Status = Literal["open", "accepted", "declined"]


class DisputeCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    program_id: uuid.UUID
    kind: Kind = Field(description="missing: a sale not credited; declined: one held or refused")
    order_id: str = Field(min_length=1, max_length=200)
    claim_amount: str | None = Field(default=None, description="decimal string, program currency")
    evidence: str | None = Field(default=None, max_length=10000)


class DisputeResolution(BaseModel):
    model_config = ConfigDict(extra="forbid")

    outcome: Literal["accepted", "declined"]
    reason: str = Field(min_length=1, max_length=2000, description="the partner sees it")


class DisputeOut(BaseModel):
    id: uuid.UUID
    program_id: uuid.UUID
    partner_id: uuid.UUID
    kind: Kind
    order_id: str
    claim_amount: str | None
    currency: str
    evidence: str | None
    status: Status
    reason: str | None
    conversion_id: uuid.UUID | None = Field(description="the conversion an acceptance changed")
    resolved_at: datetime | None
    created_at: datetime
