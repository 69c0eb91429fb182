"""What every partner-program request checks first: the program, and the partner's place in it."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from service.auth.keys import Principal
from service.errors import field_error
from service.models import Agreement, Partner, Program


async def program_for(session: AsyncSession, program_id: uuid.UUID, by: Principal) -> Program:
    """The program, when the key reaches it; a 422 naming program_id otherwise."""
    program = await session.get(Program, program_id)
    if program is None or not by.sees_program(program.id):
        raise field_error("program_id", "no such program")
    return program


async def partner_in_program(
    session: AsyncSession, partner_id: uuid.UUID, program: Program, *, field: str = "program_id"
) -> Partner:
    """The partner, when some agreement (of any time) binds it to the program; else a 422."""
    partner = await session.get(Partner, partner_id)
    if partner is None:
        raise field_error("partner_id", "no such partner")
    bound = await session.scalar(
        select(Agreement.id)
        .where(Agreement.partner_id == partner_id, Agreement.program_id == program.id)
        .limit(1)
    )
    if bound is None:
        raise field_error(field, "the partner has no agreement in this program")
    return partner
