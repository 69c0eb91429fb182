"""Property tests: order independence, exact reversal, caps and rounding of the engine."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from itertools import pairwise

from hypothesis import given, settings
from hypothesis import strategies as st

from service.commissions.engine import compute_conversion, compute_refund, month_total
from service.commissions.state import (
    ConversionInput,
    EntryDraft,
    Item,
    MonthState,
    Outcome,
    RefundInput,
)
from service.commissions.terms import Rule, Terms, Tier
from service.kit.money import from_minor, minor_units, round_money, to_minor

ZERO = Decimal(0)
NOW = datetime(2025, 6, 10, tzinfo=UTC)
CURRENCIES = ["USD", "JPY", "KWD"]
SETTINGS = settings(max_examples=200, deadline=None)

percents = st.integers(0, 10_000).map(lambda n: Decimal(n).scaleb(-2))


def money(currency: str, low: int, high: int) -> st.SearchStrategy[Decimal]:
    return st.integers(low, high).map(lambda n: from_minor(n, currency))


@dataclass(frozen=True)
class Sale:
    amount: Decimal
    items: tuple[Item, ...]
    refunds: tuple[Decimal, ...]


@st.composite
def rule_st(draw: st.DrawFn, currency: str, per_conversion_cap: bool) -> Rule:
    shape = draw(
        st.sampled_from(["percent", "revenue_tiers", "count_percent", "flat", "flat_count_tiers"])
    )
    monthly_cap = draw(st.none() | money(currency, 0, 500_000))
    cap = draw(money(currency, 0, 100_000)) if per_conversion_cap else None
    categories: tuple[tuple[str, Decimal], ...] = ()
    if shape in ("percent", "revenue_tiers", "count_percent") and draw(st.booleans()):
        categories = (("gift-cards", draw(percents)),)
    common: dict[str, object] = {
        "monthly_cap": monthly_cap,
        "cap_per_conversion": cap,
        "categories": categories,
    }
    if shape == "percent":
        return Rule("sale", "percent", percent=draw(percents), **common)  # type: ignore[arg-type]
    if shape == "revenue_tiers":
        starts = sorted(draw(st.sets(st.integers(1, 1_500_000), max_size=3)))
        tiers = [Tier(from_minor(0, currency), draw(percents))]
        tiers += [Tier(from_minor(s, currency), draw(percents)) for s in starts]
        return Rule("sale", "percent", tiers=tuple(tiers), **common)  # type: ignore[arg-type]
    if shape == "count_percent":
        starts = sorted(draw(st.sets(st.integers(1, 5), max_size=3)))
        rates = sorted(draw(st.lists(percents, min_size=len(starts) + 1, max_size=len(starts) + 1)))
        tiers = [Tier(Decimal(s), r) for s, r in zip([0, *starts], rates, strict=True)]
        return Rule(
            "sale",
            "percent",
            tiers=tuple(tiers),
            tier_basis="count",
            **common,  # type: ignore[arg-type]
        )
    amounts = money(currency, 0, 10_000)
    if shape == "flat":
        return Rule(
            "sale",
            "flat",
            amount=draw(amounts),
            monthly_cap=monthly_cap,
            cap_per_conversion=cap,
        )
    starts = sorted(draw(st.sets(st.integers(1, 5), max_size=3)))
    tiers = [Tier(Decimal(s), amount=draw(amounts)) for s in [0, *starts]]
    return Rule(
        "sale",
        "flat",
        tiers=tuple(tiers),
        tier_basis="count",
        monthly_cap=monthly_cap,
        cap_per_conversion=cap,
    )


@st.composite
def sale_st(draw: st.DrawFn, currency: str, refund_all: bool) -> Sale:
    minor = draw(st.integers(1, 2_000_000))
    amount = from_minor(minor, currency)
    items: tuple[Item, ...] = ()
    if draw(st.booleans()):
        unit = draw(money(currency, 1, 1_000_000))
        items = (
            Item("gc", "gift-cards", unit, draw(st.integers(1, 3))),
            Item("other", None, draw(money(currency, 0, 1000)), 1),
        )
    cuts = sorted(draw(st.sets(st.integers(1, minor - 1), max_size=3))) if minor > 1 else []
    bounds = [0, *cuts, minor]
    parts = [from_minor(b - a, currency) for a, b in pairwise(bounds)]
    if not refund_all:
        parts = parts[: draw(st.integers(0, len(parts)))]
        if len(parts) == len(bounds) - 1 and draw(st.booleans()):
            parts = parts[:-1]
    return Sale(amount, items, tuple(parts))


@st.composite
def scenario(
    draw: st.DrawFn, *, per_conversion_cap: bool, refund_all: bool
) -> tuple[str, Terms, list[Sale], list[tuple[int, int]]]:
    currency = draw(st.sampled_from(CURRENCIES))
    terms = Terms(
        rules=(draw(rule_st(currency, per_conversion_cap)),),
        parent_override_percent=draw(st.none() | percents),
    )
    sales = draw(st.lists(sale_st(currency, refund_all), min_size=1, max_size=6))
    ops = [(i, -1) for i in range(len(sales))]
    ops += [(i, j) for i, s in enumerate(sales) for j in range(len(s.refunds))]
    order = draw(st.permutations(range(len(ops))))
    return currency, terms, sales, _valid_order([ops[k] for k in order])


def _valid_order(shuffled: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Keep the shuffle, but hold back each refund until its sale has happened."""
    done: set[int] = set()
    waiting: dict[int, list[tuple[int, int]]] = {}
    out: list[tuple[int, int]] = []
    for i, j in shuffled:
        if j < 0:
            done.add(i)
            out.append((i, j))
            out.extend(waiting.pop(i, []))
        elif i in done:
            out.append((i, j))
        else:
            waiting.setdefault(i, []).append((i, j))
    return out


@dataclass
class Run:
    state: MonthState
    partner: Decimal
    parent: Decimal
    entries: list[EntryDraft]


Check = Callable[[Outcome, Run, bool], None]


def run(
    terms: Terms,
    sales: list[Sale],
    ops: list[tuple[int, int]],
    currency: str,
    check: Check | None = None,
) -> Run:
    state = MonthState.empty()
    refunded = [ZERO] * len(sales)
    earned = [ZERO] * len(sales)
    acc = Run(state, ZERO, ZERO, [])
    for i, j in ops:
        sale = sales[i]
        if j < 0:
            out = compute_conversion(
                terms, ConversionInput("sale", sale.amount, NOW, sale.items), state, currency, True
            )
        else:
            amount = sale.refunds[j]
            out = compute_refund(
                terms,
                RefundInput(
                    "sale",
                    amount,
                    sale.amount,
                    refunded_before=refunded[i],
                    items=sale.items,
                    earned=earned[i],
                    full=refunded[i] + amount == sale.amount,
                ),
                state,
                currency,
                True,
            )
            refunded[i] += amount
        state = out.new_state
        earned[i] += out.partner_total()
        acc.state = state
        acc.partner += out.partner_total()
        acc.parent += out.parent_total()
        acc.entries.extend(out.entries)
        if check is not None:
            check(out, acc, j < 0)
    return acc


def canonical(sales: list[Sale]) -> list[tuple[int, int]]:
    ops = [(i, -1) for i in range(len(sales))]
    return ops + [(i, j) for i, s in enumerate(sales) for j in range(len(s.refunds))]


@SETTINGS
@given(scenario(per_conversion_cap=False, refund_all=False))
def test_month_total_is_the_same_in_any_order(
    case: tuple[str, Terms, list[Sale], list[tuple[int, int]]],
) -> None:
    currency, terms, sales, shuffled = case
    straight = run(terms, sales, canonical(sales), currency)
    permuted = run(terms, sales, shuffled, currency)
    assert permuted.partner == straight.partner
    assert permuted.parent == straight.parent
    assert permuted.state == straight.state
    assert permuted.partner == month_total(terms, permuted.state, currency)
    assert permuted.state.commission == permuted.partner
    assert permuted.state.override == permuted.parent


@SETTINGS
@given(st.booleans().flatmap(lambda capped: scenario(per_conversion_cap=capped, refund_all=True)))
def test_refunding_everything_brings_the_month_back_to_exactly_zero(
    case: tuple[str, Terms, list[Sale], list[tuple[int, int]]],
) -> None:
    currency, terms, sales, shuffled = case
    result = run(terms, sales, shuffled, currency)
    assert result.partner == 0
    assert result.parent == 0
    assert month_total(terms, result.state, currency) == 0
    assert result.state.revenue == 0
    assert result.state.count == 0
    assert all(v == 0 for _, v in result.state.category_revenue)


@SETTINGS
@given(
    st.tuples(st.booleans(), st.booleans()).flatmap(
        lambda flags: scenario(per_conversion_cap=flags[0], refund_all=flags[1])
    )
)
def test_entries_are_whole_minor_units_and_caps_hold_at_every_prefix(
    case: tuple[str, Terms, list[Sale], list[tuple[int, int]]],
) -> None:
    currency, terms, sales, shuffled = case
    rule = terms.rules[0]
    pct = terms.parent_override_percent

    def check(out: Outcome, acc: Run, is_sale: bool) -> None:
        for entry in out.entries:
            assert entry.amount != 0
            to_minor(entry.amount, currency)  # raises on sub-minor digits
            assert -entry.amount.as_tuple().exponent <= minor_units(currency)  # type: ignore[operator]
            assert (entry.amount > 0) == (entry.kind != "reversal")
        if rule.monthly_cap is not None:
            assert acc.partner <= rule.monthly_cap
        if is_sale and rule.cap_per_conversion is not None:
            assert out.partner_total() <= rule.cap_per_conversion
        assert acc.partner >= 0
        expected = round_money(pct / 100 * acc.partner, currency) if pct is not None else ZERO
        assert acc.parent == expected
        assert acc.state.override == acc.parent
        assert acc.state.commission == acc.partner

    run(terms, sales, shuffled, currency, check)
