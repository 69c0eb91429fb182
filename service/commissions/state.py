"""What the engine takes and gives: a month's state, conversions, refunds, entries to write."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from service.commissions.explain import text
from service.commissions.terms import ZERO, Beneficiary, ConversionEvent, Explain
from service.models.ledger import EntryKind


@dataclass(frozen=True)
class MonthState:
    """One (partner, program, month, rule event): net base, count, categories, written totals."""

    revenue: Decimal = ZERO
    count: int = 0
    category_revenue: tuple[tuple[str, Decimal], ...] = ()
    commission: Decimal = ZERO
    override: Decimal = ZERO

    @classmethod
    def empty(cls) -> MonthState:
        """The state of a month with nothing in it yet."""
        return cls()

    def category(self, name: str) -> Decimal:
        """Net revenue of a special category this month."""
        for key, value in self.category_revenue:
            if key == name:
                return value
        return ZERO

    def as_json(self) -> Explain:
        """Strings for the explain record."""
        return {
            "revenue": text(self.revenue),
            "count": self.count,
            "category_revenue": {k: text(v) for k, v in self.category_revenue},
            "commission": text(self.commission),
            "override": text(self.override),
        }


@dataclass(frozen=True)
class Item:
    """An order line; `amount` is the unit price in the program currency."""

    sku: str
    category: str | None
    amount: Decimal
    quantity: int = 1


def stored_items(rows: Iterable[Mapping[str, Any]], fx_rate: Decimal | None) -> tuple[Item, ...]:
    """Order lines as a conversion stores them (merchant currency) as the engine's Items."""
    # Lines keep the merchant's currency; the engine counts in the program's.
    factor = fx_rate if fx_rate is not None else Decimal(1)
    return tuple(
        Item(
            sku=str(row["sku"]),
            category=row.get("category"),
            amount=Decimal(str(row["amount"])) * factor,
            quantity=int(row.get("quantity") or 1),
        )
        for row in rows
    )


@dataclass(frozen=True)
class ConversionInput:
    """A sale or lead, in the program currency; `recurring_since` only for customer attribution."""

    event: ConversionEvent
    amount: Decimal | None
    occurred_at: datetime
    items: tuple[Item, ...] = ()
    recurring_since: datetime | None = None


@dataclass(frozen=True)
class RefundInput:
    """A refund of part or all of a conversion, with what that conversion already earned.

    `counted` is False when the conversion never moved the month state (it
    earned nothing: no rule, outside its recurring window) or, for a
    conversion without an amount, once it has been refunded in full.
    """

    event: ConversionEvent
    amount: Decimal
    conversion_amount: Decimal
    refunded_before: Decimal = ZERO
    items: tuple[Item, ...] = ()
    earned: Decimal = ZERO
    full: bool = False
    counted: bool = True


@dataclass(frozen=True)
class EntryDraft:
    """A ledger entry to write; `explain` holds the inputs that produced it."""

    kind: EntryKind
    amount: Decimal
    beneficiary: Beneficiary
    explain: Explain


@dataclass(frozen=True)
class Outcome:
    """Entries to write (never zero ones), the month's next state, and why."""

    entries: tuple[EntryDraft, ...]
    new_state: MonthState
    explain: Explain

    def partner_total(self) -> Decimal:
        """Net amount for the partner."""
        return sum((e.amount for e in self.entries if e.beneficiary == "partner"), ZERO)

    def parent_total(self) -> Decimal:
        """Net amount for the parent."""
        return sum((e.amount for e in self.entries if e.beneficiary == "parent"), ZERO)
