"""The pure rules of the partner program: domains, periods, KPI figures, the click engine."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from service.agreements.terms import validate_terms
from service.commissions.engine import compute_clicks
from service.commissions.state import MonthState
from service.partnering.bounties import day_bounds
from service.partnering.deals.domains import email_domain, holds, normalize_domain
from service.partnering.kpis import rules


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("acme.com", "acme.com"),
        ("https://WWW.Acme.com/pricing?x=1", "acme.com"),
        ("acme.com.", "acme.com"),
        ("shop.acme.co.uk:8443", "shop.acme.co.uk"),
        ("bücher.de", "xn--bcher-kva.de"),
        ("localhost", None),
        ("not a domain", None),
        ("", None),
    ],
)
def test_normalize_domain(raw, expected):
    assert normalize_domain(raw) == expected


def test_email_domain_ignores_free_mail():
    assert email_domain("CFO@Acme.COM") == "acme.com"
    assert email_domain("someone@gmail.com") is None
    assert email_domain("nobody") is None


def test_a_deal_holds_while_submitted_or_approved_and_unexpired():
    now = datetime(2026, 12, 2, tzinfo=UTC)
    later = datetime(2027, 1, 1, tzinfo=UTC)
    assert holds("submitted", None, now)
    assert holds("approved", later, now)
    assert not holds("approved", later, later)
    assert not holds("rejected", later, now)


def test_periods_in_a_zone_and_the_one_before():
    p = rules.period("month", date(2026, 11, 1), "Asia/Tokyo")
    assert p.starts_at == datetime(2026, 10, 31, 15, tzinfo=UTC)
    assert p.ends_at == datetime(2026, 11, 30, 15, tzinfo=UTC)
    # New York leaves daylight saving time on November 1: October 1 is at 04:00Z.
    q = rules.period("quarter", date(2026, 10, 1), "America/New_York")
    assert q.starts_at == datetime(2026, 10, 1, 4, tzinfo=UTC)
    assert q.ends_at == datetime(2027, 1, 1, 5, tzinfo=UTC) and q.end == date(2027, 1, 1)
    first = rules.period("quarter", date(2026, 1, 1), "UTC")
    assert rules.previous(first, "UTC").start == date(2025, 10, 1)
    assert rules.period_problem("quarter", date(2026, 2, 1)) is not None
    assert rules.period_problem("month", date(2026, 2, 2)) is not None
    assert rules.period_problem("month", date(2026, 2, 1)) is None


def test_projection_halfway_through_a_month():
    p = rules.period("month", date(2026, 11, 1), "UTC")  # 30 days
    share = rules.elapsed_share(p, datetime(2026, 11, 16, tzinfo=UTC))
    assert share == Decimal("0.5")
    f = rules.figures("sales", Decimal(20), Decimal(11), Decimal(8), share, Decimal(1))
    # 11 in half the month: 22 by its end, over the target of 20.
    assert (f.projected, f.on_track, f.attainment, f.change) == (
        Decimal(22),
        True,
        Decimal("0.5500"),
        Decimal("0.3750"),
    )
    money = rules.figures(
        "revenue", None, Decimal("100.01"), Decimal(0), Decimal(1) / 3, Decimal("0.01")
    )
    assert money.projected == Decimal("300.03") and money.on_track is None
    assert money.change is None  # nothing the period before
    rate = rules.figures(
        "conversion_rate", Decimal("0.1"), Decimal("0.05"), None, share, Decimal(1)
    )
    assert rate.projected == Decimal("0.05") and rate.on_track is False
    before = rules.elapsed_share(p, datetime(2026, 10, 1, tzinfo=UTC))
    assert before is None
    assert (
        rules.figures("clicks", Decimal(5), Decimal(0), None, before, Decimal(1)).on_track is None
    )


def test_a_day_of_clicks_at_once_telescopes_with_tiers_and_caps():
    terms = validate_terms(
        {
            "rules": [
                {
                    "event": "click",
                    "type": "flat",
                    "amount": "0.02",
                    "tiers": [{"from": "0", "amount": "0.02"}, {"from": "5", "amount": "0.05"}],
                    "tier_basis": "count",
                    "monthly_cap": "0.30",
                }
            ]
        },
        "USD",
    )
    state = MonthState.empty()
    day1 = compute_clicks(terms, state, 4, "USD", has_parent=False)
    assert [e.amount for e in day1.entries] == [Decimal("0.08")]
    # The 5th click is still at 0.02, then 0.05 each: 0.02 + 3 * 0.05 = 0.17.
    day2 = compute_clicks(terms, day1.new_state, 4, "USD", has_parent=False)
    assert [e.amount for e in day2.entries] == [Decimal("0.17")]
    # 0.25 written; the cap leaves 0.05 of the next 0.10.
    day3 = compute_clicks(terms, day2.new_state, 2, "USD", has_parent=False)
    assert [e.amount for e in day3.entries] == [Decimal("0.05")]


def test_day_bounds_across_a_daylight_saving_change():
    start, end = day_bounds(date(2026, 11, 1), "America/New_York")  # a 25-hour day
    assert (start, end) == (
        datetime(2026, 11, 1, 4, tzinfo=UTC),
        datetime(2026, 11, 2, 5, tzinfo=UTC),
    )
