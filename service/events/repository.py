"""Every query of webhook endpoints, postbacks and their deliveries."""

from __future__ import annotations

import uuid
from collections import defaultdict
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from service.auth.keys import Principal
from service.auth.scope import in_programs, of_partner
from service.kit.pagination import PageParams, encode_cursor, page_of, paginate_query
from service.models import Event, EventDelivery, EventDeliveryAttempt, Postback, WebhookEndpoint


def readable_endpoints(principal: Principal) -> Select[WebhookEndpoint]:
    """The webhook endpoints a key may read (admins: all)."""
    return select(WebhookEndpoint).where(in_programs(principal, WebhookEndpoint.program_id))


def readable_postbacks(principal: Principal) -> Select[Postback]:
    """The postbacks a key may read: a partner's key its own partner's only."""
    return select(Postback).where(of_partner(principal, Postback.partner_id))


async def endpoint(
    session: AsyncSession, principal: Principal, endpoint_id: uuid.UUID, *, lock: bool = False
) -> WebhookEndpoint | None:
    """A readable endpoint by id, or None."""
    stmt = readable_endpoints(principal).where(WebhookEndpoint.id == endpoint_id)
    return await session.scalar(stmt.with_for_update() if lock else stmt)


async def endpoints(
    session: AsyncSession, principal: Principal, params: PageParams, program_id: uuid.UUID | None
) -> tuple[list[WebhookEndpoint], str | None]:
    """A page of the readable endpoints."""
    stmt = readable_endpoints(principal)
    if program_id is not None:
        stmt = stmt.where(WebhookEndpoint.program_id == program_id)
    rows = list((await session.scalars(paginate_query(stmt, WebhookEndpoint.id, params))).all())
    return page_of(rows, params)


async def postback(
    session: AsyncSession,
    principal: Principal,
    partner_id: uuid.UUID,
    postback_id: uuid.UUID,
    *,
    lock: bool = False,
) -> Postback | None:
    """A readable postback of the partner, or None."""
    stmt = readable_postbacks(principal).where(
        Postback.id == postback_id, Postback.partner_id == partner_id
    )
    return await session.scalar(stmt.with_for_update() if lock else stmt)


async def postbacks(
    session: AsyncSession, principal: Principal, partner_id: uuid.UUID, params: PageParams
) -> tuple[list[Postback], str | None]:
    """A page of the partner's readable postbacks."""
    stmt = readable_postbacks(principal).where(Postback.partner_id == partner_id)
    rows = list((await session.scalars(paginate_query(stmt, Postback.id, params))).all())
    return page_of(rows, params)


def _of_target(endpoint_id: uuid.UUID | None, postback_id: uuid.UUID | None) -> Any:
    stmt: Any = select(EventDelivery, Event.type).join(Event, Event.id == EventDelivery.event_id)
    if endpoint_id is not None:
        return stmt.where(EventDelivery.endpoint_id == endpoint_id)
    return stmt.where(EventDelivery.postback_id == postback_id)


async def deliveries(
    session: AsyncSession,
    params: PageParams,
    status: str | None,
    *,
    endpoint_id: uuid.UUID | None = None,
    postback_id: uuid.UUID | None = None,
) -> tuple[list[tuple[EventDelivery, str]], str | None]:
    """A page of one target's deliveries (with their event types), oldest first."""
    stmt = _of_target(endpoint_id, postback_id)
    if status is not None:
        stmt = stmt.where(EventDelivery.status == status)
    rows = [
        (d, t)
        for d, t in (await session.execute(paginate_query(stmt, EventDelivery.id, params))).all()
    ]
    if len(rows) > params.limit:
        rows = rows[: params.limit]
        return rows, encode_cursor(rows[-1][0].id)
    return rows, None


async def delivery(
    session: AsyncSession,
    delivery_id: uuid.UUID,
    *,
    endpoint_id: uuid.UUID | None = None,
    postback_id: uuid.UUID | None = None,
    lock: bool = False,
) -> tuple[EventDelivery, str] | None:
    """One delivery of the target, with its event type."""
    stmt = _of_target(endpoint_id, postback_id).where(EventDelivery.id == delivery_id)
    if lock:
        stmt = stmt.with_for_update(of=EventDelivery)
    row = (await session.execute(stmt)).first()
    if row is None:
        return None
    found, event_type = row
    return found, event_type


async def attempts_of(
    session: AsyncSession, delivery_ids: list[uuid.UUID]
) -> dict[uuid.UUID, list[EventDeliveryAttempt]]:
    """The attempts of deliveries, oldest first, in one query."""
    found: dict[uuid.UUID, list[EventDeliveryAttempt]] = defaultdict(list)
    if not delivery_ids:
        return found
    rows = await session.scalars(
        select(EventDeliveryAttempt)
        .where(EventDeliveryAttempt.delivery_id.in_(delivery_ids))
        .order_by(EventDeliveryAttempt.id)
    )
    for row in rows:
        found[row.delivery_id].append(row)
    return found
