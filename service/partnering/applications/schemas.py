from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field

from service.kit.jsondoc import TermsDocument

Status = Literal["pending", "approved", "rejected"]


class ApplicationCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    email: EmailStr
    website: str | None = Field(default=None, max_length=2000, description="an http(s) URL")
    message: str | None = Field(default=None, max_length=5000)


class ApplicationCreated(BaseModel):
    id: uuid.UUID
    status: Status


class ApplicationApproval(BaseModel):
    model_config = ConfigDict(extra="forbid")

    terms: TermsDocument = Field(description="the terms of the partner's agreement, from now")
    reason: str | None = Field(default=None, max_length=2000)


class ApplicationRejection(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=2000)


class ApplicationOut(BaseModel):
    id: uuid.UUID
    program_id: uuid.UUID
    name: str
    email: str
    website: str | None
    message: str | None
    status: Status
    reason: str | None
    partner_id: uuid.UUID | None = Field(description="the partner an approval created")
    agreement_id: uuid.UUID | None = Field(description="its agreement in the program")
    link_id: uuid.UUID | None = Field(description="its first link")
    decided_at: datetime | None
    created_at: datetime
