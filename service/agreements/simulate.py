"""What-if: proposed terms run over a partner's conversions, beside what they earned."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from service.agreements.schemas import (
    SimActualOut,
    SimConversionIn,
    SimLineOut,
    SimMonthOut,
    SimPeriodOut,
    SimProposedOut,
    SimTotalsOut,
    SimulationOut,
    SimulationRequest,
)
from service.agreements.service import get_agreement, load_terms, version_in_force
from service.agreements.terms import TermsInvalid, validate_terms
from service.auth.keys import Principal
from service.commissions.simulation import SimConversion, SimLine, SimRefund, SimResult, simulate
from service.commissions.state import Item, stored_items
from service.commissions.terms import ZERO, Terms
from service.errors import ValidationFailed
from service.kit.money import MoneyError, format_amount, from_minor, parse_amount
from service.kit.time import ensure_aware
from service.models import (
    Agreement,
    AgreementVersion,
    AttributionMethod,
    CommissionEntry,
    Conversion,
    ConversionStatus,
    Customer,
    Partner,
    Program,
    Refund,
)

MAX_SPAN = timedelta(days=366)
# Stored conversions are read in full and run twice through the engine in
# memory; past this a period is too long to answer inside a request.
MAX_STORED_CONVERSIONS = 100_000
# One 422 names this many culprits at most; 10,000 bad rows help nobody.
MAX_ERRORS = 100
NO_AGREEMENT = "no agreement in force at the conversion's time"


@dataclass(frozen=True)
class _Case:
    """One conversion to simulate, with its stored id when it has one."""

    conversion: SimConversion
    conversion_id: uuid.UUID | None = None


class _Errors:
    def __init__(self) -> None:
        self.items: list[dict[str, str]] = []

    def fail(self, field: str, message: str) -> None:
        if len(self.items) < MAX_ERRORS:
            self.items.append({"field": field, "message": message})

    def money(self, text: str, currency: str, field: str) -> Decimal | None:
        try:
            return parse_amount(text, currency)
        except MoneyError as exc:
            self.fail(field, str(exc))
            return None

    def raise_if_any(self) -> None:
        if self.items:
            raise ValidationFailed(self.items)


def _check_period(body: SimulationRequest, errors: _Errors) -> None:
    if body.end <= body.start:
        errors.fail("to", "must be after from")
    elif body.end - body.start > MAX_SPAN:
        errors.fail("to", "the period must not exceed 366 days")


def _given_cases(
    body: SimulationRequest, rows: Sequence[SimConversionIn], currency: str, errors: _Errors
) -> list[_Case]:
    """The request's hypothetical conversions, checked against the program currency."""
    cases: list[_Case] = []
    for i, row in enumerate(rows):
        at = f"conversions[{i}]"
        if not body.start <= row.occurred_at < body.end:
            errors.fail(f"{at}.occurred_at", "must lie in the period [from, to)")
        amount: Decimal | None = None
        if row.amount is not None:
            amount = errors.money(row.amount, currency, f"{at}.amount")
        elif row.type == "sale":
            errors.fail(f"{at}.amount", "a sale needs an amount")
        items: list[Item] = []
        for k, item in enumerate(row.items):
            price = errors.money(item.amount, currency, f"{at}.items[{k}].amount")
            if price is not None:
                items.append(Item(item.sku, item.category, price, item.quantity))
        refunds: list[SimRefund] = []
        refunded = ZERO
        for j, ref in enumerate(row.refunds):
            value = errors.money(ref.amount, currency, f"{at}.refunds[{j}].amount")
            if value is None:
                continue
            refunded += value
            # An amount already refused would only add a second, misleading error.
            if refunded > (amount or ZERO) and (amount is not None or row.amount is None):
                errors.fail(f"{at}.refunds[{j}].amount", "refunds exceed the conversion's amount")
            refunds.append(SimRefund(value, ref.occurred_at))
        cases.append(
            _Case(
                SimConversion(
                    occurred_at=row.occurred_at,
                    event=row.type,
                    amount=amount,
                    items=tuple(items),
                    recurring_since=row.recurring_since,
                    refunds=tuple(refunds),
                )
            )
        )
    return cases


def _period_filter(
    agreement: Agreement, start: datetime, end: datetime
) -> list[ColumnElement[bool]]:
    """The stored conversions a simulation covers: the partner's, in the program and period."""
    return [
        Conversion.partner_id == agreement.partner_id,
        Conversion.program_id == agreement.program_id,
        Conversion.occurred_at >= start,
        Conversion.occurred_at < end,
        Conversion.status != ConversionStatus.rejected,
    ]


async def _stored_cases(
    session: AsyncSession, agreement: Agreement, body: SimulationRequest, currency: str
) -> list[_Case]:
    """The partner's stored conversions of the period, with all their refunds."""
    where = _period_filter(agreement, body.start, body.end)
    count = await session.scalar(select(func.count(Conversion.id)).where(*where))
    if count and count > MAX_STORED_CONVERSIONS:
        raise ValidationFailed(
            [
                {
                    "field": "to",
                    "message": f"the period holds {count} conversions, more than "
                    f"{MAX_STORED_CONVERSIONS}; simulate a shorter one",
                }
            ]
        )
    refunds: dict[uuid.UUID, list[SimRefund]] = defaultdict(list)
    refund_rows = await session.execute(
        select(Refund.conversion_id, Refund.program_amount_minor, Refund.created_at)
        .join(Conversion, Conversion.id == Refund.conversion_id)
        .where(*where)
        .order_by(Refund.created_at, Refund.id)
    )
    for conversion_id, minor, created_at in refund_rows:
        refunds[conversion_id].append(SimRefund(from_minor(minor, currency), created_at))
    rows = await session.execute(
        select(Conversion, Customer.first_attributed_at)
        .outerjoin(Customer, Customer.id == Conversion.customer_id)
        .where(*where)
        .order_by(Conversion.occurred_at, Conversion.id)
    )
    cases: list[_Case] = []
    for conv, first_attributed_at in rows:
        amount: Decimal | None = None
        if conv.program_amount_minor is not None:
            amount = from_minor(conv.program_amount_minor, currency)
        elif conv.type == "sale":
            amount = ZERO
        recurring = conv.attribution_method == AttributionMethod.customer
        cases.append(
            _Case(
                SimConversion(
                    occurred_at=conv.occurred_at,
                    event="sale" if conv.type == "sale" else "lead",
                    amount=amount,
                    items=stored_items(conv.items, conv.fx_rate),
                    recurring_since=first_attributed_at if recurring else None,
                    refunds=tuple(refunds.get(conv.id, ())),
                ),
                conversion_id=conv.id,
            )
        )
    return cases


async def _actual(
    session: AsyncSession, agreement: Agreement, body: SimulationRequest, currency: str
) -> SimActualOut:
    """What the ledger holds for the period's conversions, partner and parent side, per kind."""
    rows = await session.execute(
        select(
            CommissionEntry.partner_id,
            CommissionEntry.kind,
            func.sum(CommissionEntry.amount_minor),
            func.count(CommissionEntry.id),
        )
        .join(Conversion, Conversion.id == CommissionEntry.conversion_id)
        .where(
            *_period_filter(agreement, body.start, body.end),
            CommissionEntry.program_id == agreement.program_id,
            CommissionEntry.currency == currency,
        )
        .group_by(CommissionEntry.partner_id, CommissionEntry.kind)
    )
    sides: dict[bool, dict[str, int]] = {True: {}, False: {}}
    entries = 0
    for partner_id, kind, minor, n in rows:
        side = sides[partner_id == agreement.partner_id]
        side[kind] = side.get(kind, 0) + int(minor or 0)
        entries += int(n)

    def fmt(minor: int) -> str:
        return format_amount(from_minor(minor, currency), currency)

    return SimActualOut(
        commission=fmt(sum(sides[True].values())),
        override=fmt(sum(sides[False].values())),
        entries=entries,
        partner_by_kind={k: fmt(v) for k, v in sorted(sides[True].items())},
        parent_by_kind={k: fmt(v) for k, v in sorted(sides[False].items())},
    )


async def _versions(
    session: AsyncSession, agreement: Agreement
) -> list[tuple[Agreement, AgreementVersion]]:
    """Every version of the partner's agreements in the program, loaded once."""
    rows = await session.execute(
        select(Agreement, AgreementVersion)
        .join(AgreementVersion, AgreementVersion.agreement_id == Agreement.id)
        .where(
            Agreement.partner_id == agreement.partner_id,
            Agreement.program_id == agreement.program_id,
        )
    )
    return [(a, v) for a, v in rows]


def _current(
    versions: Sequence[tuple[Agreement, AgreementVersion]],
    cases: Sequence[_Case],
    currency: str,
    tz: str,
    has_parent: bool,
) -> tuple[dict[int, SimLine], Decimal, Decimal]:
    """Each conversion under the version in force at its time: lines by index, and totals.

    Conversions are run version by version, so when a version changes inside
    a month the simulated tiers restart at the change; `actual` shows the
    ledger's own figures.
    """
    groups: dict[tuple[uuid.UUID, int], list[int]] = defaultdict(list)
    terms: dict[tuple[uuid.UUID, int], Terms] = {}
    for i, case in enumerate(cases):
        found = version_in_force(versions, case.conversion.occurred_at)
        if found is not None:
            agreement, version = found
            key = (agreement.id, version.version)
            groups[key].append(i)
            terms[key] = load_terms(version, currency)
    lines: dict[int, SimLine] = {}
    commission = override = ZERO
    for key, indexes in groups.items():
        result = simulate(
            terms[key], [cases[i].conversion for i in indexes], currency, tz, has_parent=has_parent
        )
        commission += result.commission
        override += result.override
        for i, line in zip(indexes, result.lines, strict=True):
            lines[i] = line
    return lines, commission, override


def _totals(commission: Decimal, override: Decimal, currency: str) -> SimTotalsOut:
    return SimTotalsOut(
        commission=format_amount(commission, currency), override=format_amount(override, currency)
    )


def _proposed(result: SimResult, currency: str) -> SimProposedOut:
    return SimProposedOut(
        commission=format_amount(result.commission, currency),
        override=format_amount(result.override, currency),
        months=[
            SimMonthOut(
                month=m.month,
                event=m.event,
                revenue=format_amount(m.revenue, currency),
                count=m.count,
                commission=format_amount(m.commission, currency),
                override=format_amount(m.override, currency),
            )
            for m in result.months
        ],
    )


async def simulate_terms(
    session: AsyncSession, agreement_id: uuid.UUID, body: SimulationRequest, by: Principal
) -> SimulationOut:
    """Proposed terms over a period's conversions, beside the current terms and the ledger."""
    agreement = await get_agreement(session, agreement_id, by)
    program = await session.get(Program, agreement.program_id)
    partner = await session.get(Partner, agreement.partner_id)
    assert program is not None and partner is not None
    currency, tz = program.currency, program.time_zone

    errors = _Errors()
    proposed_terms: Terms | None = None
    try:
        proposed_terms = validate_terms(body.terms, currency)
    except TermsInvalid as exc:
        for e in exc.errors:
            errors.fail(e["field"], e["message"])
    _check_period(body, errors)
    given = (
        _given_cases(body, body.conversions, currency, errors)
        if body.conversions is not None
        else None
    )
    errors.raise_if_any()
    assert proposed_terms is not None

    if given is None:
        cases = await _stored_cases(session, agreement, body, currency)
        actual: SimActualOut | None = await _actual(session, agreement, body, currency)
    else:
        cases, actual = given, None

    has_parent = partner.parent_id is not None
    conversions = [c.conversion for c in cases]
    proposed = simulate(proposed_terms, conversions, currency, tz, has_parent=has_parent)
    versions = await _versions(session, agreement)
    current_lines, current_commission, current_override = _current(
        versions, cases, currency, tz, has_parent
    )

    lines: list[SimLineOut] = []
    for i, (case, line) in enumerate(zip(cases, proposed.lines, strict=True)):
        current = current_lines.get(i)
        current_reason: str | None
        if current is None:
            current_value, current_reason = ZERO, NO_AGREEMENT
        else:
            current_value, current_reason = current.commission, current.reason
        lines.append(
            SimLineOut(
                conversion_id=case.conversion_id,
                index=None if case.conversion_id is not None else i,
                month=line.month,
                current=format_amount(current_value, currency),
                proposed=format_amount(line.commission, currency),
                reason=line.reason,
                current_reason=current_reason,
            )
        )
    return SimulationOut(
        period=SimPeriodOut(start=ensure_aware(body.start), end=ensure_aware(body.end)),
        currency=currency,
        conversions=len(cases),
        actual=actual,
        current_terms=_totals(current_commission, current_override, currency),
        proposed=_proposed(proposed, currency),
        difference=_totals(
            proposed.commission - current_commission,
            proposed.override - current_override,
            currency,
        ),
        lines=lines,
    )
