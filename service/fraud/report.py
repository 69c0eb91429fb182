"""The traffic quality report: per partner, clicks and bots, review outcomes, rules fired."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from service.auth.keys import Principal
from service.fraud import repository as repo
from service.fraud.schemas import Quality, QualityRow, Rules
from service.models import ConversionStatus
from service.reports import repository as reports_repo
from service.reports.service import Params
from service.reports.service import _range as span
from service.reports.service import _scope as scope

_SHARE = Decimal("0.0001")
RULE_NAMES = tuple(Rules.model_fields)


def bot_share(humans: int, bots: int) -> str | None:
    """bots / all clicks to 4 decimals, half-even; None without clicks."""
    total = humans + bots
    if total == 0:
        return None
    return f"{(Decimal(bots) / Decimal(total)).quantize(_SHARE, ROUND_HALF_EVEN):f}"


async def quality(
    session: AsyncSession,
    auth: Principal,
    start: datetime | None,
    end: datetime | None,
    program_id: uuid.UUID | None,
    partner_id: uuid.UUID | None,
) -> Quality:
    """One row per partner with traffic or conversions in the range, as far as the caller sees."""
    start, end = span(start, end)
    req = Params(start, end, program_id, partner_id, None, "partner", None)
    await scope(session, auth, req)  # 404 for a program or partner the key cannot read
    q = repo.QualityScope(start, end, auth, program_id, partner_id)
    clicks = await repo.click_counts(session, q)
    statuses = await repo.status_counts(session, q)
    fired = await repo.rule_counts(session, q)
    ids = set(clicks) | set(statuses)
    names = await reports_repo.partner_names(session, ids)
    rows = []
    for pid in ids:
        humans, bots = clicks.get(pid, (0, 0))
        by_status = statuses.get(pid, {})
        rules = fired.get(pid, {})
        rows.append(
            QualityRow(
                partner_id=pid,
                partner_name=names.get(pid, ""),
                clicks=humans,
                bots=bots,
                bot_share=bot_share(humans, bots),
                conversions=sum(by_status.values()),
                held=by_status.get(ConversionStatus.review, 0),
                rejected=by_status.get(ConversionStatus.rejected, 0),
                approved=by_status.get(ConversionStatus.accepted, 0),
                rules={name: rules.get(name, 0) for name in RULE_NAMES},
            )
        )
    rows.sort(key=lambda r: (r.partner_name, str(r.partner_id)))
    return Quality(from_=start, to=end, program_id=program_id, rows=rows)
