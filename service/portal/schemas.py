"""Shapes of the sign-in link API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class PortalLinkCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    partner_id: uuid.UUID | None = Field(default=None, description="a partner's sign-in")
    role: Literal["admin", "finance"] | None = Field(
        default=None, description="a program manager's (admin) or finance's sign-in"
    )

    @model_validator(mode="after")
    def _one_of(self) -> PortalLinkCreate:
        if (self.partner_id is None) == (self.role is None):
            raise ValueError("give either partner_id or role")
        return self


class PortalLinkOut(BaseModel):
    url: str = Field(description="opens the portal once, within 24 hours")
    expires_at: datetime
    emailed_to: str | None = Field(
        description="the partner's address the link was sent to (AFFILIATE_SMTP_URL set), or null"
    )
