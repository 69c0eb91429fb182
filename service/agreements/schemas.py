from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt

from service.agreements.terms import DecimalStr
from service.kit.jsondoc import TermsDocument
from service.kit.time import Instant


class AgreementCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    program_id: uuid.UUID
    effective_from: Instant | None = Field(
        default=None, description="when the terms start; default now"
    )
    terms: TermsDocument


class VersionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    effective_from: Instant | None = Field(
        default=None, description="now or later; the past is never rewritten"
    )
    terms: TermsDocument


class Termination(BaseModel):
    model_config = ConfigDict(extra="forbid")

    at: Instant | None = Field(default=None, description="now or later; default now")
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


# --- what-if simulation ----------------------------------------------------

# Bounds the work one request can ask of the engine and the size of the answer.
MAX_SIM_CONVERSIONS = 10_000


class SimItemIn(BaseModel):
    """An order line: unit price in the program currency."""

    model_config = ConfigDict(extra="forbid")

    sku: str = Field(max_length=200)
    category: str | None = Field(default=None, max_length=200)
    amount: DecimalStr
    quantity: StrictInt = Field(default=1, ge=1, le=1_000_000)


class SimRefundIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount: DecimalStr = Field(description="in the program currency")
    occurred_at: Instant


class SimConversionIn(BaseModel):
    """A hypothetical sale or lead, in the program currency."""

    model_config = ConfigDict(extra="forbid")

    occurred_at: Instant
    type: Literal["sale", "lead"]
    amount: DecimalStr | None = Field(default=None, description="required for a sale")
    items: list[SimItemIn] = Field(default_factory=list, max_length=1000)
    refunds: list[SimRefundIn] = Field(default_factory=list, max_length=1000)
    recurring_since: Instant | None = Field(
        default=None,
        description="the customer's first attributed conversion, for recurring_months",
    )


class SimulationRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    terms: TermsDocument = Field(description="the proposed terms, validated like any terms")
    start: Instant = Field(alias="from", description="inclusive")
    end: Instant = Field(alias="to", description="exclusive; at most 366 days after from")
    conversions: list[SimConversionIn] | None = Field(
        default=None,
        max_length=MAX_SIM_CONVERSIONS,
        description="hypothetical conversions; default: the partner's stored ones in the period",
    )


class SimPeriodOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    start: datetime = Field(serialization_alias="from")
    end: datetime = Field(serialization_alias="to")


class SimTotalsOut(BaseModel):
    commission: str = Field(description="the partner's net commission")
    override: str = Field(description="the parent's net override")


class SimActualOut(SimTotalsOut):
    entries: int
    partner_by_kind: dict[str, str] = Field(description="the partner's entries, net per kind")
    parent_by_kind: dict[str, str] = Field(description="the parent's entries, net per kind")


class SimMonthOut(BaseModel):
    month: date
    event: str
    revenue: str
    count: int
    commission: str
    override: str


class SimProposedOut(SimTotalsOut):
    months: list[SimMonthOut]


class SimLineOut(BaseModel):
    conversion_id: uuid.UUID | None = Field(description="a stored conversion")
    index: int | None = Field(description="position in the request's conversions")
    month: date
    current: str
    proposed: str
    reason: str | None = Field(description="why the proposed terms pay nothing, when they do not")
    current_reason: str | None = Field(description="why the current terms pay nothing")


class SimulationOut(BaseModel):
    period: SimPeriodOut
    currency: str
    conversions: int
    actual: SimActualOut | None = Field(
        description="the ledger's entries for these conversions; null for hypothetical ones"
    )
    current_terms: SimTotalsOut = Field(
        description="the same conversions run through the versions in force at each"
    )
    proposed: SimProposedOut
    difference: SimTotalsOut = Field(description="proposed minus current_terms")
    lines: list[SimLineOut]
