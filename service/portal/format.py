"""Formatting for the pages (babel): money in its currency, numbers, times in a zone."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from babel.dates import format_date, format_datetime
from babel.numbers import format_currency, format_decimal, format_percent

LOCALE = "en_US"
# Shown where there is no figure (no clicks: no rate).
NONE = "\u2013"


def money(amount: str | Decimal | None, currency: str) -> str:
    """A decimal amount (the API's string) as the currency is written: $1,234.50, ¥1,235."""
    if amount is None or amount == "":
        return NONE
    return format_currency(Decimal(amount), currency, locale=LOCALE)


def number(value: int | None) -> str:
    """A count with grouping: 12,345."""
    return NONE if value is None else format_decimal(value, locale=LOCALE)


def percent(ratio: str | None) -> str:
    """A ratio (the API's decimal string) as a percentage with two decimals."""
    if ratio is None:
        return NONE
    return format_percent(Decimal(ratio), format="#,##0.00%", locale=LOCALE)


def when(value: datetime | None, time_zone: str = "UTC") -> str:
    """A moment in the given zone, with the zone named."""
    if value is None:
        return NONE
    return format_datetime(value, "yyyy-MM-dd HH:mm zzz", tzinfo=ZoneInfo(time_zone), locale=LOCALE)


def day(value: date) -> str:
    """A calendar day, short: Dec 2."""
    return format_date(value, "MMM d", locale=LOCALE)


FILTERS = {"money": money, "number": number, "percent": percent, "when": when, "day": day}
