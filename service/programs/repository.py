"""Every read of programs for an API key, starting from what the key may see."""

from __future__ import annotations

import uuid

from sqlalchemy import Select, exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from service.auth.keys import Principal
from service.auth.scope import in_programs, is_partner
from service.kit.pagination import PageParams, page_of, paginate_query
from service.models import Agreement, Program


def readable(principal: Principal) -> Select[Program]:
    """The programs a key may read: a merchant's own; a partner's those it has an agreement in."""
    stmt = select(Program).where(in_programs(principal, Program.id))
    if is_partner(principal):
        stmt = stmt.where(
            exists().where(
                Agreement.program_id == Program.id, Agreement.partner_id == principal.partner_id
            )
        )
    return stmt


async def get(session: AsyncSession, principal: Principal, program_id: uuid.UUID) -> Program | None:
    """A readable program by id, or None."""
    return await session.scalar(readable(principal).where(Program.id == program_id))


async def page(
    session: AsyncSession, principal: Principal, params: PageParams
) -> tuple[list[Program], str | None]:
    """A page of the readable programs."""
    rows = list(
        (await session.scalars(paginate_query(readable(principal), Program.id, params))).all()
    )
    return page_of(rows, params)
