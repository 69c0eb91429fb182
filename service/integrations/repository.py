"""Every query of integrations and their inbox."""

from __future__ import annotations

import uuid

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from service.auth.keys import Principal
from service.auth.scope import in_programs
from service.kit.pagination import PageParams, page_of, paginate_query
from service.models import Conversion, Integration, IntegrationDelivery


def readable(principal: Principal) -> Select[Integration]:
    """The integrations a key may read (admins: all)."""
    return select(Integration).where(in_programs(principal, Integration.program_id))


async def get(
    session: AsyncSession, principal: Principal, integration_id: uuid.UUID
) -> Integration | None:
    """A readable integration by id, or None."""
    return await session.scalar(readable(principal).where(Integration.id == integration_id))


async def for_hook(
    session: AsyncSession, integration_id: uuid.UUID, provider: str
) -> Integration | None:
    """The integration a webhook URL names, for its provider only."""
    return await session.scalar(
        select(Integration).where(
            Integration.id == integration_id, Integration.provider == provider
        )
    )


async def page(
    session: AsyncSession,
    principal: Principal,
    params: PageParams,
    *,
    program_id: uuid.UUID | None,
    provider: str | None,
) -> tuple[list[Integration], str | None]:
    """A page of the readable integrations."""
    stmt = readable(principal)
    if program_id is not None:
        stmt = stmt.where(Integration.program_id == program_id)
    if provider is not None:
        stmt = stmt.where(Integration.provider == provider)
    rows = list((await session.scalars(paginate_query(stmt, Integration.id, params))).all())
    return page_of(rows, params)


async def delivery(
    session: AsyncSession, integration_id: uuid.UUID, event_key: str, *, lock: bool = False
) -> IntegrationDelivery | None:
    """The inbox entry of one provider event, if it came before."""
    stmt = select(IntegrationDelivery).where(
        IntegrationDelivery.integration_id == integration_id,
        IntegrationDelivery.event_key == event_key,
    )
    return await session.scalar(stmt.with_for_update() if lock else stmt)


async def delivery_by_id(
    session: AsyncSession, integration_id: uuid.UUID, delivery_id: uuid.UUID
) -> IntegrationDelivery | None:
    """An inbox entry of the integration, locked for its replay."""
    return await session.scalar(
        select(IntegrationDelivery)
        .where(
            IntegrationDelivery.integration_id == integration_id,
            IntegrationDelivery.id == delivery_id,
        )
        .with_for_update()
    )


async def deliveries(
    session: AsyncSession, integration_id: uuid.UUID, params: PageParams, status: str | None
) -> tuple[list[IntegrationDelivery], str | None]:
    """A page of the integration's inbox, oldest first."""
    stmt = select(IntegrationDelivery).where(IntegrationDelivery.integration_id == integration_id)
    if status is not None:
        stmt = stmt.where(IntegrationDelivery.status == status)
    rows = list((await session.scalars(paginate_query(stmt, IntegrationDelivery.id, params))).all())
    return page_of(rows, params)


async def sale(
    session: AsyncSession,
    program_id: uuid.UUID,
    order_ids: tuple[str, ...],
    metadata_match: tuple[str, str] | None = None,
    *,
    lock: bool = False,
) -> Conversion | None:
    """The program's sale under one of the order ids (or, failing them, whose metadata holds
    the given key and value)."""
    base = select(Conversion).where(Conversion.program_id == program_id, Conversion.type == "sale")
    for order_id in order_ids:
        stmt = base.where(Conversion.order_id == order_id)
        found = await session.scalar(stmt.with_for_update() if lock else stmt)
        if found is not None:
            return found
    if metadata_match is not None:
        key, value = metadata_match
        stmt = (
            base.where(Conversion.metadata_[key].astext == value)
            .order_by(Conversion.created_at)
            .limit(1)
        )
        return await session.scalar(stmt.with_for_update() if lock else stmt)
    return None
