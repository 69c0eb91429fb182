"""The KPI figures as pure functions: periods in a time zone, attainment, change, projection.

attainment = actual / target, change = actual / previous - 1, projected = actual scaled
from the elapsed part of the period to all of it (a ratio is not scaled: it is its own
projection), on_track = projected >= target. Each is null where it would divide by zero
or has nothing to compare with. Ratios are decimal strings of 4 places, half-even.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Literal
from zoneinfo import ZoneInfo

from service.kit.time import add_months

Kind = Literal["count", "money", "ratio"]
METRICS: tuple[tuple[str, Kind], ...] = (
    ("clicks", "count"),
    ("sales", "count"),
    ("revenue", "money"),
    ("new_customers", "count"),
    ("conversion_rate", "ratio"),
    ("commission", "money"),
)
KINDS: dict[str, Kind] = dict(METRICS)
MONTHS = {"month": 1, "quarter": 3}
_PLACES = Decimal("0.0001")


@dataclass(frozen=True)
class Period:
    """A calendar month or quarter in a time zone: local dates and UTC instants."""

    kind: str
    start: date
    end: date
    starts_at: datetime
    ends_at: datetime


def period_problem(kind: str, start: date) -> str | None:
    """Why `start` cannot begin a period of this kind, or None."""
    if start.day != 1:
        return "a period starts on the first day of a month"
    if kind == "quarter" and start.month not in (1, 4, 7, 10):
        return "a quarter starts on January, April, July or October 1"
    return None


def period(kind: str, start: date, tz: str) -> Period:
    """The period of this kind starting on `start`, its bounds in the zone."""
    zone = ZoneInfo(tz)
    first = datetime.combine(start, time(), tzinfo=zone)
    after = add_months(first, MONTHS[kind])
    utc = ZoneInfo("UTC")
    return Period(kind, start, after.date(), first.astimezone(utc), after.astimezone(utc))


def previous(p: Period, tz: str) -> Period:
    """The period of the same kind just before."""
    first = datetime.combine(p.start, time())
    return period(p.kind, add_months(first, -MONTHS[p.kind]).date(), tz)


def ratio(numerator: Decimal, denominator: Decimal) -> Decimal | None:
    """numerator / denominator to 4 places, half-even; None for a zero denominator."""
    if denominator == 0:
        return None
    return (numerator / denominator).quantize(_PLACES, ROUND_HALF_EVEN)


def elapsed_share(p: Period, now: datetime) -> Decimal | None:
    """The part of the period gone by (1 once it has ended); None before it starts."""
    if now < p.starts_at:
        return None
    if now >= p.ends_at:
        return Decimal(1)
    total = (p.ends_at - p.starts_at).total_seconds()
    return Decimal(str((now - p.starts_at).total_seconds())) / Decimal(str(total))


@dataclass(frozen=True)
class Figures:
    """One metric's figures before formatting (money and counts as Decimal units)."""

    metric: str
    target: Decimal | None
    actual: Decimal | None
    attainment: Decimal | None
    previous: Decimal | None
    change: Decimal | None
    projected: Decimal | None
    on_track: bool | None


def figures(
    metric: str,
    target: Decimal | None,
    actual: Decimal | None,
    before: Decimal | None,
    share: Decimal | None,
    round_to: Decimal,
) -> Figures:
    """The figures of one metric; `round_to` is the projection's unit (1, or a minor unit)."""
    kind = KINDS[metric]
    projected: Decimal | None = None
    if actual is not None and share is not None:
        if kind == "ratio" or share == 1:
            projected = actual
        elif share > 0:
            projected = (actual / share).quantize(round_to, ROUND_HALF_EVEN)
    attainment = None if target is None or actual is None else ratio(actual, target)
    change = None
    if actual is not None and before is not None:
        r = ratio(actual, before)
        change = None if r is None else r - 1
    on_track = None if target is None or projected is None else projected >= target
    return Figures(metric, target, actual, attainment, before, change, projected, on_track)
