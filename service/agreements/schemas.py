from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field


class AgreementCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    program_id: uuid.UUID
    effective_from: AwareDatetime | None = Field(
        default=None, description="when the terms start; default now"
    )
    terms: dict[str, Any]


class VersionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    effective_from: AwareDatetime | None = Field(
        default=None, description="now or later; the past is never rewritten"
    )
    terms: dict[str, Any]


class Termination(BaseModel):
    model_config = ConfigDict(extra="forbid")

    at: AwareDatetime | None = Field(default=None, description="now or later; default now")
    reason: str | None = Field(default=None, max_length=2000)


class VersionOut(BaseModel):
    version: int
    effective_from: datetime
    terms: dict[str, Any]
    created_at: datetime


class AgreementOut(BaseModel):
    id: uuid.UUID
    partner_id: uuid.UUID
    program_id: uuid.UUID
    starts_at: datetime
    terminated_at: datetime | None
    termination_reason: str | None
    status: str = Field(description="scheduled, active or terminated, as of now")
    current_version: int | None = Field(description="the version in force now, if any")
    versions: list[VersionOut]
    created_at: datetime
