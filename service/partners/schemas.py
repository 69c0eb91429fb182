from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field

from service.kit.jsondoc import Metadata

Status = Literal["pending", "active", "suspended", "terminated"]


class PartnerCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    email: EmailStr
    status: Status = "active"
    parent_id: uuid.UUID | None = None
    payout_method: str | None = Field(default=None, min_length=1, max_length=64)
    payout_details: Metadata = Field(default_factory=dict)
    metadata: Metadata = Field(default_factory=dict)


class PartnerUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=200)
    email: EmailStr | None = None
    status: Status | None = None
    parent_id: uuid.UUID | None = None
    payout_method: str | None = Field(default=None, min_length=1, max_length=64)
    payout_details: Metadata | None = None
    metadata: Metadata | None = None


class PartnerOut(BaseModel):
    id: uuid.UUID
    name: str
    email: str
    status: Status
    parent_id: uuid.UUID | None
    payout_method: str | None
    payout_details: dict[str, Any]
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime
