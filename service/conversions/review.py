"""Review of a conversion: hold, approve, reject; a rejection reverses what it earned."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from service import audit
from service.auth.keys import Principal
from service.errors import Conflict, NotFound
from service.events import announce
from service.ledger import reversals
from service.models import Conversion, ConversionStatus, Program, Refund

TRANSITIONS = {
    "review": {ConversionStatus.accepted},
    "approve": {ConversionStatus.review},
    "reject": {ConversionStatus.accepted, ConversionStatus.review},
}
EVENT = {
    "review": "conversion.held",
    "approve": "conversion.approved",
    "reject": "conversion.rejected",
}
TARGET = {
    "review": ConversionStatus.review,
    "approve": ConversionStatus.accepted,
    "reject": ConversionStatus.rejected,
}


async def decide(
    session: AsyncSession,
    conversion_id: uuid.UUID,
    action: str,
    reason: str | None,
    by: Principal,
) -> Conversion:
    """Hold, approve or reject a conversion; a rejection reverses what it earned."""
    conversion = await session.scalar(
        select(Conversion).where(Conversion.id == conversion_id).with_for_update()
    )
    if conversion is None:
        raise NotFound(f"conversion {conversion_id} does not exist")
    if conversion.status not in TRANSITIONS[action]:
        raise Conflict(f"a conversion in status {conversion.status} cannot be {action}ed")
    before = conversion.status
    deltas: dict[str, Any] = {}
    if action == "reject":
        program = await session.get(Program, conversion.program_id)
        assert program is not None
        total = conversion.program_amount_minor or 0
        refunded = await session.scalar(
            select(func.coalesce(func.sum(Refund.program_amount_minor), 0)).where(
                Refund.conversion_id == conversion.id
            )
        )
        reversal = await reversals.plan_reversal(
            session,
            conversion,
            program,
            amount_minor=total - int(refunded or 0),
            refunded_before_minor=int(refunded or 0),
            refund_id=None,
            full=True,
            reason=f"rejected: {reason}" if reason else "rejected",
        )
        await reversals.write_reversal(session, reversal)
        deltas = reversal.summary
    conversion.status = TARGET[action]
    conversion.review_reason = reason if reason is not None else conversion.review_reason
    await session.flush()
    audit.record(
        session,
        by,
        f"conversion.{action}",
        "conversion",
        conversion.id,
        {"status": {"from": before, "to": conversion.status}, "reason": reason, **deltas},
    )
    await announce.conversion(session, conversion, EVENT[action])
    return conversion
