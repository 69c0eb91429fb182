"""Time: aware UTC datetimes only; calendar months in a program's zone."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from pydantic import AfterValidator, AwareDatetime, BeforeValidator

# Instants the API takes: past 9999 (or before year 1) in UTC Python cannot hold them, and
# nothing this service records happened before 1970.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)


def utc_now() -> datetime:
    """The current instant, aware, in UTC."""
    return datetime.now(UTC)


def ensure_aware(value: datetime) -> datetime:
    """Refuse naive datetimes; normalise aware ones to UTC."""
    if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
        raise ValueError("datetime must carry a time zone offset")
    return value.astimezone(UTC)


def bounded_instant(value: datetime) -> datetime:
    """An aware datetime, in UTC, between 1970 and the end of 9999; a ValueError otherwise."""
    try:
        utc = ensure_aware(value)
    except OverflowError:
        utc = None
    if utc is None or not EARLIEST <= utc <= LATEST:
        raise ValueError("must be between 1970-01-01 and 9999-12-31 in UTC")
    return utc


_RFC3339_START = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}")


def _rfc3339_text(value: object) -> object:
    # pydantic would take 0.5, or "0.5", as seconds since 1970: the spec says date-time.
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _RFC3339_START.match(value):
        raise ValueError("must be an RFC 3339 date-time such as 2026-01-31T12:00:00Z")
    return value


# The type of every datetime the API accepts.
Instant = Annotated[AwareDatetime, BeforeValidator(_rfc3339_text), AfterValidator(bounded_instant)]


@lru_cache(maxsize=1)
def _zones() -> frozenset[str]:
    return frozenset(available_timezones())


def is_time_zone(name: str) -> bool:
    """True for a real IANA zone name."""
    if name not in _zones():
        return False
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def month_start(moment: datetime, tz: str) -> date:
    """First day of the calendar month containing `moment` in zone `tz`."""
    local = ensure_aware(moment).astimezone(ZoneInfo(tz))
    return date(local.year, local.month, 1)


def month_bounds(month: date, tz: str) -> tuple[datetime, datetime]:
    """UTC start (inclusive) and end (exclusive) of a calendar month in zone `tz`."""
    zone = ZoneInfo(tz)
    start = datetime(month.year, month.month, 1, tzinfo=zone)
    nxt = add_months(start, 1)
    return start.astimezone(UTC), nxt.astimezone(UTC)


def add_months(moment: datetime, months: int) -> datetime:
    """Same wall-clock time `months` later, the day clamped to the month's length."""
    year, month0 = divmod(moment.month - 1 + months, 12)
    year += moment.year
    month = month0 + 1
    day = min(moment.day, _days_in_month(year, month))
    return moment.replace(year=year, month=month, day=day)


def _days_in_month(year: int, month: int) -> int:
    nxt = date(year + (month // 12), month % 12 + 1, 1)
    return (nxt - timedelta(days=1)).day


def rfc3339(value: datetime) -> str:
    """RFC 3339 in UTC with a Z suffix."""
    return ensure_aware(value).isoformat().replace("+00:00", "Z")
