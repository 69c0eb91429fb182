"""Every read of links and promo codes for an API key, starting from what the key may see."""

from __future__ import annotations

import uuid

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from service.auth.keys import Principal
from service.auth.scope import in_programs, of_partner
from service.kit.pagination import PageParams, page_of, paginate_query
from service.models import Link, PromoCode


def readable(principal: Principal) -> Select[Link]:
    """The links a key may read: a partner its own, a bound key its programs' only."""
    return select(Link).where(
        in_programs(principal, Link.program_id), of_partner(principal, Link.partner_id)
    )


def readable_promo_codes(principal: Principal) -> Select[PromoCode]:
    """The promo codes a key may read, bound the same way as its links."""
    return select(PromoCode).where(
        in_programs(principal, PromoCode.program_id), of_partner(principal, PromoCode.partner_id)
    )


async def get(session: AsyncSession, principal: Principal, link_id: uuid.UUID) -> Link | None:
    """A readable link by id, or None."""
    return await session.scalar(readable(principal).where(Link.id == link_id))


async def get_promo_code(
    session: AsyncSession, principal: Principal, promo_id: uuid.UUID
) -> PromoCode | None:
    """A readable promo code by id, or None."""
    return await session.scalar(readable_promo_codes(principal).where(PromoCode.id == promo_id))


async def page(
    session: AsyncSession,
    principal: Principal,
    params: PageParams,
    *,
    program_id: uuid.UUID | None = None,
    partner_id: uuid.UUID | None = None,
    status: str | None = None,
) -> tuple[list[Link], str | None]:
    """A page of the readable links, filtered."""
    stmt = readable(principal)
    if program_id is not None:
        stmt = stmt.where(Link.program_id == program_id)
    if partner_id is not None:
        stmt = stmt.where(Link.partner_id == partner_id)
    if status is not None:
        stmt = stmt.where(Link.status == status)
    rows = list((await session.scalars(paginate_query(stmt, Link.id, params))).all())
    return page_of(rows, params)


async def page_promo_codes(
    session: AsyncSession,
    principal: Principal,
    params: PageParams,
    *,
    program_id: uuid.UUID | None = None,
    partner_id: uuid.UUID | None = None,
    status: str | None = None,
    code_normalized: str | None = None,
) -> tuple[list[PromoCode], str | None]:
    """A page of the readable promo codes, filtered."""
    stmt = readable_promo_codes(principal)
    if program_id is not None:
        stmt = stmt.where(PromoCode.program_id == program_id)
    if partner_id is not None:
        stmt = stmt.where(PromoCode.partner_id == partner_id)
    if status is not None:
        stmt = stmt.where(PromoCode.status == status)
    if code_normalized is not None:
        stmt = stmt.where(PromoCode.code_normalized == code_normalized)
    rows = list((await session.scalars(paginate_query(stmt, PromoCode.id, params))).all())
    return page_of(rows, params)
