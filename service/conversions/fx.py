"""Dated FX rates, for conversions in another currency than their program's."""

from __future__ import annotations

from datetime import date
from decimal import ROUND_HALF_EVEN, Decimal

from sqlalchemy import ScalarSelect, bindparam, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from service import audit
from service.auth.keys import Principal
from service.conversions.schemas import FxRateIn, FxRateOut
from service.errors import ValidationFailed
from service.kit.driver import Prepared
from service.kit.ids import new_id
from service.kit.money import MoneyError, is_currency, parse_decimal
from service.kit.time import utc_now
from service.models import FxRate

MAX_RATE = Decimal(10) ** 12
# conversions.fx_rate is NUMERIC(24, 12).
FX_RATE_QUANTUM = Decimal("1e-12")


def _rate(text: str) -> Decimal | None:
    try:
        value = parse_decimal(text)
    except MoneyError:
        return None
    if value <= 0 or value >= MAX_RATE:
        return None
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -12:
        return None
    return value


async def put_rate(session: AsyncSession, body: FxRateIn, by: Principal) -> FxRateOut:
    """Validate and store (or replace) one day's rate."""
    errors = []
    for field in ("base_currency", "quote_currency"):
        if not is_currency(getattr(body, field)):
            errors.append({"field": field, "message": "not an ISO 4217 currency code"})
    if body.base_currency == body.quote_currency:
        errors.append({"field": "quote_currency", "message": "must differ from base_currency"})
    rate = _rate(body.rate)
    if rate is None:
        errors.append(
            {"field": "rate", "message": "a positive decimal below 10^12 with at most 12 decimals"}
        )
    if errors:
        raise ValidationFailed(errors)
    assert rate is not None
    stmt = insert(FxRate).values(
        base_currency=body.base_currency,
        quote_currency=body.quote_currency,
        date=body.date,
        rate=rate,
        created_at=utc_now(),
    )
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=["base_currency", "quote_currency", "date"],
            set_={"rate": stmt.excluded.rate, "created_at": stmt.excluded.created_at},
        )
    )
    audit.record(
        session,
        by,
        "fx_rate.set",
        "fx_rate",
        new_id(),
        {
            "pair": f"{body.base_currency}/{body.quote_currency}",
            "date": str(body.date),
            "rate": body.rate,
        },
    )
    return FxRateOut(
        base_currency=body.base_currency,
        quote_currency=body.quote_currency,
        rate=f"{rate:f}",
        date=body.date,
    )


async def list_rates(session: AsyncSession, base: str | None, quote: str | None) -> list[FxRateOut]:
    """Rates, newest first, optionally for one pair."""
    stmt = select(FxRate).order_by(FxRate.date.desc(), FxRate.base_currency, FxRate.quote_currency)
    if base:
        stmt = stmt.where(FxRate.base_currency == base)
    if quote:
        stmt = stmt.where(FxRate.quote_currency == quote)
    rows = (await session.scalars(stmt.limit(1000))).all()
    return [
        FxRateOut(
            base_currency=r.base_currency,
            quote_currency=r.quote_currency,
            rate=f"{Decimal(r.rate).normalize():f}",
            date=r.date,
        )
        for r in rows
    ]


def _latest(base: str, quote: str) -> ScalarSelect[Decimal]:
    # The latest rate of base->quote dated on or before :day (the primary key's order).
    return (
        select(FxRate.rate)
        .where(
            FxRate.base_currency == bindparam(base, type_=FxRate.base_currency.type),
            FxRate.quote_currency == bindparam(quote, type_=FxRate.quote_currency.type),
            FxRate.date <= bindparam("day", type_=FxRate.date.type),
        )
        .order_by(FxRate.date.desc())
        .limit(1)
        .scalar_subquery()
    )


# Both ways round in one statement: a sale in another currency pays one round trip for its
# rate, whichever way it was stored.
_RATES = Prepared(select(_latest("base", "quote"), _latest("quote", "base")))


async def rate_on(session: AsyncSession, base: str, quote: str, day: date) -> Decimal | None:
    """Quote units per base unit on `day`: the latest base->quote rate dated on or before
    it; without one, the inverse of the latest quote->base rate so dated."""
    rates = await _RATES.fetchrow(session, {"base": base, "quote": quote, "day": day})
    assert rates is not None  # a SELECT without FROM: always one row
    direct, inverse = rates[0], rates[1]
    if direct is not None:
        return Decimal(direct)
    if inverse is None:
        return None
    # Rounded as the conversion stores it (12 places), so the first answer, its replay
    # and every later refund use one and the same rate.
    return (Decimal(1) / Decimal(inverse)).quantize(FX_RATE_QUANTUM, rounding=ROUND_HALF_EVEN)
