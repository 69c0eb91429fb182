"""A payout after its run: read, marked paid, or failed with its entries given back."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from service import audit
from service.auth.keys import Principal
from service.errors import Conflict, NotFound, field_error
from service.events import announce
from service.kit.money import format_minor
from service.kit.pagination import PageParams, page_of, paginate_query
from service.kit.time import rfc3339, utc_now
from service.ledger import repository as commissions
from service.ledger.schemas import entry_out
from service.models import Payout, PayoutStatus
from service.payouts import locking
from service.payouts import repository as repo
from service.payouts.rules import CLOCK_SKEW, TRANSITIONS
from service.payouts.schemas import MarkFailed, MarkPaid, PayoutDetail, PayoutOut


def payout_out(p: Payout) -> PayoutOut:
    """The API shape of a payout."""
    return PayoutOut(
        id=p.id,
        run_id=p.run_id,
        partner_id=p.partner_id,
        currency=p.currency,
        amount=format_minor(p.amount_minor, p.currency),
        entry_count=p.entry_count,
        status=p.status,  # type: ignore[arg-type]
        period_start=p.period_start,
        period_end=p.period_end,
        payout_method=p.payout_method,
        reference=p.reference,
        paid_at=p.paid_at,
        failed_at=p.failed_at,
        failure_reason=p.failure_reason,
        created_at=p.created_at,
        updated_at=p.updated_at,
    )


async def get_payout(
    session: AsyncSession, payout_id: uuid.UUID, by: Principal, *, for_update: bool = False
) -> Payout:
    """A payout the caller may see, or NotFound (another partner's payout included)."""
    stmt = repo.readable(by).where(Payout.id == payout_id)
    payout = await session.scalar(stmt.with_for_update(of=Payout) if for_update else stmt)
    if payout is None:
        raise NotFound(f"payout {payout_id} does not exist")
    return payout


async def payout_detail(session: AsyncSession, payout_id: uuid.UUID, by: Principal) -> PayoutDetail:
    """A payout with the ledger entries locked into it."""
    payout = await get_payout(session, payout_id, by)
    entries = await commissions.of_payout(session, by, payout.id)
    return PayoutDetail(
        **payout_out(payout).model_dump(),
        entries=[entry_out(e, by) for e in entries],
    )


async def list_payouts(
    session: AsyncSession,
    params: PageParams,
    by: Principal,
    *,
    partner_id: uuid.UUID | None,
    status: str | None,
    run_id: uuid.UUID | None,
) -> tuple[list[Payout], str | None]:
    """A page of the payouts the caller may see; a partner key sees its own only."""
    stmt = repo.readable(by)
    if partner_id is not None:
        stmt = stmt.where(Payout.partner_id == partner_id)
    if status is not None:
        stmt = stmt.where(Payout.status == status)
    if run_id is not None:
        stmt = stmt.where(Payout.run_id == run_id)
    rows = list((await session.scalars(paginate_query(stmt, Payout.id, params))).all())
    return page_of(rows, params)


def _transition(payout: Payout, target: PayoutStatus) -> None:
    if target not in TRANSITIONS[PayoutStatus(payout.status)]:
        raise Conflict(
            f"a {payout.status} payout cannot be marked {target}",
            errors=[{"field": "status", "message": "transition not allowed"}],
            extra={"status_now": payout.status},
        )


async def mark_paid(
    session: AsyncSession, payout_id: uuid.UUID, body: MarkPaid, by: Principal
) -> Payout:
    """open -> paid, with the transfer reference; final."""
    paid_at = body.paid_at or utc_now()
    if paid_at > utc_now() + CLOCK_SKEW:
        raise field_error("paid_at", "must not be in the future")
    payout = await get_payout(session, payout_id, by, for_update=True)
    _transition(payout, PayoutStatus.paid)
    payout.status = PayoutStatus.paid
    payout.reference = body.reference
    payout.paid_at = paid_at
    await session.flush()
    await session.refresh(payout)
    audit.record(
        session,
        by,
        "payout.paid",
        "payout",
        payout.id,
        {"reference": body.reference, "paid_at": rfc3339(paid_at)},
    )
    await announce.payout(session, payout, "payout.paid")
    return payout


async def mark_failed(
    session: AsyncSession, payout_id: uuid.UUID, body: MarkFailed, by: Principal
) -> Payout:
    """open -> failed; its entries go back to the unpaid balance for the next run."""
    payout = await get_payout(session, payout_id, by, for_update=True)
    _transition(payout, PayoutStatus.failed)
    payout.status = PayoutStatus.failed
    payout.failed_at = utc_now()
    payout.failure_reason = body.reason
    await session.flush()
    released = await locking.release_entries(session, [payout.id])
    await session.refresh(payout)
    audit.record(
        session,
        by,
        "payout.failed",
        "payout",
        payout.id,
        {"reason": body.reason, "entries_released": released},
    )
    await announce.payout(session, payout, "payout.failed")
    return payout
