"""Time: aware UTC datetimes only; calendar months in a program's zone."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones


def utc_now() -> datetime:
    """The current instant, aware, in UTC."""
    return datetime.now(UTC)


def ensure_aware(value: datetime) -> datetime:
    """Refuse naive datetimes; normalise aware ones to UTC."""
    if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
        raise ValueError("datetime must carry a time zone offset")
    return value.astimezone(UTC)


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
