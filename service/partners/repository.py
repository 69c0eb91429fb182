"""Every read of partners for an API key, starting from what the key may see."""

from __future__ import annotations

import uuid

from sqlalchemy import Select, exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from service.auth.keys import Principal
from service.auth.scope import bound_programs, in_programs, is_partner, of_partner
from service.kit.pagination import PageParams, page_of, paginate_query
from service.models import Agreement, Partner


def readable(principal: Principal) -> Select[Partner]:
    """The partners a key may read: a partner itself; a merchant those in its programs."""
    stmt = select(Partner).where(of_partner(principal, Partner.id))
    # A merchant reads the partners working in its programs; a partner always reads itself.
    if not is_partner(principal) and bound_programs(principal) is not None:
        stmt = stmt.where(
            exists().where(
                Agreement.partner_id == Partner.id, in_programs(principal, Agreement.program_id)
            )
        )
    return stmt


async def get(session: AsyncSession, principal: Principal, partner_id: uuid.UUID) -> Partner | None:
    """A readable partner by id, or None."""
    return await session.scalar(readable(principal).where(Partner.id == partner_id))


async def page(
    session: AsyncSession, principal: Principal, params: PageParams, *, status: str | None = None
) -> tuple[list[Partner], str | None]:
    """A page of the readable partners, optionally of one status."""
    stmt = readable(principal)
    if status is not None:
        stmt = stmt.where(Partner.status == status)
    rows = list((await session.scalars(paginate_query(stmt, Partner.id, params))).all())
    return page_of(rows, params)
