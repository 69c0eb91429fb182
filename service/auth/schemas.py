from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from service.models import Role


class ApiKeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Role
    name: str | None = Field(default=None, max_length=200)
    program_ids: list[uuid.UUID] = Field(default_factory=list)
    partner_id: uuid.UUID | None = None


class ApiKeyOut(BaseModel):
    id: uuid.UUID
    name: str | None
    prefix: str
    role: Role
    program_ids: list[uuid.UUID]
    partner_id: uuid.UUID | None
    created_at: datetime
    revoked_at: datetime | None


class ApiKeyCreated(ApiKeyOut):
    key: str = Field(description="the key itself; shown this once, only a hash is stored")
