"""Formatting and charts: pure functions, no database."""

from __future__ import annotations

from datetime import UTC, date, datetime

from service.portal import charts, format


def test_money_is_written_in_its_currency_and_minor_units():
    assert format.money("1234.5", "USD") == "$1,234.50"
    assert format.money("1235", "JPY") == "¥1,235"
    assert format.money("1.234", "KWD") == "KWD1.234"
    assert format.money("-12.34", "EUR") == "-€12.34"
    assert format.money(None, "USD") == format.NONE


def test_numbers_rates_and_times():
    assert format.number(12345) == "12,345"
    assert format.percent("0.6667") == "66.67%"
    assert format.percent(None) == format.NONE
    at = datetime(2026, 12, 2, 3, 30, tzinfo=UTC)
    assert format.when(at, "America/New_York").startswith("2026-12-01 22:30")
    assert format.day(date(2026, 12, 2)) == "Dec 2"


def test_the_chart_has_a_bar_per_day_titled_with_its_number():
    days = [(date(2026, 11, d), d % 4) for d in range(1, 31)]
    svg = str(charts.daily_bars(days, "Clicks <per> day"))
    assert svg.count("<rect") == 30
    assert "<title>2026-11-03: 3</title>" in svg
    assert "Clicks &lt;per&gt; day" in svg
    assert charts._nice_max(0) == 1 and charts._nice_max(7) == 10 and charts._nice_max(120) == 200
