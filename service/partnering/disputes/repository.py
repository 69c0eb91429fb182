"""Every query of disputes, starting from what a key may read."""

from __future__ import annotations

import uuid

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from service.auth.keys import Principal
from service.auth.scope import in_programs, of_partner
from service.kit.pagination import PageParams
from service.models import Conversion, Dispute
from service.partnering import listing


def readable(principal: Principal) -> Select[Dispute]:
    """The disputes a key may read: a partner its own; admins every one."""
    return select(Dispute).where(
        in_programs(principal, Dispute.program_id), of_partner(principal, Dispute.partner_id)
    )


async def get(
    session: AsyncSession, principal: Principal, dispute_id: uuid.UUID, *, lock: bool = False
) -> Dispute | None:
    """A readable dispute by id (locked when asked), or None."""
    row: Dispute | None = await listing.one(
        session, readable(principal), Dispute, dispute_id, lock=lock
    )
    return row


async def page(
    session: AsyncSession,
    principal: Principal,
    params: PageParams,
    *,
    status: str | None,
    program_id: uuid.UUID | None,
) -> tuple[list[Dispute], str | None]:
    """A page of the readable disputes, optionally of one status and program."""
    return await listing.page(
        session, readable(principal), Dispute, params, status=status, program_id=program_id
    )


async def conversion_of_order(
    session: AsyncSession, program_id: uuid.UUID, order_id: str
) -> Conversion | None:
    """The stored conversion of an order, the sale before a lead, its row locked."""
    return await session.scalar(
        select(Conversion)
        .where(Conversion.program_id == program_id, Conversion.order_id == order_id)
        .order_by(Conversion.type.desc())
        .limit(1)
        .with_for_update()
    )
