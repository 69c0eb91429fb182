"""The commission engine: pure functions over frozen dataclasses, no I/O.

Every rule has a month function T(state): the partner's commission for a
calendar month (program time zone) as a function of that month's state alone,
already rounded half-even to the currency's minor unit and capped by the
monthly cap. A conversion or refund moves the state and writes
T(after) - T(before). Entries are differences of rounded values, so they never
carry sub-minor digits and the month's entries telescope to T(final state):
the total is the same whatever the order of sales and refunds, and a refund of
everything brings it back to exactly zero.

`cap_per_conversion` is the one exception: clipping a single sale breaks the
telescoping, so for such rules refunds reverse per conversion (in proportion
to the amount refunded) instead, and order independence no longer holds.

The parent's override telescopes the same way over O(c) = round(p/100 * c),
c being the partner's commission written for the month.

Sign decides the kind: a negative entry is always a `reversal`, the
beneficiary (`partner` or `parent`) tells whose entry it reverses; positive
partner entries are `commission` (or `click_bounty`), positive parent entries
`override`.

Callers pass the state of the month of the conversion's `occurred_at`, refunds
included, so that a month's totals only ever depend on that month.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from decimal import Decimal
from typing import Any

from service.commissions.explain import rounding, rule_json, text
from service.commissions.state import (
    ConversionInput,
    EntryDraft,
    Item,
    MonthState,
    Outcome,
    RefundInput,
)
from service.commissions.terms import HUNDRED, ZERO, Explain, Rule, Terms
from service.commissions.tiers import brackets, month_value, unrounded
from service.kit.money import round_money
from service.kit.time import add_months, ensure_aware
from service.models.ledger import EntryKind


def _add_categories(
    current: tuple[tuple[str, Decimal], ...], moves: Iterable[tuple[str, Decimal]]
) -> tuple[tuple[str, Decimal], ...]:
    merged = dict(current)
    for name, value in moves:
        merged[name] = merged.get(name, ZERO) + value
    return tuple(sorted((k, v) for k, v in merged.items() if v != 0))


def _split(
    rule: Rule, amount: Decimal, items: Sequence[Item], currency: str
) -> tuple[Decimal, tuple[tuple[str, Decimal], ...], str]:
    """Split a conversion into the tiered base and special-category parts."""
    if not rule.categories or not items:
        return amount, (), "amount"
    totals: dict[str, Decimal] = {}
    for item in items:
        if item.category is not None and rule.category_percent(item.category) is not None:
            totals[item.category] = totals.get(item.category, ZERO) + item.amount * item.quantity
    parts = {k: round_money(v, currency) for k, v in totals.items() if v > 0}
    if not parts:
        return amount, (), "amount"
    special = sum(parts.values(), ZERO)
    if special <= amount:
        return amount - special, tuple(sorted(parts.items())), "items"
    # Order-level discounts can push the special lines above the amount paid:
    # share what was paid between them by weight, the last one taking the rest.
    names = sorted(parts)
    shared: list[tuple[str, Decimal]] = []
    running = ZERO
    for i, name in enumerate(names):
        if i == len(names) - 1:
            share = amount - running
        else:
            share = min(round_money(amount * parts[name] / special, currency), amount - running)
        running += share
        shared.append((name, share))
    return ZERO, tuple(shared), "items_scaled"


def _in_window(rule: Rule, conv: ConversionInput) -> tuple[bool, Explain]:
    if conv.recurring_since is None or rule.recurring_months is None:
        return True, {}
    since = ensure_aware(conv.recurring_since)
    ends = add_months(conv.recurring_since, rule.recurring_months)
    info: Explain = {
        "recurring_since": since.isoformat(),
        "recurring_months": rule.recurring_months,
        "recurring_until": ensure_aware(ends).isoformat(),
    }
    return ensure_aware(conv.occurred_at) < ensure_aware(ends), info


def _nothing(state: MonthState, reason: str, **extra: Any) -> Outcome:
    return Outcome(entries=(), new_state=state, explain={"reason": reason, **extra})


def _settle(
    terms: Terms,
    rule: Rule,
    before: MonthState,
    moved: MonthState,
    currency: str,
    has_parent: bool,
    *,
    positive_kind: EntryKind,
    explain: Explain,
    fixed_delta: Decimal | None = None,
    clip_to_conversion_cap: bool = False,
) -> Outcome:
    """Turn a state move into entries: partner delta, caps, then the parent's override."""
    t_before = month_value(rule, before, currency)
    t_after = month_value(rule, moved, currency)
    delta = t_after - t_before if fixed_delta is None else fixed_delta
    caps: list[Explain] = []
    if clip_to_conversion_cap and rule.cap_per_conversion is not None:
        if delta > rule.cap_per_conversion:
            caps.append({"cap": "cap_per_conversion", "limit": text(rule.cap_per_conversion)})
            delta = rule.cap_per_conversion
    if rule.monthly_cap is not None and delta > 0:
        room = max(rule.monthly_cap - before.commission, ZERO)
        if delta > room:
            caps.append({"cap": "monthly_cap", "limit": text(rule.monthly_cap), "room": text(room)})
            delta = room
    if rule.monthly_cap is not None and fixed_delta is None:
        uncapped = round_money(unrounded(rule, moved), currency)
        if uncapped > rule.monthly_cap:
            caps.append(
                {
                    "cap": "monthly_cap",
                    "limit": text(rule.monthly_cap),
                    "uncapped_month_total": text(uncapped),
                }
            )
    commission = before.commission + delta

    pct = terms.parent_override_percent
    o_delta = ZERO
    override_explain: Explain | None = None
    if has_parent and pct is not None:
        o_before = round_money(pct / HUNDRED * before.commission, currency)
        o_after = round_money(pct / HUNDRED * commission, currency)
        o_delta = o_after - o_before
        override_explain = {
            "override_percent": text(pct),
            "partner_commission_before": text(before.commission),
            "partner_commission_after": text(commission),
            "override_before": text(o_before),
            "override_after": text(o_after),
            "rounding": rounding(currency),
        }
    # As dataclasses.replace(moved, ...) makes it, at half its cost (it reads the fields each time).
    new_state = MonthState(
        revenue=moved.revenue,
        count=moved.count,
        category_revenue=moved.category_revenue,
        commission=commission,
        override=before.override + o_delta,
    )

    record: Explain = {
        **explain,
        "rule": rule_json(rule),
        "brackets": brackets(rule, before, moved),
        "state_before": before.as_json(),
        "state_after": new_state.as_json(),
        "month_total_before": text(t_before),
        "month_total_after": text(t_after),
        "caps_applied": caps,
        "rounding": rounding(currency),
    }
    if override_explain is not None:
        record["override"] = override_explain
    elif pct is not None:
        record["override"] = {"skipped": "partner has no parent"}

    entries: list[EntryDraft] = []
    if delta != 0:
        kind = positive_kind if delta > 0 else EntryKind.reversal
        entries.append(EntryDraft(kind=kind, amount=delta, beneficiary="partner", explain=record))
    elif "reason" not in record:
        record["reason"] = _why_zero(rule, caps, before)
    if o_delta != 0 and override_explain is not None:
        kind = EntryKind.override if o_delta > 0 else EntryKind.reversal
        entries.append(
            EntryDraft(
                kind=kind,
                amount=o_delta,
                beneficiary="parent",
                explain={**override_explain, "partner_delta": text(delta)},
            )
        )
    return Outcome(entries=tuple(entries), new_state=new_state, explain=record)


def _why_zero(rule: Rule, caps: list[Explain], before: MonthState) -> str:
    if any(c["cap"] == "monthly_cap" for c in caps) or (
        rule.monthly_cap is not None and before.commission >= rule.monthly_cap
    ):
        return "monthly cap reached"
    return "the month's commission did not change (zero rate, or below the minor unit)"


# --- public functions ------------------------------------------------------


def month_total(terms: Terms, state: MonthState, currency: str, event: str = "sale") -> Decimal:
    """T(state): the month's commission under the event's rule, rounded and capped."""
    rule = terms.rule_for(event)
    if rule is None:
        return ZERO
    return month_value(rule, state, currency)


def compute_conversion(
    terms: Terms, conv: ConversionInput, state: MonthState, currency: str, has_parent: bool
) -> Outcome:
    """Entries for a sale or lead, given the month state of its rule."""
    rule = terms.rule_for(conv.event)
    if rule is None:
        return _nothing(state, "no rule for event", event=conv.event)
    if conv.amount is None and conv.event == "sale":
        raise ValueError("a sale needs an amount")
    amount = round_money(conv.amount if conv.amount is not None else ZERO, currency)
    if amount < 0:
        raise ValueError("a conversion amount must not be negative")
    earns, window = _in_window(rule, conv)
    if not earns:
        # Outside the window the sale is not this partner's commissionable
        # revenue, so it must not push them up the tiers either.
        return _nothing(state, "recurring window ended", event=conv.event, **window)
    base, parts, split = _split(rule, amount, conv.items, currency)
    moved = MonthState(
        revenue=state.revenue + base,
        count=state.count + 1,
        category_revenue=_add_categories(state.category_revenue, parts),
        commission=state.commission,
        override=state.override,
    )
    explain: Explain = {
        "event": conv.event,
        "operation": "conversion",
        "amount": text(amount),
        "split": split,
        "tiered_base": text(base),
        "category_parts": [
            {"category": k, "amount": text(v), "percent": text(rule.category_percent(k))}
            for k, v in parts
        ],
        **window,
    }
    return _settle(
        terms,
        rule,
        state,
        moved,
        currency,
        has_parent,
        positive_kind=EntryKind.commission,
        explain=explain,
        clip_to_conversion_cap=True,
    )


def compute_click(terms: Terms, state: MonthState, currency: str, has_parent: bool) -> Outcome:
    """The bounty for one billable click, given the month state of the click rule."""
    rule = terms.rule_for("click")
    if rule is None:
        return _nothing(state, "no rule for event", event="click")
    moved = replace(state, count=state.count + 1)
    return _settle(
        terms,
        rule,
        state,
        moved,
        currency,
        has_parent,
        positive_kind=EntryKind.click_bounty,
        explain={"event": "click", "operation": "click"},
        clip_to_conversion_cap=True,
    )


def compute_clicks(
    terms: Terms, state: MonthState, clicks: int, currency: str, has_parent: bool
) -> Outcome:
    """The bounty for a day's billable clicks at once (fewer, negative, for a correction),
    given the month state of the click rule. Monthly tiers and caps apply as for one click."""
    rule = terms.rule_for("click")
    if rule is None:
        return _nothing(state, "no rule for event", event="click")
    moved = replace(state, count=state.count + clicks)
    return _settle(
        terms,
        rule,
        state,
        moved,
        currency,
        has_parent,
        positive_kind=EntryKind.click_bounty,
        explain={"event": "click", "operation": "clicks", "clicks": clicks},
    )


def compute_refund(
    terms: Terms, refund: RefundInput, state: MonthState, currency: str, has_parent: bool
) -> Outcome:
    """Reversals for a refund, given the state of the month the conversion happened in."""
    rule = terms.rule_for(refund.event)
    if rule is None:
        return _nothing(state, "no rule for event", event=refund.event)
    if not refund.counted:
        return _nothing(state, "the conversion earned nothing; nothing to reverse")
    total = round_money(refund.conversion_amount, currency)
    before_cum = round_money(refund.refunded_before, currency)
    now = round_money(refund.amount, currency)
    after_cum = before_cum + now
    if now < 0 or before_cum < 0:
        raise ValueError("refund amounts must not be negative")
    if after_cum > total:
        raise ValueError("refunded more than the conversion amount")
    if total > 0 and before_cum == total:
        # Already fully refunded: its count and revenue have left the month.
        return _nothing(state, "the conversion was already fully refunded")
    full = refund.full or after_cum == total

    base, parts, split = _split(rule, total, refund.items, currency)

    def removed(part: Decimal, cumulative: Decimal, is_full: bool) -> Decimal:
        # Each part is removed in proportion to the amount refunded so far;
        # a full refund removes exactly what was added, whatever the rounding.
        if is_full:
            return part
        if total == 0:
            return ZERO
        return round_money(part * cumulative / total, currency)

    base_move = removed(base, after_cum, full) - removed(base, before_cum, False)
    part_moves = [
        (name, removed(p, after_cum, full) - removed(p, before_cum, False)) for name, p in parts
    ]
    moved = replace(
        state,
        revenue=state.revenue - base_move,
        count=state.count - (1 if full else 0),
        category_revenue=_add_categories(state.category_revenue, ((k, -v) for k, v in part_moves)),
    )
    explain: Explain = {
        "event": refund.event,
        "operation": "refund",
        "refund_amount": text(now),
        "conversion_amount": text(total),
        "refunded_before": text(before_cum),
        "refunded_after": text(after_cum),
        "full": full,
        "split": split,
        "tiered_base_removed": text(base_move),
        "category_parts_removed": [{"category": k, "amount": text(v)} for k, v in part_moves],
    }
    fixed: Decimal | None = None
    if rule.cap_per_conversion is not None:
        # Clipped sales break the month telescoping, so reverse this
        # conversion's own net earnings instead: never below zero, and all of
        # it on a full refund.
        earned = max(refund.earned, ZERO)
        remaining = total - before_cum
        if full:
            fixed = -earned
        elif rule.type == "flat" or remaining <= 0:
            fixed = ZERO
        else:
            fixed = -round_money(earned * now / remaining, currency)
        explain["per_conversion"] = {
            "earned_before": text(earned),
            "basis": "full refund" if full else "share of the remaining amount",
        }
    return _settle(
        terms,
        rule,
        state,
        moved,
        currency,
        has_parent,
        positive_kind=EntryKind.commission,
        explain=explain,
        fixed_delta=fixed,
    )
