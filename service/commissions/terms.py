"""Agreement terms as the engine reads them: rules, tiers, categories, caps; validated elsewhere."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

Event = Literal["sale", "lead", "click"]
ConversionEvent = Literal["sale", "lead"]
RuleType = Literal["percent", "flat"]
TierBasis = Literal["revenue", "count"]
Beneficiary = Literal["partner", "parent"]
Explain = dict[str, Any]

ZERO = Decimal(0)
HUNDRED = Decimal(100)


@dataclass(frozen=True)
class Tier:
    """A bracket starting at `start` (revenue, or conversions already counted)."""

    start: Decimal
    percent: Decimal | None = None
    amount: Decimal | None = None


@dataclass(frozen=True)
class Rule:
    """How one event earns. `categories` is a sorted tuple of (name, percent)."""

    event: Event
    type: RuleType
    percent: Decimal | None = None
    amount: Decimal | None = None
    tiers: tuple[Tier, ...] = ()
    tier_basis: TierBasis = "revenue"
    categories: tuple[tuple[str, Decimal], ...] = ()
    recurring_months: int | None = None
    cap_per_conversion: Decimal | None = None
    monthly_cap: Decimal | None = None

    def category_percent(self, name: str | None) -> Decimal | None:
        """The special percent of a category, or None when it takes the rule's rate."""
        for key, pct in self.categories:
            if key == name:
                return pct
        return None


@dataclass(frozen=True)
class Terms:
    """One agreement version's terms, already validated."""

    rules: tuple[Rule, ...]
    parent_override_percent: Decimal | None = None
    hold_days: int | None = None
    min_payout: Decimal | None = None

    def rule_for(self, event: str) -> Rule | None:
        """The rule for an event, or None when the event earns nothing."""
        for rule in self.rules:
            if rule.event == event:
                return rule
        return None
