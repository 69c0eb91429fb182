"""Every query of applications. Only admins read them: their keys reach every program."""

from __future__ import annotations

import uuid

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from service.auth.keys import Principal
from service.auth.scope import in_programs, is_partner
from service.kit.pagination import PageParams
from service.models import Application
from service.partnering import listing


def readable(principal: Principal) -> Select[Application]:
    """The applications a key may read: none for partners, its programs' for the others."""
    stmt = select(Application).where(in_programs(principal, Application.program_id))
    if is_partner(principal):
        return stmt.where(Application.partner_id == principal.partner_id)
    return stmt


async def get(
    session: AsyncSession, principal: Principal, application_id: uuid.UUID, *, lock: bool = False
) -> Application | None:
    """A readable application by id (locked when asked), or None."""
    row: Application | None = await listing.one(
        session, readable(principal), Application, application_id, lock=lock
    )
    return row


async def page(
    session: AsyncSession,
    principal: Principal,
    params: PageParams,
    *,
    status: str | None,
    program_id: uuid.UUID | None,
) -> tuple[list[Application], str | None]:
    """A page of the readable applications, optionally of one status and program."""
    return await listing.page(
        session, readable(principal), Application, params, status=status, program_id=program_id
    )
