"""CSV exports of the preview, a run (for making the transfers) and the paid report."""

from __future__ import annotations

import json
from collections.abc import Iterator

from sqlalchemy.ext.asyncio import AsyncSession

from service.kit import csvout
from service.kit.money import format_minor
from service.models import PayoutRun
from service.payouts import totals
from service.payouts.schemas import PayoutOut, Preview, Report

PREVIEW_COLUMNS = (
    "partner_id",
    "partner_name",
    "partner_email",
    "payout_method",
    "currency",
    "payable",
    "pending",
    "on_hold",
    "carried",
    "min_payout",
    "eligible",
    "entry_count",
)
RUN_COLUMNS = (
    "run_id",
    "payout_id",
    "partner_id",
    "partner_name",
    "partner_email",
    "currency",
    "amount",
    "entry_count",
    "period_start",
    "period_end",
    "payout_method",
    "payout_details",
    "status",
)
PAYOUT_COLUMNS = (
    "payout_id",
    "run_id",
    "currency",
    "amount",
    "entry_count",
    "status",
    "period_start",
    "period_end",
    "payout_method",
    "reference",
    "paid_at",
    "failed_at",
    "failure_reason",
)
REPORT_COLUMNS = (
    "partner_id",
    "partner_name",
    "partner_email",
    "currency",
    "amount",
    "payout_count",
    "references",
)


# Amounts may be negative: they are numbers, never formulas, so they go as they are.
_AMOUNTS = frozenset(
    {
        "payable",
        "pending",
        "on_hold",
        "carried",
        "min_payout",
        "amount",
        "entry_count",
        "payout_count",
    }
)


def preview_csv(p: Preview) -> Iterator[str]:
    """The preview as CSV, one row per partner and currency, columns in PREVIEW_COLUMNS order."""
    return csvout.lines(
        PREVIEW_COLUMNS,
        ([getattr(i, c) for c in PREVIEW_COLUMNS] for i in p.items),
        _AMOUNTS,
    )


async def run_csv(session: AsyncSession, run: PayoutRun) -> Iterator[str]:
    """A run's export: one row per payout, with what is needed to make the transfer."""
    rows = await totals.run_payouts(session, run.id)
    return csvout.lines(
        RUN_COLUMNS,
        (
            (
                run.id,
                r.id,
                r.partner_id,
                r.name,
                r.email,
                r.currency,
                format_minor(r.amount_minor, r.currency),
                r.entry_count,
                r.period_start,
                r.period_end,
                r.payout_method,
                json.dumps(r.payout_details, sort_keys=True, separators=(",", ":")),
                r.status,
            )
            for r in rows
        ),
        _AMOUNTS,
    )


def payouts_csv(items: list[PayoutOut]) -> Iterator[str]:
    """Payouts as CSV, one row each, columns in PAYOUT_COLUMNS order."""
    return csvout.lines(
        PAYOUT_COLUMNS,
        (
            (
                p.id,
                p.run_id,
                p.currency,
                p.amount,
                p.entry_count,
                p.status,
                p.period_start,
                p.period_end,
                p.payout_method,
                p.reference,
                p.paid_at,
                p.failed_at,
                p.failure_reason,
            )
            for p in items
        ),
        _AMOUNTS,
    )


def report_csv(r: Report) -> Iterator[str]:
    """The paid report as CSV; references joined with csvout.LIST_SEPARATOR."""
    return csvout.lines(
        REPORT_COLUMNS,
        (
            (
                i.partner_id,
                i.partner_name,
                i.partner_email,
                i.currency,
                i.amount,
                i.payout_count,
                csvout.join_list(i.references),
            )
            for i in r.items
        ),
        _AMOUNTS,
    )
