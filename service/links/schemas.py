from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from service.kit.time import Instant

LinkStatusName = Literal["active", "paused"]
PromoStatusName = Literal["active", "disabled"]

# Either [["key", "value"], ...] (order and repeated keys kept) or {"key": "value"}.
ParamsIn = list[list[str]] | dict[str, str]

MAX_EXTERNAL_IDS = 20
EXTERNAL_IDS_DOC = (
    "the shop's ids for this code (Stripe promotion code ids, promo_...): a sale carrying one"
    " is attributed by this code; each 1-255 printable characters, unique in the program"
)


class LinkCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    program_id: uuid.UUID
    partner_id: uuid.UUID | None = Field(
        default=None, description="required for admin keys; a partner key links for itself"
    )
    code: str | None = Field(
        default=None,
        description="vanity code (3-64 of A-Z a-z 0-9 _ -, case-sensitive); random when absent",
    )
    destination_url: str | None = Field(
        default=None, description="on one of the program's allowed_domains; default_url if absent"
    )
    params: ParamsIn | None = Field(
        default=None, description="fixed query params added to every redirect"
    )
    expires_at: Instant | None = None
    status: LinkStatusName = "active"


class LinkUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    destination_url: str | None = None
    params: ParamsIn | None = None
    expires_at: Instant | None = None
    status: LinkStatusName | None = None


class LinkOut(BaseModel):
    id: uuid.UUID
    program_id: uuid.UUID
    partner_id: uuid.UUID
    code: str
    url: str = Field(description="the tracking URL to share")
    destination_url: str
    params: list[list[str]]
    expires_at: datetime | None
    status: LinkStatusName
    paused_by: Literal["admin", "partner"] | None = Field(
        description="who paused the link; a partner cannot re-activate an admin's pause"
    )
    created_at: datetime
    updated_at: datetime


class PromoCodeCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    program_id: uuid.UUID
    partner_id: uuid.UUID
    code: str = Field(description="case-insensitive, unique in the program")
    valid_from: Instant | None = None
    valid_to: Instant | None = None
    max_uses: int | None = Field(default=None, ge=1, le=1_000_000_000)
    status: PromoStatusName = "active"
    external_ids: list[str] = Field(
        default_factory=list, max_length=MAX_EXTERNAL_IDS, description=EXTERNAL_IDS_DOC
    )


class PromoCodeUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    valid_from: Instant | None = None
    valid_to: Instant | None = None
    max_uses: int | None = Field(default=None, ge=1, le=1_000_000_000)
    status: PromoStatusName | None = None
    external_ids: list[str] | None = Field(
        default=None, max_length=MAX_EXTERNAL_IDS, description=EXTERNAL_IDS_DOC
    )


class PromoCodeOut(BaseModel):
    id: uuid.UUID
    program_id: uuid.UUID
    partner_id: uuid.UUID
    code: str
    valid_from: datetime | None
    valid_to: datetime | None
    max_uses: int | None
    uses: int
    status: PromoStatusName
    external_ids: list[str] = Field(description="the shop's ids for this code")
    created_at: datetime
    updated_at: datetime
