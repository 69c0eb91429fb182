from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt

Period = Literal["month", "quarter"]


class Targets(BaseModel):
    model_config = ConfigDict(extra="forbid")

    clicks: StrictInt | None = Field(default=None, ge=0)
    sales: StrictInt | None = Field(default=None, ge=0)
    revenue: str | None = Field(default=None, description="decimal string, program currency")
    new_customers: StrictInt | None = Field(default=None, ge=0)
    conversion_rate: str | None = Field(
        default=None, description="decimal string: (leads + sales) / clicks, e.g. 0.05"
    )
    commission: str | None = Field(default=None, description="decimal string, program currency")


class KpiTargetCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    program_id: uuid.UUID
    partner_id: uuid.UUID | None = Field(default=None, description="null: the whole program")
    period: Period
    start: date = Field(description="first day of the month (or quarter), program time zone")
    targets: Targets


class KpiTargetUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    targets: Targets


class KpiTargetOut(BaseModel):
    id: uuid.UUID
    program_id: uuid.UUID
    partner_id: uuid.UUID | None
    period: Period
    start: date
    targets: Targets
    created_at: datetime
    updated_at: datetime


class Metric(BaseModel):
    metric: str
    target: int | str | None
    actual: int | str | None
    attainment: str | None = Field(description="actual / target")
    previous: int | str | None = Field(description="the period before")
    change: str | None = Field(description="actual / previous - 1")
    projected: int | str | None = Field(description="actual scaled to the whole period")
    on_track: bool | None = Field(description="projected >= target")


class KpiReport(BaseModel):
    program_id: uuid.UUID
    partner_id: uuid.UUID | None
    period: Period
    start: date
    end: date = Field(description="exclusive")
    time_zone: str
    currency: str
    as_of: datetime
    target_id: uuid.UUID | None
    metrics: list[Metric]
