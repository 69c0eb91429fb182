"""The explain record: the inputs and rules behind an entry, as strings."""

from __future__ import annotations

from decimal import Decimal
from functools import lru_cache

from service.commissions.terms import Explain, Rule
from service.kit.money import from_minor


def text(value: Decimal | None) -> str | None:
    """A Decimal as the explain record writes it (no exponent), None kept."""
    return None if value is None else f"{value:f}"


@lru_cache(maxsize=64)
def rounding(currency: str) -> str:
    """The rounding rule applied, in words, for the currency."""
    return f"half-even to {from_minor(1, currency):f}"


# Rules are immutable, and an agreement version's are parsed once and kept (agreements
# .terms): each one's record is made once, held with the rule itself so that the key (its
# id) cannot name another rule later. Bounded: emptied when full.
_RULE_JSON: dict[int, tuple[Rule, Explain]] = {}
_RULE_JSON_LIMIT = 1024


def rule_json(rule: Rule) -> Explain:
    """The rule an entry was computed under. The same dict for the same rule: the records
    it goes into are written as JSON, never changed."""
    held = _RULE_JSON.get(id(rule))
    if held is not None and held[0] is rule:
        return held[1]
    if len(_RULE_JSON) >= _RULE_JSON_LIMIT:
        _RULE_JSON.clear()
    out = _rule_json(rule)
    _RULE_JSON[id(rule)] = (rule, out)
    return out


def _rule_json(rule: Rule) -> Explain:
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
