"""How `clicks` is partitioned: by UTC calendar month, one table per month. The
redirect creates the partitions ahead (service.redirect.partitions); a statement that
reads clicks can bound them by the months it spans (spanned), so that PostgreSQL picks
the partitions when it plans the statement."""

from __future__ import annotations

import functools
from datetime import UTC, date, datetime

MONTHS_AHEAD = 2


def partition_name(month: date) -> str:
    """The table name of a month's partition: clicks_YYYY_MM."""
    return f"clicks_{month.year:04d}_{month.month:02d}"


def _next_month(month: date) -> date:
    return date(month.year + month.month // 12, month.month % 12 + 1, 1)


def months_to_cover(now: datetime, ahead: int = MONTHS_AHEAD) -> list[date]:
    """This UTC month and the `ahead` following ones."""
    month = date(now.year, now.month, 1)
    months = [month]
    for _ in range(ahead):
        month = _next_month(month)
        months.append(month)
    return months


def bounds(month: date) -> tuple[datetime, datetime]:
    """The start and end (UTC) of a month's partition."""
    return _bounds(month.year, month.month)


@functools.lru_cache(maxsize=256)
def _bounds(year: int, month: int) -> tuple[datetime, datetime]:
    # Kept: a sale's fraud facts bound their clicks twice (spanned), and each datetime made
    # with tzinfo= as a keyword costs CPython's argument parsing some 4,000 instructions.
    nxt = _next_month(date(year, month, 1))
    return datetime(year, month, 1, tzinfo=UTC), datetime(nxt.year, nxt.month, 1, tzinfo=UTC)


def spanned(first: datetime, last: datetime) -> tuple[datetime, datetime]:
    """From the start of `first`'s month to the end of `last`'s: the bounds of the monthly
    partitions that hold every click from `first` to `last`."""
    first, last = first.astimezone(UTC), last.astimezone(UTC)
    return _bounds(first.year, first.month)[0], _bounds(last.year, last.month)[1]
