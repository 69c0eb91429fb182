"""The performance report: KPIs per day, partner, link, program or sub1, per currency."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from service.auth.keys import Principal
from service.errors import NotFound, field_error
from service.kit import csvout
from service.kit.money import format_amount, format_minor, from_minor
from service.kit.time import is_time_zone, utc_now
from service.links import repository as links
from service.models import Program
from service.partners import repository as partners
from service.programs import repository as programs
from service.reports import repository as repo
from service.reports.schemas import (
    DayBoundaries,
    DayKey,
    Filters,
    GroupBy,
    LinkKey,
    Metrics,
    PartnerKey,
    Performance,
    ProgramKey,
    Row,
    RowKey,
    Sub1Key,
)

DEFAULT_SPAN = timedelta(days=30)
MAX_SPAN = timedelta(days=400)
_RATE = Decimal("0.0001")


@dataclass(frozen=True)
class Params:
    """The report's parameters as the caller sent them (None: not given)."""

    start: datetime | None
    end: datetime | None
    program_id: uuid.UUID | None
    partner_id: uuid.UUID | None
    link_id: uuid.UUID | None
    group_by: GroupBy
    time_zone: str | None


@dataclass
class _Acc:
    clicks: int = 0
    unique_clicks: int = 0
    bots: int = 0
    leads: int = 0
    sales: int = 0
    revenue_minor: int = 0
    commission_minor: int = 0

    def add(self, other: _Acc) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))


def _range(start: datetime | None, end: datetime | None) -> tuple[datetime, datetime]:
    end = (end or utc_now()).astimezone(UTC)
    start = (start.astimezone(UTC)) if start is not None else end - DEFAULT_SPAN
    if end <= start:
        raise field_error("to", "must be later than from")
    if end - start > MAX_SPAN:
        raise field_error("from", f"the range may span at most {MAX_SPAN.days} days")
    return start, end


def day_boundaries(time_zone: str, start: datetime, end: datetime) -> DayBoundaries:
    """Exact when the zone's offset is whole hours over the range (clicks are hourly)."""
    zone = ZoneInfo(time_zone)
    at = start
    # Offsets hold for months at a time: sampling twice a day sees every one of them.
    while True:
        offset = at.astimezone(zone).utcoffset() or timedelta()
        if offset % timedelta(hours=1):
            return "approximate to the hour"
        if at >= end:
            return "exact"
        at = min(at + timedelta(hours=12), end)


async def _scope(session: AsyncSession, auth: Principal, req: Params) -> Program | None:
    """404 for a program, partner or link filter the caller may not read; the program."""
    program = None
    if req.program_id is not None:
        # For a partner, a program it has no agreement in is not there.
        program = await programs.get(session, auth, req.program_id)
        if program is None:
            raise NotFound(f"program {req.program_id} does not exist")
    if req.partner_id is not None and await partners.get(session, auth, req.partner_id) is None:
        raise NotFound(f"partner {req.partner_id} does not exist")
    if req.link_id is not None and await links.get(session, auth, req.link_id) is None:
        raise NotFound(f"link {req.link_id} does not exist")
    return program


def conversion_rate(conversions: int, clicks: int) -> str | None:
    """(leads + sales) / clicks to 4 decimals, half-even; None without clicks."""
    if clicks == 0:
        return None
    return f"{(Decimal(conversions) / Decimal(clicks)).quantize(_RATE, ROUND_HALF_EVEN):f}"


def epc(commission_minor: int, clicks: int, currency: str) -> str | None:
    """Commission per click, half-even to the currency's minor unit; None without clicks."""
    if clicks == 0:
        return None
    return format_amount(from_minor(commission_minor, currency) / clicks, currency)


def _metrics(acc: _Acc, currency: str, *, uniques: bool) -> dict[str, Any]:
    return {
        "currency": currency,
        "clicks": acc.clicks,
        "unique_clicks": acc.unique_clicks if uniques else None,
        "bots": acc.bots,
        "leads": acc.leads,
        "sales": acc.sales,
        "conversion_rate": conversion_rate(acc.leads + acc.sales, acc.clicks),
        "revenue": format_minor(acc.revenue_minor, currency),
        "commission": format_minor(acc.commission_minor, currency),
        "epc": epc(acc.commission_minor, acc.clicks, currency),
    }


async def performance(session: AsyncSession, auth: Principal, req: Params) -> Performance:
    """The KPIs of the range, grouped and split by currency, within what the caller sees."""
    start, end = _range(req.start, req.end)
    program = await _scope(session, auth, req)
    if req.time_zone is not None and not is_time_zone(req.time_zone):
        raise field_error("time_zone", "not an IANA time zone name")
    time_zone = req.time_zone or (program.time_zone if program is not None else "UTC")
    q = repo.Query(
        start=start,
        end=end,
        time_zone=time_zone,
        group_by=req.group_by,
        program_ids=None if program is None else frozenset({program.id}),
        partner_id=req.partner_id,
        link_id=req.link_id,
        principal=auth,
    )
    groups: dict[tuple[Any, str], _Acc] = {}

    def acc(key: Any, currency: str) -> _Acc:
        return groups.setdefault((key, currency), _Acc())

    for r in await repo.click_rows(session, q):
        a = acc(r.key, r.currency)
        a.clicks += int(r.clicks)
        a.unique_clicks += int(r.unique_clicks or 0)
        a.bots += int(r.bots)
    for r in await repo.conversion_rows(session, q):
        a = acc(r.key, r.currency)
        a.leads += int(r.leads)
        a.sales += int(r.sales)
        a.revenue_minor += int(r.revenue_minor)
    for r in await repo.commission_rows(session, q):
        acc(r.key, r.currency).commission_minor += int(r.commission_minor)

    keys = await _keys(session, req.group_by, {k for k, _ in groups})
    uniques = req.group_by != "sub1"
    ordered = sorted(groups.items(), key=lambda kv: (keys[kv[0][0]][0], kv[0][1]))
    rows = [
        Row(key=keys[k][1], **_metrics(a, currency, uniques=uniques))
        for (k, currency), a in ordered
    ]
    totals: dict[str, _Acc] = {}
    for (_, currency), a in ordered:
        totals.setdefault(currency, _Acc()).add(a)
    return Performance(
        from_=start,
        to=end,
        time_zone=time_zone,
        day_boundaries=day_boundaries(time_zone, start, end),
        group_by=req.group_by,
        filters=Filters(program_id=req.program_id, partner_id=req.partner_id, link_id=req.link_id),
        rows=rows,
        totals=[Metrics(**_metrics(totals[c], c, uniques=uniques)) for c in sorted(totals)],
    )


async def _keys(
    session: AsyncSession, group_by: GroupBy, raw: set[Any]
) -> dict[Any, tuple[tuple[Any, ...], RowKey]]:
    """Each raw key's sort key and its shape in the answer (with names and codes)."""
    out: dict[Any, tuple[tuple[Any, ...], RowKey]] = {}
    if group_by == "day":
        for d in raw:
            out[d] = ((d,), DayKey(day=d))
    elif group_by == "partner":
        names = await repo.partner_names(session, raw)
        for pid in raw:
            name = names.get(pid, "")
            out[pid] = ((name, str(pid)), PartnerKey(partner_id=pid, partner_name=name))
    elif group_by == "program":
        names = await repo.program_names(session, raw)
        for pid in raw:
            name = names.get(pid, "")
            out[pid] = ((name, str(pid)), ProgramKey(program_id=pid, name=name))
    elif group_by == "link":
        codes = await repo.link_codes(session, {k for k in raw if k is not None})
        for lid in raw:
            code = codes.get(lid) if lid is not None else None
            # Conversions without a link come last.
            out[lid] = ((lid is None, code or "", str(lid)), LinkKey(link_id=lid, code=code))
    else:
        for s in raw:
            value = s or None
            out[s] = ((value is None, value or ""), Sub1Key(sub1=value))
    return out


# --- CSV -------------------------------------------------------------------

KEY_COLUMNS: dict[str, tuple[str, ...]] = {
    "day": ("day",),
    "partner": ("partner_id", "partner_name"),
    "link": ("link_id", "code"),
    "program": ("program_id", "program_name"),
    "sub1": ("sub1",),
}
METRIC_COLUMNS = (
    "currency",
    "clicks",
    "unique_clicks",
    "bots",
    "leads",
    "sales",
    "conversion_rate",
    "revenue",
    "commission",
    "epc",
)


def _key_cells(key: RowKey) -> list[Any]:
    values = key.model_dump()
    if isinstance(key, ProgramKey):
        values["program_name"] = values.pop("name")
    return list(values.values())


def to_csv(report: Performance) -> Iterator[str]:
    """The rows as CSV: key columns for the grouping, then METRIC_COLUMNS, in that order."""
    keys = KEY_COLUMNS[report.group_by]
    return csvout.lines(
        (*keys, *METRIC_COLUMNS),
        ([*_key_cells(row.key), *(getattr(row, c) for c in METRIC_COLUMNS)] for row in report.rows),
        # Metrics are numbers (amounts may be negative), never formulas: written as they are.
        frozenset(METRIC_COLUMNS),
    )
