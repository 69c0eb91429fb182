"""What the fraud rules need from the database: the facts of one conversion, read by one
statement (which a conversion's intake reads beside its terms), and the quality report's
counts."""

from __future__ import annotations

import functools
import typing
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from sqlalchemy import (
    DateTime,
    Integer,
    Select,
    Table,
    bindparam,
    func,
    literal,
    literal_column,
    select,
    true,
)
from sqlalchemy.ext.asyncio import AsyncSession

from service.auth.keys import Principal
from service.auth.scope import in_programs, of_partner
from service.fraud.rules import Counted
from service.models import Click, ClickRollupHourly, Conversion
from service.tracking.partitions import spanned

HOUR = timedelta(hours=1)


@dataclass(frozen=True)
class Stored:
    """What the database knows for the rules; None where not asked for or not found."""

    paid_markers: frozenset[str] | None = None
    referrer_host: str | None = None
    visitor_clicks_before: int | None = None
    partner_conversions_before: int | None = None


def _host(referer: str | None) -> str | None:
    if not referer:
        return None
    try:
        return urlsplit(referer).hostname or None
    except ValueError:
        return None


_clicks = typing.cast(Table, Click.__table__)
_conversions = typing.cast(Table, Conversion.__table__)


def _param(name: str, col: Any) -> Any:
    return bindparam(name, type_=col.type)


# Months = the bounds of the click partitions a statement reads (partitions.spanned), or
# None when it reads no click.
Months = tuple[datetime, datetime] | None


class Shape(NamedTuple):
    """Which facts one statement reads, over which months: what it is built from."""

    click: bool
    flood: bool
    velocity: bool
    months: Months


@dataclass(frozen=True)
class Facts:
    """One conversion's facts statement: its shape, and its parameters."""

    shape: Shape
    params: dict[str, Any]


@functools.lru_cache(maxsize=64)
def facts_select(shape: Shape) -> Select[Any]:
    """The statement of this shape (one row), built once; its parameters are a Facts'."""
    return _facts_statement(*shape)


def _constant(at: datetime) -> Any:
    # A timestamp written into the statement's text, as a constant (see _facts_statement).
    return literal_column(f"'{at.isoformat()}'::timestamptz", DateTime(timezone=True))


def _facts_statement(click: bool, flood: bool, velocity: bool, months: Months) -> Select[Any]:
    """The one statement for this combination of facts, built once, with bound parameters.

    Built per conversion, the ORM's aliasing and column adaptation cost more CPU than
    PostgreSQL spends answering it.

    The clicks it reads are bounded by `months` as well, written as constants: so the
    statement is built (and prepared) once per month or two, and PostgreSQL prunes the
    partitions when it plans it, not only when it runs it. With the bounds as parameters,
    its generic plan would reach into every partition, cost as much, and lose to a custom
    plan: planned again on every call, which cost more than running it.
    """
    c = _clicks.c
    columns: list[Any] = []
    base: Any = select(literal(1).label("one")).subquery("one")
    if click:
        assert months is not None
        start, end = _constant(months[0]), _constant(months[1])
        # By primary key: clicked_at also prunes the partitions to the click's month.
        found = (
            select(c.referer, c.paid_markers, c.visitor_hash, c.partner_id)
            .where(
                c.id == _param("click_id", c.id),
                c.clicked_at == _param("clicked_at", c.clicked_at),
                c.clicked_at >= start,
                c.clicked_at < end,
            )
            .subquery("click")
        )
        base = base.outerjoin(found, true())
        # In async click mode a very fresh click may not be written yet: its facts are unknown.
        columns += [found.c.referer, found.c.paid_markers, found.c.partner_id.is_not(None)]
        if flood:
            # Visitor hashes are keyed per UTC day: a click in the first hour of a day
            # sees only that day's earlier clicks of the visitor.
            earlier = _clicks.alias("earlier")
            columns.append(
                _count_up_to(
                    "flood_cap",
                    select(literal_column("1"))
                    .where(
                        earlier.c.visitor_hash == found.c.visitor_hash,
                        earlier.c.partner_id == found.c.partner_id,
                        earlier.c.clicked_at >= _param("flood_from", c.clicked_at),
                        earlier.c.clicked_at < _param("clicked_at", c.clicked_at),
                        earlier.c.clicked_at >= start,
                        earlier.c.clicked_at < end,
                    )
                    .correlate(found),
                )
            )
    if velocity:
        v = _conversions.c
        columns.append(
            _count_up_to(
                "velocity_cap",
                select(literal_column("1")).where(
                    v.partner_id == _param("partner_id", v.partner_id),
                    v.program_id == _param("program_id", v.program_id),
                    v.occurred_at >= _param("velocity_from", v.occurred_at),
                    v.occurred_at < _param("occurred_at", v.occurred_at),
                    v.id != _param("conversion_id", v.id),
                ),
            )
        )
    return select(*columns).select_from(base)


def _count_up_to(cap: str, rows: Select[Any]) -> Any:
    # The count of `rows`, read no further than the parameter `cap` (rules.Counted).
    limited = rows.limit(bindparam(cap, type_=Integer)).subquery("counted")
    return select(func.count()).select_from(limited).scalar_subquery()


def facts_query(
    needs: frozenset[str],
    *,
    click_id: uuid.UUID | None,
    clicked_at: datetime | None,
    conversion_id: uuid.UUID,
    partner_id: uuid.UUID,
    program_id: uuid.UUID,
    occurred_at: datetime,
    counted: Counted,
) -> Facts | None:
    """The statement that reads the click's markers, referrer and visitor's recent clicks,
    and the partner's conversions in the past hour (each count as far as `counted` says),
    as far as `needs` asks; None when it asks nothing."""
    wants_click = "click" in needs and click_id is not None and clicked_at is not None
    flood = wants_click and "flood" in needs
    velocity = "velocity" in needs
    if not wants_click and not velocity:
        return None
    params: dict[str, Any] = {}
    months: Months = None
    if wants_click:
        assert clicked_at is not None
        params.update(click_id=click_id, clicked_at=clicked_at)
        months = spanned(clicked_at, clicked_at)
        if flood:
            params["flood_from"] = clicked_at - HOUR
            params["flood_cap"] = counted.visitor_clicks
            months = spanned(clicked_at - HOUR, clicked_at)
    if velocity:
        params.update(
            partner_id=partner_id,
            program_id=program_id,
            velocity_from=occurred_at - HOUR,
            occurred_at=occurred_at,
            conversion_id=conversion_id,
            velocity_cap=counted.partner_conversions,
        )
    return Facts(Shape(wants_click, flood, velocity, months), params)


def facts_of(query: Facts | None, row: Sequence[Any]) -> Stored:
    """What the statement of `query` read, from its columns in `row` (the row's first)."""
    if query is None:
        return Stored()
    shape = query.shape
    out: dict[str, Any] = {}
    at = 0
    if shape.click:
        referer, markers, found = row[:3]
        at = 3
        visitors = None
        if shape.flood:
            visitors = row[at]
            at += 1
        if found:
            out["referrer_host"] = _host(referer)
            out["paid_markers"] = frozenset(markers or ())
            out["visitor_clicks_before"] = None if visitors is None else int(visitors)
    if shape.velocity:
        out["partner_conversions_before"] = int(row[at])
    return Stored(**out)


# --- the quality report ------------------------------------------------------


@dataclass(frozen=True)
class QualityScope:
    """What one quality report reads: the range, the caller, and its filters."""

    start: datetime
    end: datetime
    principal: Principal
    program_id: uuid.UUID | None
    partner_id: uuid.UUID | None


def _scoped(stmt: Any, q: QualityScope, program_col: Any, partner_col: Any) -> Any:
    # The key's reach comes from the one place it is decided (auth/scope.py).
    stmt = stmt.where(in_programs(q.principal, program_col), of_partner(q.principal, partner_col))
    if q.program_id is not None:
        stmt = stmt.where(program_col == q.program_id)
    if q.partner_id is not None:
        stmt = stmt.where(partner_col == q.partner_id)
    return stmt


async def click_counts(session: AsyncSession, q: QualityScope) -> dict[uuid.UUID, tuple[int, int]]:
    """(human clicks, bot clicks) per partner, from the hourly rollup."""
    t = ClickRollupHourly
    stmt = (
        select(t.partner_id, func.sum(t.clicks), func.sum(t.bots))
        .where(t.hour >= q.start, t.hour < q.end)
        .group_by(t.partner_id)
    )
    rows = await session.execute(_scoped(stmt, q, t.program_id, t.partner_id))
    return {pid: (int(clicks), int(bots)) for pid, clicks, bots in rows}


async def status_counts(session: AsyncSession, q: QualityScope) -> dict[uuid.UUID, dict[str, int]]:
    """Attributed conversions per partner and status, by occurred_at."""
    c = Conversion
    stmt = (
        select(c.partner_id, c.status, func.count())
        .where(c.occurred_at >= q.start, c.occurred_at < q.end, c.partner_id.is_not(None))
        .group_by(c.partner_id, c.status)
    )
    out: dict[uuid.UUID, dict[str, int]] = {}
    for pid, status, n in await session.execute(_scoped(stmt, q, c.program_id, c.partner_id)):
        out.setdefault(pid, {})[status] = int(n)
    return out


async def rule_counts(session: AsyncSession, q: QualityScope) -> dict[uuid.UUID, dict[str, int]]:
    """How many conversions each rule fired on, per partner."""
    c = Conversion
    hit = func.jsonb_array_elements(c.fraud).table_valued("value").lateral("hit")
    rule = hit.c.value.op("->>")("rule")
    stmt = (
        select(c.partner_id, rule, func.count())
        .select_from(c)
        .join(hit, true())
        .where(
            c.occurred_at >= q.start,
            c.occurred_at < q.end,
            c.partner_id.is_not(None),
        )
        .group_by(c.partner_id, rule)
    )
    out: dict[uuid.UUID, dict[str, int]] = {}
    for pid, name, n in await session.execute(_scoped(stmt, q, c.program_id, c.partner_id)):
        out.setdefault(pid, {})[name] = int(n)
    return out
