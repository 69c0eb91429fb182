from __future__ import annotations

import uuid

from pydantic import BaseModel, ConfigDict, Field


class AdjustmentCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    partner_id: uuid.UUID
    program_id: uuid.UUID
    amount: str = Field(description="decimal string; negative for a correction, never zero")
    currency: str = Field(description="the program's currency")
    reason: str = Field(min_length=1, max_length=2000)
