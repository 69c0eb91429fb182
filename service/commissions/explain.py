"""The explain record: the inputs and rules behind an entry, as strings."""

from __future__ import annotations

from decimal import Decimal

from service.commissions.terms import Explain, Rule
from service.kit.money import from_minor


def text(value: Decimal | None) -> str | None:
    """A Decimal as the explain record writes it (no exponent), None kept."""
    return None if value is None else f"{value:f}"


def rounding(currency: str) -> str:
    """The rounding rule applied, in words, for the currency."""
    return f"half-even to {from_minor(1, currency):f}"


def rule_json(rule: Rule) -> Explain:
    """The rule an entry was computed under."""
    out: Explain = {"event": rule.event, "type": rule.type, "tier_basis": rule.tier_basis}
    if rule.percent is not None:
        out["percent"] = text(rule.percent)
    if rule.amount is not None:
        out["amount"] = text(rule.amount)
    if rule.tiers:
        out["tiers"] = [
            {"from": text(t.start), "percent": text(t.percent), "amount": text(t.amount)}
            for t in rule.tiers
        ]
    if rule.categories:
        out["categories"] = {k: text(v) for k, v in rule.categories}
    if rule.cap_per_conversion is not None:
        out["cap_per_conversion"] = text(rule.cap_per_conversion)
    if rule.monthly_cap is not None:
        out["monthly_cap"] = text(rule.monthly_cap)
    if rule.recurring_months is not None:
        out["recurring_months"] = rule.recurring_months
    return out
