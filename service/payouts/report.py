"""What was paid in a period, for the books."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from service.errors import ValidationFailed
from service.kit.money import format_minor
from service.payouts import totals
from service.payouts.runs import currency_totals
from service.payouts.schemas import Report, ReportItem


async def build_report(session: AsyncSession, start: datetime, end: datetime) -> Report:
    """What was paid with paid_at in [start, end), per partner and currency, for the books."""
    if end <= start:
        raise ValidationFailed([{"field": "to", "message": "must be later than from"}])
    rows = await totals.paid_report(session, start, end)
    items = [
        ReportItem(
            partner_id=r[0],
            partner_name=r[1],
            partner_email=r[2],
            currency=r[3],
            amount=format_minor(r[4], r[3]),
            payout_count=r[5],
            references=[ref for ref in r[6] if ref is not None],
        )
        for r in rows
    ]
    return Report(
        from_=start,
        to=end,
        items=items,
        totals=currency_totals((r[3], r[4], r[5]) for r in rows),
    )
