"""Every read of conversions, starting from what a key may see."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from service.auth.keys import Principal
from service.auth.scope import in_programs, of_partner
from service.errors import NotFound
from service.kit.pagination import PageParams, page_of, paginate_query
from service.models import Conversion


def readable(principal: Principal) -> Select[Conversion]:
    """The conversions a key may read: a merchant its programs', a partner those it won."""
    return select(Conversion).where(
        in_programs(principal, Conversion.program_id),
        of_partner(principal, Conversion.partner_id),
    )


async def get(
    session: AsyncSession, principal: Principal, conversion_id: uuid.UUID
) -> Conversion | None:
    """A readable conversion by id, or None."""
    return await session.scalar(readable(principal).where(Conversion.id == conversion_id))


async def get_conversion(
    session: AsyncSession, principal: Principal, conversion_id: uuid.UUID
) -> Conversion:
    """A readable conversion by id, or NotFound."""
    conversion = await get(session, principal, conversion_id)
    if conversion is None:
        raise NotFound(f"conversion {conversion_id} does not exist")
    return conversion


async def page(
    session: AsyncSession,
    principal: Principal,
    params: PageParams,
    *,
    program_id: uuid.UUID | None = None,
    partner_id: uuid.UUID | None = None,
    status: str | None = None,
    occurred_from: datetime | None = None,
    occurred_to: datetime | None = None,
) -> tuple[list[Conversion], str | None]:
    """A page of the readable conversions, filtered."""
    stmt = readable(principal)
    if program_id is not None:
        stmt = stmt.where(Conversion.program_id == program_id)
    if partner_id is not None:
        stmt = stmt.where(Conversion.partner_id == partner_id)
    if status is not None:
        stmt = stmt.where(Conversion.status == status)
    if occurred_from is not None:
        stmt = stmt.where(Conversion.occurred_at >= occurred_from)
    if occurred_to is not None:
        stmt = stmt.where(Conversion.occurred_at < occurred_to)
    query = paginate_query(stmt, Conversion.id, params, Conversion.created_at)
    rows = list((await session.scalars(query)).all())
    return page_of(rows, params, by_created=True)
