"""Marginal tiers: how a month's state turns into its commission, before caps are settled.

Brackets apply like tax brackets on the month's net revenue (or count); a count-based
percent rule takes the rate of the month's count tier.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from service.commissions.explain import text
from service.commissions.state import MonthState
from service.commissions.terms import HUNDRED, ZERO, Explain, Rule, Tier
from service.kit.money import round_money


def slices(quantity: Decimal, tiers: Sequence[Tier]) -> list[tuple[Tier, Decimal | None, Decimal]]:
    """How much of `quantity` falls in each bracket: (tier, upper bound, slice)."""
    out: list[tuple[Tier, Decimal | None, Decimal]] = []
    for i, tier in enumerate(tiers):
        upper = tiers[i + 1].start if i + 1 < len(tiers) else None
        part = quantity - tier.start
        if upper is not None:
            part = min(part, upper - tier.start)
        out.append((tier, upper, max(part, ZERO)))
    return out


def tier_value(rule: Rule, tier: Tier) -> Decimal:
    """The rate (percent) or amount (flat) a tier pays."""
    if rule.type == "percent":
        return (tier.percent or ZERO) / HUNDRED
    return tier.amount or ZERO


def count_level(rule: Rule, count: int) -> Tier:
    """The tier the month's count has reached."""
    # The n-th conversion fills the slice [n-1, n), as revenue fills [r, r+x):
    # a tier "from 10" starts with the 11th conversion of the month.
    reached = max(count - 1, 0)
    level = rule.tiers[0]
    for tier in rule.tiers:
        if tier.start <= reached:
            level = tier
    return level


def unrounded(rule: Rule, state: MonthState) -> Decimal:
    """The month's commission before rounding and caps."""
    revenue = max(state.revenue, ZERO)
    count = Decimal(max(state.count, 0))
    if rule.type == "percent":
        if rule.tiers and rule.tier_basis == "count":
            main = revenue * (count_level(rule, state.count).percent or ZERO) / HUNDRED
        elif rule.tiers:
            main = sum(
                (part * tier_value(rule, tier) for tier, _, part in slices(revenue, rule.tiers)),
                ZERO,
            )
        else:
            main = revenue * (rule.percent or ZERO) / HUNDRED
    elif rule.tiers:
        main = sum(
            (part * tier_value(rule, tier) for tier, _, part in slices(count, rule.tiers)), ZERO
        )
    else:
        main = count * (rule.amount or ZERO)
    special = sum(
        (max(state.category(name), ZERO) * pct / HUNDRED for name, pct in rule.categories), ZERO
    )
    return main + special


def month_value(rule: Rule, state: MonthState, currency: str) -> Decimal:
    """The month's commission, rounded half-even to the currency (caps not applied)."""
    value = round_money(unrounded(rule, state), currency)
    if rule.monthly_cap is not None:
        value = min(value, rule.monthly_cap)
    return value


def brackets(rule: Rule, before: MonthState, after: MonthState) -> list[Explain]:
    """The brackets an operation moved through, with the slice and rate of each."""
    if not rule.tiers:
        return []
    if rule.type == "percent" and rule.tier_basis == "count":
        lo, hi = count_level(rule, before.count), count_level(rule, after.count)
        return [
            {
                "basis": "count",
                "level_before": {"from": text(lo.start), "percent": text(lo.percent)},
                "level_after": {"from": text(hi.start), "percent": text(hi.percent)},
                "applies_to": "the month's whole revenue",
            }
        ]
    if rule.tier_basis == "count":
        qb, qa = Decimal(before.count), Decimal(after.count)
    else:
        qb, qa = before.revenue, after.revenue
    out: list[Explain] = []
    for (tier, upper, part_b), (_, _, part_a) in zip(
        slices(qb, rule.tiers), slices(qa, rule.tiers), strict=True
    ):
        moved = part_a - part_b
        if moved == 0:
            continue
        row: Explain = {"basis": rule.tier_basis, "from": text(tier.start), "to": text(upper)}
        row["slice"] = text(moved)
        if rule.type == "percent":
            row["percent"] = text(tier.percent)
        else:
            row["amount"] = text(tier.amount)
        out.append(row)
    return out
