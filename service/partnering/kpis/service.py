"""KPI targets, and the report of a period's actuals against them."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from service import audit
from service.auth.keys import Principal
from service.auth.scope import is_partner
from service.errors import Conflict, NotFound, ValidationFailed, field_error
from service.kit import csvout
from service.kit.money import (
    MoneyError,
    format_amount,
    from_minor,
    minor_units,
    parse_amount,
    parse_decimal,
    to_minor,
)
from service.kit.pagination import PageParams
from service.kit.time import utc_now
from service.models import KpiTarget, Program
from service.partnering import membership
from service.partnering.kpis import repository, rules
from service.partnering.kpis.repository import Actuals
from service.partnering.kpis.schemas import (
    KpiReport,
    KpiTargetCreate,
    KpiTargetOut,
    Metric,
    Targets,
)
from service.partners import repository as partners
from service.programs import repository as programs

MONEY = ("revenue", "commission")


def _stored(targets: Targets, currency: str) -> dict[str, Any]:
    """Targets as stored: counts as integers, money in minor units, the rate as a string."""
    errors: list[dict[str, str]] = []
    out: dict[str, Any] = {}
    for name, value in targets.model_dump(exclude_none=True).items():
        if name in MONEY:
            try:
                out[name] = to_minor(parse_amount(value, currency), currency)
            except MoneyError as exc:
                errors.append({"field": f"targets.{name}", "message": str(exc)})
        elif name == "conversion_rate":
            try:
                rate = parse_decimal(value)
            except MoneyError as exc:
                errors.append({"field": f"targets.{name}", "message": str(exc)})
                continue
            if rate < 0:
                errors.append({"field": f"targets.{name}", "message": "must not be negative"})
            out[name] = f"{rate:f}"
        else:
            out[name] = value
    if not out and not errors:
        errors.append({"field": "targets", "message": "name at least one target"})
    if errors:
        raise ValidationFailed(errors)
    return out


def _targets_out(stored: dict[str, Any], currency: str) -> Targets:
    values = {k: (f"{from_minor(v, currency):f}" if k in MONEY else v) for k, v in stored.items()}
    return Targets(**values)


def to_out(row: KpiTarget, currency: str) -> KpiTargetOut:
    """The API shape of a target."""
    return KpiTargetOut(
        id=row.id,
        program_id=row.program_id,
        partner_id=row.partner_id,
        period=row.period,  # type: ignore[arg-type]
        start=row.start,
        targets=_targets_out(row.targets, currency),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


async def _program(session: AsyncSession, program_id: uuid.UUID, by: Principal) -> Program:
    program = await programs.get(session, by, program_id)
    if program is None:
        raise NotFound(f"program {program_id} does not exist")
    return program


async def create_target(
    session: AsyncSession, body: KpiTargetCreate, by: Principal
) -> tuple[KpiTarget, Program]:
    """Store targets for a program (or one partner in it) and a period; one per key."""
    program = await programs.get(session, by, body.program_id)
    if program is None:
        raise field_error("program_id", "no such program")
    if body.partner_id is not None:
        await membership.partner_in_program(session, body.partner_id, program, field="partner_id")
    problem = rules.period_problem(body.period, body.start)
    if problem:
        raise field_error("start", problem)
    row = KpiTarget(
        program_id=program.id,
        partner_id=body.partner_id,
        period=body.period,
        start=body.start,
        targets=_stored(body.targets, program.currency),
    )
    try:
        async with session.begin_nested():
            session.add(row)
            await session.flush()
    except IntegrityError as exc:
        if "uq_kpi_targets_key" not in str(exc.orig):
            raise
        existing = await repository.find(
            session, by, program.id, body.partner_id, body.period, body.start
        )
        raise Conflict(
            "targets for this program, partner and period exist; PATCH them",
            extra={"kpi_target_id": str(existing.id) if existing else None},
        ) from None
    await session.refresh(row)
    audit.record(session, by, "kpi_target.created", "kpi_target", row.id, row.targets)
    return row, program


async def update_target(
    session: AsyncSession, target_id: uuid.UUID, targets: Targets, by: Principal
) -> tuple[KpiTarget, Program]:
    """Replace a target's values."""
    row = await repository.get(session, by, target_id)
    if row is None:
        raise NotFound(f"KPI target {target_id} does not exist")
    program = await _program(session, row.program_id, by)
    before = row.targets
    row.targets = _stored(targets, program.currency)
    await session.flush()
    await session.refresh(row)
    audit.record(
        session, by, "kpi_target.updated", "kpi_target", row.id, {"from": before, "to": row.targets}
    )
    return row, program


async def list_targets(
    session: AsyncSession,
    params: PageParams,
    by: Principal,
    program_id: uuid.UUID | None,
    partner_id: uuid.UUID | None,
) -> tuple[list[tuple[KpiTarget, str]], str | None]:
    """A page of targets with their program's currency."""
    rows, cursor = await repository.page(
        session, by, params, program_id=program_id, partner_id=partner_id
    )
    currencies: dict[uuid.UUID, str] = {}
    for row in rows:
        if row.program_id not in currencies:
            currencies[row.program_id] = (await _program(session, row.program_id, by)).currency
    return [(r, currencies[r.program_id]) for r in rows], cursor


# --- the report ------------------------------------------------------------------


def _values(a: Actuals, currency: str) -> dict[str, Decimal | None]:
    rate = rules.ratio(Decimal(a.leads + a.sales), Decimal(a.clicks))
    return {
        "clicks": Decimal(a.clicks),
        "sales": Decimal(a.sales),
        "revenue": from_minor(a.revenue_minor, currency),
        "new_customers": Decimal(a.new_customers),
        "conversion_rate": rate,
        "commission": from_minor(a.commission_minor, currency),
    }


def _target_value(stored: dict[str, Any], name: str, currency: str) -> Decimal | None:
    if name not in stored:
        return None
    if name in MONEY:
        return from_minor(int(stored[name]), currency)
    return Decimal(str(stored[name]))


def _shown(kind: str, value: Decimal | None, currency: str) -> int | str | None:
    if value is None:
        return None
    if kind == "count":
        return int(value)
    if kind == "money":
        return format_amount(value, currency)
    return f"{value:f}"


def _months(p: rules.Period) -> tuple[date, date]:
    return p.start, p.end


async def report(
    session: AsyncSession,
    by: Principal,
    program_id: uuid.UUID,
    partner_id: uuid.UUID | None,
    period: str,
    start: date,
    now: datetime | None = None,
) -> KpiReport:
    """Targets, actuals, the period before, change and projection of every metric."""
    program = await _program(session, program_id, by)
    if is_partner(by):
        # A partner's report is its own; another partner's id is not there.
        if partner_id is not None and partner_id != by.partner_id:
            raise NotFound(f"partner {partner_id} does not exist")
        partner_id = by.partner_id
    elif partner_id is not None and await partners.get(session, by, partner_id) is None:
        raise NotFound(f"partner {partner_id} does not exist")
    problem = rules.period_problem(period, start)
    if problem:
        raise field_error("start", problem)
    now = now or utc_now()
    tz, currency = program.time_zone, program.currency
    this = rules.period(period, start, tz)
    before = rules.previous(this, tz)
    current = _values(
        await repository.actuals(
            session, by, program.id, partner_id, this.starts_at, this.ends_at, _months(this)
        ),
        currency,
    )
    earlier = _values(
        await repository.actuals(
            session, by, program.id, partner_id, before.starts_at, before.ends_at, _months(before)
        ),
        currency,
    )
    target = await repository.find(session, by, program.id, partner_id, period, start)
    stored = target.targets if target is not None else {}
    share = rules.elapsed_share(this, now)
    minor = Decimal(1).scaleb(-minor_units(currency))
    metrics = []
    for name, kind in rules.METRICS:
        f = rules.figures(
            name,
            _target_value(stored, name, currency),
            current[name],
            earlier[name],
            share,
            minor if kind == "money" else Decimal(1),
        )
        metrics.append(
            Metric(
                metric=name,
                target=_shown(kind, f.target, currency),
                actual=_shown(kind, f.actual, currency),
                attainment=_shown("ratio", f.attainment, currency),
                previous=_shown(kind, f.previous, currency),
                change=_shown("ratio", f.change, currency),
                projected=_shown(kind, f.projected, currency),
                on_track=f.on_track,
            )
        )
    return KpiReport(
        program_id=program.id,
        partner_id=partner_id,
        period=period,  # type: ignore[arg-type]
        start=this.start,
        end=this.end,
        time_zone=tz,
        currency=currency,
        as_of=now,
        target_id=target.id if target else None,
        metrics=metrics,
    )


CSV_COLUMNS = (
    "metric",
    "target",
    "actual",
    "attainment",
    "previous",
    "change",
    "projected",
    "on_track",
)


def to_csv(kpis: KpiReport) -> Iterator[str]:
    """The report's metrics as CSV lines."""
    rows = (
        [
            m.metric,
            m.target,
            m.actual,
            m.attainment,
            m.previous,
            m.change,
            m.projected,
            None if m.on_track is None else str(m.on_track).lower(),
        ]
        for m in kpis.metrics
    )
    numeric = frozenset(CSV_COLUMNS[1:7])
    return csvout.lines(CSV_COLUMNS, rows, numeric)
