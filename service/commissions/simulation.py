"""What-if simulation: a sequence of conversions and refunds priced under given terms."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

from service.commissions.engine import compute_click, compute_conversion, compute_refund
from service.commissions.state import ConversionInput, Item, MonthState, RefundInput
from service.commissions.terms import ZERO, Event, Terms
from service.kit.money import round_money
from service.kit.time import ensure_aware, month_start


@dataclass(frozen=True)
class SimRefund:
    """A refund of a simulated conversion at a moment."""

    amount: Decimal
    occurred_at: datetime


@dataclass(frozen=True)
class SimConversion:
    """A simulated conversion (or click), with any refunds it later gets."""

    occurred_at: datetime
    event: Event = "sale"
    amount: Decimal | None = None
    items: tuple[Item, ...] = ()
    recurring_since: datetime | None = None
    refunds: tuple[SimRefund, ...] = ()


@dataclass(frozen=True)
class SimMonth:
    """Totals of one month and event."""

    month: date
    event: Event
    revenue: Decimal
    count: int
    commission: Decimal
    override: Decimal


@dataclass(frozen=True)
class SimLine:
    """What one simulated conversion earned net of its refunds."""

    index: int
    month: date
    commission: Decimal
    override: Decimal
    reason: str | None = None


@dataclass(frozen=True)
class SimResult:
    """Month totals, per-conversion lines, and the overall totals."""

    months: tuple[SimMonth, ...]
    lines: tuple[SimLine, ...]
    commission: Decimal
    override: Decimal
    entries: int = field(default=0)


def simulate(
    terms: Terms,
    conversions: Sequence[SimConversion],
    currency: str,
    tz: str,
    *,
    has_parent: bool = False,
) -> SimResult:
    """Run conversions and refunds through the engine in time order, month by month."""
    # (when, order, index, refund index or -1): a refund sorts after its
    # conversion even when dated earlier.
    ops: list[tuple[datetime, int, int, int]] = []
    for i, conv in enumerate(conversions):
        at = ensure_aware(conv.occurred_at)
        ops.append((at, 0, i, -1))
        for j, ref in enumerate(conv.refunds):
            ops.append((max(ensure_aware(ref.occurred_at), at), 1, i, j))
    ops.sort()

    states: dict[tuple[date, Event], MonthState] = {}
    earned: dict[int, Decimal] = {}
    parent: dict[int, Decimal] = {}
    refunded: dict[int, Decimal] = {}
    counted: dict[int, bool] = {}
    reasons: dict[int, str] = {}
    entry_count = 0
    for _, _, i, j in ops:
        conv = conversions[i]
        month = month_start(conv.occurred_at, tz)
        key = (month, conv.event)
        state = states.get(key, MonthState.empty())
        if conv.event == "click":
            if j >= 0:
                continue
            outcome = compute_click(terms, state, currency, has_parent)
        elif j < 0:
            outcome = compute_conversion(
                terms,
                ConversionInput(
                    event=conv.event,
                    amount=conv.amount,
                    occurred_at=conv.occurred_at,
                    items=conv.items,
                    recurring_since=conv.recurring_since,
                ),
                state,
                currency,
                has_parent,
            )
            counted[i] = outcome.new_state != state
        else:
            total = round_money(conv.amount or ZERO, currency)
            before = refunded.get(i, ZERO)
            amount = min(round_money(conv.refunds[j].amount, currency), total - before)
            if amount <= 0:
                continue
            outcome = compute_refund(
                terms,
                RefundInput(
                    event=conv.event,
                    amount=amount,
                    conversion_amount=total,
                    refunded_before=before,
                    items=conv.items,
                    earned=earned.get(i, ZERO),
                    full=before + amount >= total,
                    counted=counted.get(i, False),
                ),
                state,
                currency,
                has_parent,
            )
            refunded[i] = before + amount
        states[key] = outcome.new_state
        entry_count += len(outcome.entries)
        earned[i] = earned.get(i, ZERO) + outcome.partner_total()
        parent[i] = parent.get(i, ZERO) + outcome.parent_total()
        if not outcome.entries and "reason" in outcome.explain:
            reasons.setdefault(i, str(outcome.explain["reason"]))

    months = tuple(
        SimMonth(m, ev, s.revenue, s.count, s.commission, s.override)
        for (m, ev), s in sorted(states.items())
    )
    lines = tuple(
        SimLine(
            index=i,
            month=month_start(c.occurred_at, tz),
            commission=earned.get(i, ZERO),
            override=parent.get(i, ZERO),
            reason=reasons.get(i) if earned.get(i, ZERO) == 0 else None,
        )
        for i, c in enumerate(conversions)
    )
    return SimResult(
        months=months,
        lines=lines,
        commission=sum((m.commission for m in months), ZERO),
        override=sum((m.override for m in months), ZERO),
        entries=entry_count,
    )
