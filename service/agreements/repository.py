"""Every read of agreements for an API key, starting from what the key may see."""

from __future__ import annotations

import uuid

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from service.auth.keys import Principal
from service.auth.scope import in_programs, of_partner
from service.kit.pagination import PageParams, page_of, paginate_query
from service.models import Agreement, AgreementVersion


def readable(principal: Principal) -> Select[Agreement]:
    """The agreements a key may read: a partner its own, a bound key its programs' only."""
    return select(Agreement).where(
        in_programs(principal, Agreement.program_id),
        of_partner(principal, Agreement.partner_id),
    )


async def get(
    session: AsyncSession, principal: Principal, agreement_id: uuid.UUID
) -> Agreement | None:
    """A readable agreement by id, or None."""
    return await session.scalar(readable(principal).where(Agreement.id == agreement_id))


async def page(
    session: AsyncSession,
    principal: Principal,
    params: PageParams,
    *,
    partner_id: uuid.UUID | None = None,
    program_id: uuid.UUID | None = None,
) -> tuple[list[Agreement], str | None]:
    """A page of the readable agreements, filtered."""
    stmt = readable(principal)
    if partner_id is not None:
        stmt = stmt.where(Agreement.partner_id == partner_id)
    if program_id is not None:
        stmt = stmt.where(Agreement.program_id == program_id)
    rows = list((await session.scalars(paginate_query(stmt, Agreement.id, params))).all())
    return page_of(rows, params)


async def versions_of(
    session: AsyncSession, agreement_ids: list[uuid.UUID]
) -> dict[uuid.UUID, list[AgreementVersion]]:
    """The versions of these agreements, in order, in one query."""
    out: dict[uuid.UUID, list[AgreementVersion]] = {aid: [] for aid in agreement_ids}
    if not agreement_ids:
        return out
    rows = await session.scalars(
        select(AgreementVersion)
        .where(AgreementVersion.agreement_id.in_(agreement_ids))
        .order_by(AgreementVersion.agreement_id, AgreementVersion.version)
    )
    for v in rows:
        out[v.agreement_id].append(v)
    return out
