"""Every query of deals, starting from what a key may read."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Select, and_, or_, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from service.auth.keys import Principal
from service.auth.scope import in_programs, of_partner
from service.kit.pagination import PageParams
from service.models import Deal, DealStatus
from service.partnering import listing


def readable(principal: Principal) -> Select[Deal]:
    """The deals a key may read: a partner its own, in its programs; admins every one."""
    return select(Deal).where(
        in_programs(principal, Deal.program_id), of_partner(principal, Deal.partner_id)
    )


async def get(
    session: AsyncSession, principal: Principal, deal_id: uuid.UUID, *, lock: bool = False
) -> Deal | None:
    """A readable deal by id (its row locked when asked), or None."""
    row: Deal | None = await listing.one(session, readable(principal), Deal, deal_id, lock=lock)
    return row


async def page(
    session: AsyncSession,
    principal: Principal,
    params: PageParams,
    *,
    status: str | None,
    program_id: uuid.UUID | None,
) -> tuple[list[Deal], str | None]:
    """A page of the readable deals, optionally of one status and program."""
    return await listing.page(
        session, readable(principal), Deal, params, status=status, program_id=program_id
    )


async def lock_domains(session: AsyncSession, program_id: uuid.UUID, domains: list[str]) -> None:
    """Serialise registrations that touch one of these domains in the program.

    A transaction-scoped advisory lock per (program, domain), taken in sorted order so that
    two registrations naming the same pair of domains never deadlock: the second waits,
    then sees the first one's deal and is refused.
    """
    for domain in sorted(set(domains)):
        await session.execute(
            text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))"),
            {"k": f"deal:{program_id}:{domain}"},
        )


def _holding(at: datetime) -> object:
    return or_(
        Deal.status == DealStatus.submitted,
        and_(Deal.status == DealStatus.approved, Deal.expires_at > at),
    )


async def other_holder(
    session: AsyncSession,
    program_id: uuid.UUID,
    partner_id: uuid.UUID,
    domains: list[str],
    at: datetime,
) -> uuid.UUID | None:
    """A deal of another partner that holds one of these domains now, or None."""
    return await session.scalar(
        select(Deal.id)
        .where(
            Deal.program_id == program_id,
            Deal.partner_id != partner_id,
            or_(Deal.domain.in_(domains), Deal.contact_domain.in_(domains)),
            _holding(at),  # type: ignore[arg-type]
        )
        .limit(1)
    )


async def approved_for(
    session: AsyncSession, program_id: uuid.UUID, domain: str, at: datetime
) -> Deal | None:
    """The approved deal that holds a customer domain at `at` (the earliest approved wins)."""
    return await session.scalar(
        select(Deal)
        .where(
            Deal.program_id == program_id,
            Deal.status == DealStatus.approved,
            or_(Deal.domain == domain, Deal.contact_domain == domain),
            Deal.decided_at <= at,
            Deal.expires_at > at,
        )
        .order_by(Deal.decided_at, Deal.id)
        .limit(1)
    )
