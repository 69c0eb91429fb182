from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from service.fraud.schemas import MAX_RULES, FraudRule, check_unique

Method = Literal["promo_code", "click", "customer", "deal"]


RULES_DESCRIPTION = (
    "fraud and traffic quality rules, each {rule, action, ...parameters}; a rule not named "
    "keeps its default. The list replaces the program's: it applies to conversions recorded "
    "from then on, never to earlier ones"
)


DEAL_DAYS = "days an approved deal registration holds its customer for the partner"


def _default_order() -> list[Method]:
    return ["promo_code", "click", "customer"]


class ProgramCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    currency: str = Field(description="ISO 4217 code, e.g. USD")
    time_zone: str = Field(default="UTC", description="IANA zone that defines calendar months")
    default_url: str = Field(description="where links go unless they name a destination")
    allowed_domains: list[str] | None = Field(
        default=None, description="hosts links may point to; '*.example.com' for subdomains"
    )
    fallback_url: str | None = None
    click_param: str = Field(default="aff_click_id", pattern=r"^[A-Za-z0-9_.\-]{1,64}$")
    attribution_window_days: int = Field(default=30, ge=1, le=3650)
    attribution_order: list[Method] = Field(
        default_factory=_default_order, min_length=1, max_length=4
    )
    hold_days: int = Field(default=30, ge=0, le=3650)
    deal_days: int = Field(default=90, ge=1, le=3650, description=DEAL_DAYS)
    min_payout: str = Field(default="0", description="decimal string in the program currency")
    fraud_rules: list[FraudRule] = Field(
        default_factory=list, max_length=MAX_RULES, description=RULES_DESCRIPTION
    )

    _unique_rules = field_validator("fraud_rules")(check_unique)


class ProgramUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=200)
    time_zone: str | None = None
    default_url: str | None = None
    allowed_domains: list[str] | None = None
    fallback_url: str | None = None
    click_param: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.\-]{1,64}$")
    attribution_window_days: int | None = Field(default=None, ge=1, le=3650)
    attribution_order: list[Method] | None = Field(default=None, min_length=1, max_length=4)
    hold_days: int | None = Field(default=None, ge=0, le=3650)
    deal_days: int | None = Field(default=None, ge=1, le=3650, description=DEAL_DAYS)
    min_payout: str | None = None
    fraud_rules: list[FraudRule] | None = Field(
        default=None, max_length=MAX_RULES, description=RULES_DESCRIPTION
    )

    _unique_rules = field_validator("fraud_rules")(lambda v: v if v is None else check_unique(v))


class ProgramOut(BaseModel):
    id: uuid.UUID
    name: str
    currency: str
    time_zone: str
    default_url: str
    allowed_domains: list[str]
    fallback_url: str | None
    click_param: str
    attribution_window_days: int
    attribution_order: list[str]
    hold_days: int
    deal_days: int
    min_payout: str
    fraud_rules: list[FraudRule] = Field(
        description="every rule's setting in force: those named, and the defaults of the rest"
    )
    created_at: datetime
    updated_at: datetime
