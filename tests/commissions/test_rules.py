"""Hand-computed examples for the commission engine."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal as D

import pytest

from service.commissions.engine import (
    compute_click,
    compute_conversion,
    compute_refund,
    month_total,
)
from service.commissions.simulation import SimConversion, SimRefund, simulate
from service.commissions.state import ConversionInput, Item, MonthState, Outcome, RefundInput
from service.commissions.terms import Rule, Terms, Tier

NOW = datetime(2025, 3, 15, 12, 0, tzinfo=UTC)


def pct(percent: str, **kw: object) -> Terms:
    return Terms(rules=(Rule("sale", "percent", percent=D(percent), **kw),))  # type: ignore[arg-type]


def sale(amount: str | None, **kw: object) -> ConversionInput:
    return ConversionInput("sale", D(amount) if amount is not None else None, NOW, **kw)  # type: ignore[arg-type]


def partner(outcome: Outcome) -> list[tuple[str, D]]:
    return [(e.kind, e.amount) for e in outcome.entries if e.beneficiary == "partner"]


def parent(outcome: Outcome) -> list[tuple[str, D]]:
    return [(e.kind, e.amount) for e in outcome.entries if e.beneficiary == "parent"]


@pytest.mark.parametrize(
    ("currency", "amount", "expected"),
    [
        ("USD", "123.45", "12.34"),  # 12.345 -> 12.34: half-even keeps the even 4
        ("USD", "123.55", "12.36"),  # 12.355 -> 12.36: the 5 is odd, round up to 6
        ("USD", "123.65", "12.36"),  # 12.365 -> 12.36
        ("JPY", "1005", "100"),  # 100.5 -> 100
        ("JPY", "1015", "102"),  # 101.5 -> 102
        ("KWD", "12.345", "1.234"),  # 1.2345 -> 1.234
        ("KWD", "12.355", "1.236"),  # 1.2355 -> 1.236
    ],
)
def test_percent_rounds_half_even_to_the_minor_unit(
    currency: str, amount: str, expected: str
) -> None:
    out = compute_conversion(pct("10"), sale(amount), MonthState.empty(), currency, False)
    assert partner(out) == [("commission", D(expected))]
    assert str(out.entries[0].amount) == expected  # the exponent is the currency's
    assert out.explain["rounding"].startswith("half-even to ")


def test_rounding_explain_names_the_quantum() -> None:
    jpy = compute_conversion(pct("10"), sale("1005"), MonthState.empty(), "JPY", False)
    kwd = compute_conversion(pct("10"), sale("12.345"), MonthState.empty(), "KWD", False)
    assert jpy.explain["rounding"] == "half-even to 1"
    assert kwd.explain["rounding"] == "half-even to 0.001"


TIERED = Terms(
    rules=(
        Rule(
            "sale",
            "percent",
            tiers=(Tier(D("0"), D("10")), Tier(D("10000.00"), D("15"))),
        ),
    ),
    parent_override_percent=D("5"),
)


def test_sale_crossing_a_tier_boundary_pays_each_slice_its_rate() -> None:
    state = MonthState(revenue=D("9000.00"), count=9, commission=D("900.00"), override=D("45.00"))
    out = compute_conversion(TIERED, sale("2000.00"), state, "USD", True)
    # 1000 x 10% + 1000 x 15%
    assert partner(out) == [("commission", D("250.00"))]
    assert parent(out) == [("override", D("12.50"))]  # 5% of 1150 - 5% of 900
    brackets = out.explain["brackets"]
    assert [(b["from"], b["slice"], b["percent"]) for b in brackets] == [
        ("0", "1000.00", "10"),
        ("10000.00", "1000.00", "15"),
    ]
    assert out.new_state.revenue == D("11000.00")
    assert out.new_state.commission == D("1150.00")
    assert out.explain["month_total_before"] == "900.00"
    assert out.explain["month_total_after"] == "1150.00"
    json.dumps([e.explain for e in out.entries])  # explain must be storable as JSON


def test_refund_after_the_boundary_reverses_from_the_top_bracket() -> None:
    state = MonthState(revenue=D("11000.00"), count=10, commission=D("1150.00"))
    out = compute_refund(
        TIERED,
        RefundInput("sale", D("1500.00"), D("2000.00"), earned=D("250.00")),
        state,
        "USD",
        False,
    )
    # 9500: the month is worth 950; it was 1150
    assert partner(out) == [("reversal", D("-200.00"))]
    assert out.new_state.revenue == D("9500.00")
    assert out.new_state.count == 10  # a partial refund keeps the conversion counted


def test_tiered_month_total_does_not_depend_on_order() -> None:
    # 6000 then 6000: 600 + (400 + 300); the other way round is the same sale.
    first = compute_conversion(TIERED, sale("6000.00"), MonthState.empty(), "USD", False)
    second = compute_conversion(TIERED, sale("6000.00"), first.new_state, "USD", False)
    assert partner(first) == [("commission", D("600.00"))]
    assert partner(second) == [("commission", D("700.00"))]
    assert month_total(TIERED, second.new_state, "USD") == D("1300.00")


CATEGORIES = pct("10", categories=(("gift-cards", D("2")),))


def test_category_items_earn_their_own_percent_and_stay_out_of_the_tiered_base() -> None:
    items = (
        Item("gc-50", "gift-cards", D("50.00"), 2),
        Item("book", "books", D("30.00"), 1),
    )
    out = compute_conversion(
        CATEGORIES, sale("150.00", items=items), MonthState.empty(), "USD", False
    )
    # base 150 - 100 = 50 -> 5.00 ; gift cards 100 x 2% = 2.00
    assert partner(out) == [("commission", D("7.00"))]
    assert out.explain["split"] == "items"
    assert out.explain["tiered_base"] == "50.00"
    assert out.new_state.revenue == D("50.00")
    assert out.new_state.category("gift-cards") == D("100.00")


def test_category_items_above_the_amount_paid_are_scaled_down() -> None:
    items = (Item("gc-100", "gift-cards", D("100.00"), 1),)
    out = compute_conversion(
        CATEGORIES, sale("80.00", items=items), MonthState.empty(), "USD", False
    )
    assert out.explain["split"] == "items_scaled"
    assert partner(out) == [("commission", D("1.60"))]  # 80 x 2%
    assert out.new_state.revenue == D("0")


def test_without_items_the_whole_amount_takes_the_rule_percent() -> None:
    out = compute_conversion(CATEGORIES, sale("150.00"), MonthState.empty(), "USD", False)
    assert out.explain["split"] == "amount"
    assert partner(out) == [("commission", D("15.00"))]


def test_category_refund_removes_each_part_in_proportion() -> None:
    items = (Item("gc-50", "gift-cards", D("50.00"), 2),)
    first = compute_conversion(
        CATEGORIES, sale("150.00", items=items), MonthState.empty(), "USD", False
    )
    half = compute_refund(
        CATEGORIES,
        RefundInput("sale", D("75.00"), D("150.00"), items=items, earned=D("7.00")),
        first.new_state,
        "USD",
        False,
    )
    assert half.new_state.revenue == D("25.00")
    assert half.new_state.category("gift-cards") == D("50.00")
    assert partner(half) == [("reversal", D("-3.50"))]
    rest = compute_refund(
        CATEGORIES,
        RefundInput(
            "sale",
            D("75.00"),
            D("150.00"),
            refunded_before=D("75.00"),
            items=items,
            earned=D("3.50"),
            full=True,
        ),
        half.new_state,
        "USD",
        False,
    )
    assert partner(rest) == [("reversal", D("-3.50"))]
    assert rest.new_state.revenue == 0
    assert rest.new_state.category("gift-cards") == 0
    assert rest.new_state.commission == 0


RECURRING = pct("10", recurring_months=1)
SINCE = datetime(2025, 1, 31, 10, 0, tzinfo=UTC)


def test_recurring_window_is_open_until_just_before_n_months() -> None:
    # 31 January + 1 month clamps to 28 February, same wall-clock time
    inside = ConversionInput(
        "sale", D("100.00"), datetime(2025, 2, 28, 9, 59, 59, tzinfo=UTC), recurring_since=SINCE
    )
    out = compute_conversion(RECURRING, inside, MonthState.empty(), "USD", False)
    assert partner(out) == [("commission", D("10.00"))]


def test_recurring_window_is_closed_exactly_at_n_months_and_the_state_does_not_move() -> None:
    state = MonthState(revenue=D("10.00"), count=1, commission=D("1.00"))
    at = ConversionInput(
        "sale", D("100.00"), datetime(2025, 2, 28, 10, 0, tzinfo=UTC), recurring_since=SINCE
    )
    out = compute_conversion(RECURRING, at, state, "USD", False)
    assert out.entries == ()
    assert out.new_state == state
    assert out.explain["reason"] == "recurring window ended"
    assert out.explain["recurring_until"] == "2025-02-28T10:00:00+00:00"


def test_recurring_zero_months_pays_only_the_first_sale() -> None:
    terms = pct("10", recurring_months=0)
    first = compute_conversion(terms, sale("100.00"), MonthState.empty(), "USD", False)
    assert partner(first) == [("commission", D("10.00"))]
    again = ConversionInput("sale", D("100.00"), NOW, recurring_since=NOW)
    assert compute_conversion(terms, again, first.new_state, "USD", False).entries == ()


def test_lifetime_recurring_always_earns() -> None:
    terms = pct("10")
    late = ConversionInput(
        "sale", D("100.00"), NOW, recurring_since=datetime(2000, 1, 1, tzinfo=UTC)
    )
    assert partner(compute_conversion(terms, late, MonthState.empty(), "USD", False)) == [
        ("commission", D("10.00"))
    ]


LEADS = Terms(rules=(Rule("lead", "flat", amount=D("3.00")),))


def test_flat_lead_without_an_amount_earns_the_flat_amount_per_lead() -> None:
    lead = ConversionInput("lead", None, NOW)
    one = compute_conversion(LEADS, lead, MonthState.empty(), "USD", False)
    two = compute_conversion(LEADS, lead, one.new_state, "USD", False)
    assert partner(one) == partner(two) == [("commission", D("3.00"))]
    assert two.new_state.count == 2
    back = compute_refund(
        LEADS,
        RefundInput("lead", D("0"), D("0"), earned=D("3.00"), full=True),
        two.new_state,
        "USD",
        False,
    )
    assert partner(back) == [("reversal", D("-3.00"))]
    assert back.new_state.count == 1


def test_no_rule_for_the_event_earns_nothing_and_says_so() -> None:
    out = compute_conversion(LEADS, sale("100.00"), MonthState.empty(), "USD", True)
    assert out.entries == ()
    assert out.explain["reason"] == "no rule for event"


def test_count_basis_flat_tiers_pay_the_kth_conversion_its_bracket() -> None:
    terms = Terms(
        rules=(
            Rule(
                "sale",
                "flat",
                tiers=(Tier(D(0), amount=D("1.00")), Tier(D(2), amount=D("5.00"))),
                tier_basis="count",
            ),
        )
    )
    state = MonthState.empty()
    earned = []
    for _ in range(4):
        out = compute_conversion(terms, sale("10.00"), state, "USD", False)
        earned.append(out.entries[0].amount)
        state = out.new_state
    # "from 2": two conversions already counted, so the third and later
    assert earned == [D("1.00"), D("1.00"), D("5.00"), D("5.00")]
    assert month_total(terms, state, "USD") == D("12.00")


def test_count_basis_percent_tiers_rate_the_whole_month_at_its_level() -> None:
    terms = Terms(
        rules=(
            Rule(
                "sale",
                "percent",
                tiers=(Tier(D(0), D("10")), Tier(D(2), D("20"))),
                tier_basis="count",
            ),
        )
    )
    state = MonthState.empty()
    earned = []
    for _ in range(3):
        out = compute_conversion(terms, sale("100.00"), state, "USD", False)
        earned.append(out.entries[0].amount)
        state = out.new_state
    # third sale lifts the month to 20% of 300 = 60, 20 of which were paid
    assert earned == [D("10.00"), D("10.00"), D("40.00")]


CAPPED = Terms(
    rules=(Rule("sale", "percent", percent=D("10"), cap_per_conversion=D("25.00")),),
)


def test_cap_per_conversion_clips_the_sale_and_refunds_reverse_what_it_earned() -> None:
    out = compute_conversion(CAPPED, sale("1000.00"), MonthState.empty(), "USD", False)
    assert partner(out) == [("commission", D("25.00"))]
    assert out.explain["caps_applied"][0]["cap"] == "cap_per_conversion"
    half = compute_refund(
        CAPPED,
        RefundInput("sale", D("500.00"), D("1000.00"), earned=D("25.00")),
        out.new_state,
        "USD",
        False,
    )
    assert partner(half) == [("reversal", D("-12.50"))]
    third = compute_refund(
        CAPPED,
        RefundInput(
            "sale", D("100.00"), D("1000.00"), refunded_before=D("500.00"), earned=D("12.50")
        ),
        half.new_state,
        "USD",
        False,
    )
    assert partner(third) == [("reversal", D("-2.50"))]  # 12.50 x 100/500
    rest = compute_refund(
        CAPPED,
        RefundInput(
            "sale",
            D("400.00"),
            D("1000.00"),
            refunded_before=D("600.00"),
            earned=D("10.00"),
            full=True,
        ),
        third.new_state,
        "USD",
        False,
    )
    assert partner(rest) == [("reversal", D("-10.00"))]
    assert rest.new_state.commission == 0
    assert rest.new_state.revenue == 0


MONTHLY = pct("10", monthly_cap=D("100.00"))


def test_monthly_cap_is_reached_partially_then_pays_nothing() -> None:
    state = MonthState(revenue=D("900.00"), count=3, commission=D("90.00"))
    out = compute_conversion(MONTHLY, sale("500.00"), state, "USD", False)
    assert partner(out) == [("commission", D("10.00"))]
    assert out.explain["caps_applied"][0]["cap"] == "monthly_cap"
    more = compute_conversion(MONTHLY, sale("50.00"), out.new_state, "USD", False)
    assert more.entries == ()
    assert more.explain["reason"] == "monthly cap reached"
    assert more.new_state.revenue == D("1450.00")  # still counts toward the month
    # a refund only reverses what drops the month below the cap: 1000 -> still 100.00
    ref = compute_refund(
        MONTHLY,
        RefundInput("sale", D("450.00"), D("500.00"), earned=D("10.00")),
        more.new_state,
        "USD",
        False,
    )
    assert ref.entries == ()
    assert ref.new_state.revenue == D("1000.00")


def test_monthly_cap_refund_below_the_cap_reverses_the_difference() -> None:
    state = MonthState(revenue=D("1450.00"), count=5, commission=D("100.00"))
    ref = compute_refund(
        MONTHLY,
        RefundInput("sale", D("600.00"), D("600.00"), earned=D("10.00"), full=True),
        state,
        "USD",
        False,
    )
    assert partner(ref) == [("reversal", D("-15.00"))]  # 850 -> 85.00


def test_parent_override_rounds_half_even_on_the_month_total() -> None:
    terms = Terms(rules=(Rule("sale", "percent", percent=D("10")),), parent_override_percent=D("5"))
    one = compute_conversion(terms, sale("123.40"), MonthState.empty(), "USD", True)
    assert partner(one) == [("commission", D("12.34"))]
    assert parent(one) == [("override", D("0.62"))]  # 0.617
    two = compute_conversion(terms, sale("123.40"), one.new_state, "USD", True)
    assert parent(two) == [("override", D("0.61"))]  # 1.234 -> 1.23, minus 0.62
    half = compute_conversion(terms, sale("5.00"), MonthState.empty(), "USD", True)
    assert parent(half) == [("override", D("0.02"))]  # 0.025 -> 0.02, half-even
    back = compute_refund(
        terms,
        RefundInput("sale", D("123.40"), D("123.40"), earned=D("12.34"), full=True),
        two.new_state,
        "USD",
        True,
    )
    assert partner(back) == [("reversal", D("-12.34"))]
    assert parent(back) == [("reversal", D("-0.61"))]
    assert back.new_state.override == D("0.62")


def test_override_needs_a_parent() -> None:
    out = compute_conversion(TIERED, sale("100.00"), MonthState.empty(), "USD", False)
    assert parent(out) == []
    assert out.new_state.override == 0


def test_click_bounties_respect_the_monthly_cap() -> None:
    terms = Terms(rules=(Rule("click", "flat", amount=D("0.02"), monthly_cap=D("0.05")),))
    state = MonthState.empty()
    paid = []
    for _ in range(4):
        out = compute_click(terms, state, "USD", False)
        paid.append([(e.kind, e.amount) for e in out.entries])
        state = out.new_state
    assert paid == [
        [("click_bounty", D("0.02"))],
        [("click_bounty", D("0.02"))],
        [("click_bounty", D("0.01"))],
        [],
    ]


def test_refund_of_a_conversion_that_did_not_earn_does_nothing() -> None:
    state = MonthState(revenue=D("100.00"), count=1, commission=D("10.00"))
    out = compute_refund(
        pct("10"),
        RefundInput("sale", D("50.00"), D("50.00"), full=True, counted=False),
        state,
        "USD",
        False,
    )
    assert out.entries == ()
    assert out.new_state == state


def test_simulate_groups_by_month_in_the_program_zone() -> None:
    terms = Terms(rules=(Rule("sale", "percent", percent=D("10")),), parent_override_percent=D("5"))
    # 2025-03-31 23:30 in New York is already April in UTC
    ny_march = datetime(2025, 4, 1, 3, 30, tzinfo=UTC)
    april = datetime(2025, 4, 10, tzinfo=UTC)
    result = simulate(
        terms,
        [
            SimConversion(ny_march, amount=D("100.00")),
            SimConversion(
                april,
                amount=D("200.00"),
                refunds=(SimRefund(D("50.00"), datetime(2025, 5, 2, tzinfo=UTC)),),
            ),
        ],
        "USD",
        "America/New_York",
        has_parent=True,
    )
    assert [(m.month.isoformat(), m.commission, m.override) for m in result.months] == [
        ("2025-03-01", D("10.00"), D("0.50")),
        ("2025-04-01", D("15.00"), D("0.75")),
    ]
    assert result.commission == D("25.00")
    assert result.override == D("1.25")
    assert [line.commission for line in result.lines] == [D("10.00"), D("15.00")]


def test_monthly_cap_still_holds_when_per_conversion_refunds_break_telescoping() -> None:
    terms = Terms(
        rules=(
            Rule(
                "sale",
                "percent",
                tiers=(Tier(D("0"), D("10")), Tier(D("1000.00"), D("20"))),
                cap_per_conversion=D("1000.00"),
                monthly_cap=D("300.00"),
            ),
        )
    )
    a = compute_conversion(terms, sale("1000.00"), MonthState.empty(), "USD", False)
    b = compute_conversion(terms, sale("1000.00"), a.new_state, "USD", False)
    assert partner(a) == [("commission", D("100.00"))]
    assert partner(b) == [("commission", D("200.00"))]
    # A reverses what A earned (100), though the month's value drops by 200
    refund_a = compute_refund(
        terms,
        RefundInput("sale", D("1000.00"), D("1000.00"), earned=D("100.00"), full=True),
        b.new_state,
        "USD",
        False,
    )
    assert partner(refund_a) == [("reversal", D("-100.00"))]
    assert refund_a.new_state.commission == D("200.00")
    assert month_total(terms, refund_a.new_state, "USD") == D("100.00")
    # T goes 100 -> 300 (+200) but only 100 is left under the monthly cap
    c = compute_conversion(terms, sale("1000.00"), refund_a.new_state, "USD", False)
    assert partner(c) == [("commission", D("100.00"))]
    assert c.new_state.commission == D("300.00")
