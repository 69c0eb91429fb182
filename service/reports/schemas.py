"""Shapes of the performance report. Money is a decimal string beside its currency."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, Field

GroupBy = Literal["day", "partner", "link", "program", "sub1"]
Format = Literal["json", "csv"]
DayBoundaries = Literal["exact", "approximate to the hour"]


class DayKey(BaseModel):
    day: date = Field(description="calendar day in the report's time_zone")


class PartnerKey(BaseModel):
    partner_id: uuid.UUID
    partner_name: str


class LinkKey(BaseModel):
    link_id: uuid.UUID | None = Field(description="null: conversions attributed without a link")
    code: str | None


class ProgramKey(BaseModel):
    program_id: uuid.UUID
    name: str


class Sub1Key(BaseModel):
    sub1: str | None = Field(description="null: clicks without sub1, conversions without a click")


RowKey = DayKey | PartnerKey | LinkKey | ProgramKey | Sub1Key


class Metrics(BaseModel):
    currency: str
    clicks: int = Field(description="non-bot clicks")
    unique_clicks: int | None = Field(
        description="first clicks of a visitor on a link in a UTC day; null when grouped by sub1"
    )
    bots: int = Field(description="clicks by bots and link-preview fetchers")
    leads: int = Field(description="lead conversions not rejected")
    sales: int = Field(description="sale conversions not rejected")
    conversion_rate: str | None = Field(
        description="(leads + sales) / clicks, 4 decimals; null when clicks = 0"
    )
    revenue: str = Field(description="non-rejected sales less their refunds")
    commission: str = Field(description="ledger entries, all kinds, net")
    epc: str | None = Field(
        description="commission / clicks, to the minor unit; null when no clicks"
    )


class Row(Metrics):
    key: RowKey


class Filters(BaseModel):
    program_id: uuid.UUID | None
    partner_id: uuid.UUID | None
    link_id: uuid.UUID | None


class Performance(BaseModel):
    from_: datetime = Field(serialization_alias="from", description="inclusive")
    to: datetime = Field(description="exclusive")
    time_zone: str
    day_boundaries: DayBoundaries = Field(
        description="`approximate to the hour` when the zone's offset is not whole hours: "
        "clicks are counted by hour, so such a day's clicks shift by the offset's minutes"
    )
    group_by: GroupBy
    filters: Filters
    rows: list[Row]
    totals: list[Metrics] = Field(description="per currency")
    clicks_lag_seconds: float | None = Field(
        default=None,
        description="how far the click counts may trail the answered redirects: the age of "
        "the oldest answered click not in the database yet (0 when every one is); null "
        "when it cannot be known right now (the click stream does not answer)",
    )
