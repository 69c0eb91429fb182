"""The fraud rules a program sets, as the API takes and shows them.

Each rule is `{"rule", "action", ...its parameters}`; an unknown rule, action or parameter
is refused. These models are also the plain settings the pure rules read.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator

from service.fraud.markers import DEFAULT_MARKERS, PAID_MARKERS
from service.tracking.urls import is_hostname

Action = Literal["hold", "reject", "off"]
RuleName = Literal[
    "fast_conversion",
    "self_referral",
    "disposable_email",
    "paid_traffic",
    "click_flood",
    "velocity",
    "blocked_referrer",
]
Marker = Literal[PAID_MARKERS]  # type: ignore[valid-type]
MAX_BLOCKED_DOMAINS = 500


class _Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FastConversion(_Rule):
    """The conversion came under `seconds` after its click (click injection, bots)."""

    rule: Literal["fast_conversion"] = "fast_conversion"
    action: Action = "hold"
    seconds: int = Field(default=3, ge=1, le=86_400)


class SelfReferral(_Rule):
    """The customer's email is the partner's, or shares its domain (free mail excepted)."""

    rule: Literal["self_referral"] = "self_referral"
    action: Action = "hold"


class DisposableEmail(_Rule):
    """The customer's email domain is a throwaway one."""

    rule: Literal["disposable_email"] = "disposable_email"
    action: Action = "hold"


class PaidTraffic(_Rule):
    """The click came with a paid-ads click marker (brand bidding)."""

    rule: Literal["paid_traffic"] = "paid_traffic"
    action: Action = "off"
    markers: list[Marker] = Field(  # type: ignore[valid-type]
        default_factory=lambda: list(DEFAULT_MARKERS),
        max_length=len(PAID_MARKERS),
        description=f"any of {', '.join(PAID_MARKERS)}",
    )


class ClickFlood(_Rule):
    """The visitor made more than `max_per_hour` clicks on the partner's links in the hour before."""

    rule: Literal["click_flood"] = "click_flood"
    action: Action = "hold"
    max_per_hour: int = Field(default=20, ge=1, le=1_000_000)


class Velocity(_Rule):
    """The partner's conversions in the program in the past hour exceed `max_per_hour`."""

    rule: Literal["velocity"] = "velocity"
    action: Action = "off"
    max_per_hour: int = Field(default=100, ge=1, le=1_000_000)


class BlockedReferrer(_Rule):
    """The click's referrer host is one of `domains`, or a subdomain of one."""

    rule: Literal["blocked_referrer"] = "blocked_referrer"
    action: Action = "off"
    domains: list[str] = Field(default_factory=list, max_length=MAX_BLOCKED_DOMAINS)

    @field_validator("domains")
    @classmethod
    def _hosts(cls, domains: list[str]) -> list[str]:
        for domain in domains:
            if not is_hostname(domain):
                raise ValueError(f"{domain[:100]!r} is not a lower-case host name")
        return domains


FraudRule = Annotated[
    FastConversion
    | SelfReferral
    | DisposableEmail
    | PaidTraffic
    | ClickFlood
    | Velocity
    | BlockedReferrer,
    Field(discriminator="rule"),
]
MAX_RULES = 7


def check_unique(rules: list[Any]) -> list[Any]:
    """Each rule named at most once (a validator for the program schemas)."""
    seen: set[str] = set()
    for rule in rules:
        if rule.rule in seen:
            raise ValueError(f"rule {rule.rule!r} is named more than once")
        seen.add(rule.rule)
    return rules


class Rules(BaseModel):
    """Every rule's setting in force for a program: what it named, defaults for the rest."""

    model_config = ConfigDict(frozen=True)

    fast_conversion: FastConversion = FastConversion()
    self_referral: SelfReferral = SelfReferral()
    disposable_email: DisposableEmail = DisposableEmail()
    paid_traffic: PaidTraffic = PaidTraffic()
    click_flood: ClickFlood = ClickFlood()
    velocity: Velocity = Velocity()
    blocked_referrer: BlockedReferrer = BlockedReferrer()

    def as_list(self) -> list[FraudRule]:
        """The settings in the order of the rules table."""
        return [getattr(self, name) for name in type(self).model_fields]


_STORED: TypeAdapter[list[FraudRule]] = TypeAdapter(list[FraudRule])


# Validated settings by their stored JSON: every conversion asks for its program's, which
# change seldom, and validating them again cost more than the rest of the fraud check.
_RULES_CACHE: dict[bytes, Rules] = {}
_RULES_CACHE_SIZE = 256


def _cache_key(stored: list[dict[str, Any]]) -> bytes:
    # The stored JSON as text, keys sorted: two lists get one key only when they are the
    # same JSON. orjson's, json.dumps' for what orjson refuses (an integer past 64 bits).
    try:
        return orjson.dumps(stored, option=orjson.OPT_SORT_KEYS, default=str)
    except TypeError:  # orjson.JSONEncodeError
        return json.dumps(stored, sort_keys=True, separators=(",", ":"), default=str).encode()


def rules_in_force(stored: list[dict[str, Any]]) -> Rules:
    """A program's settings from what it stored (the rules it named); read-only."""
    rules = _RULES_CACHE.get(key := _cache_key(stored))
    if rules is None:
        named = {r.rule: r for r in _STORED.validate_python(stored)}
        rules = Rules(**named)
        if len(_RULES_CACHE) >= _RULES_CACHE_SIZE:
            _RULES_CACHE.clear()
        _RULES_CACHE[key] = rules
    return rules


class QualityRow(BaseModel):
    partner_id: uuid.UUID
    partner_name: str
    clicks: int = Field(description="non-bot clicks")
    bots: int = Field(description="clicks by bots and link-preview fetchers")
    bot_share: str | None = Field(
        description="bots / (clicks + bots), 4 decimals; null without any click"
    )
    conversions: int = Field(description="attributed conversions")
    held: int = Field(description="under review now")
    rejected: int = Field(description="rejected, by a rule or by hand")
    approved: int = Field(description="accepted: never held, or approved after review")
    rules: dict[str, int] = Field(
        description="per rule, the conversions it fired on (hold or reject), every rule listed"
    )


class Quality(BaseModel):
    from_: datetime = Field(serialization_alias="from", description="inclusive")
    to: datetime = Field(description="exclusive")
    program_id: uuid.UUID | None
    rows: list[QualityRow]
