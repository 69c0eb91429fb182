"""Webhook endpoints (admin): their targets, secrets and deliveries; what postbacks share."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from service import audit
from service.auth.keys import Principal
from service.config import Settings
from service.errors import Conflict, NotFound, field_error
from service.events import addresses, outbox, repository, signing
from service.events.schemas import (
    DeliveryAttemptOut,
    EndpointCreate,
    EndpointCreated,
    EndpointOut,
    EndpointUpdate,
    EventDeliveryOut,
    SecretRotated,
)
from service.integrations import sealing
from service.kit.ids import new_id
from service.kit.pagination import PageParams
from service.kit.time import utc_now
from service.models import (
    EventDelivery,
    EventDeliveryAttempt,
    Postback,
    Program,
    SubscriberStatus,
    WebhookEndpoint,
)

# How long a replaced secret keeps signing beside the new one.
ROTATION_OVERLAP = timedelta(hours=24)


async def check_target(url: str, field: str, settings: Settings) -> None:
    """422 naming the field when the URL may not be sent to (resolved now)."""
    try:
        await addresses.check(url, allow_private=settings.webhook_allow_private)
    except addresses.TargetRefused as exc:
        raise field_error(field, str(exc)) from exc


def endpoint_out(row: WebhookEndpoint) -> EndpointOut:
    """The API shape of an endpoint: never its secret."""
    return EndpointOut(
        id=row.id,
        url=row.url,
        events=list(row.events),
        program_id=row.program_id,
        description=row.description,
        status=row.status,  # type: ignore[arg-type]
        disabled_reason=row.disabled_reason,
        secret_set_at=row.secret_set_at,
        previous_secret_expires_at=row.previous_secret_expires_at,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


async def new_sealed_secret(
    session: AsyncSession, row_id: uuid.UUID, settings: Settings
) -> tuple[str, bytes]:
    """A new signing secret and its seal, bound to the row."""
    secret = signing.new_secret()
    key = await sealing.sealing_key(session, settings)
    return secret, sealing.seal(key, row_id, secret)


async def rotate(
    session: AsyncSession, row: WebhookEndpoint | Postback, settings: Settings
) -> SecretRotated:
    """A new secret; the current one signs too for ROTATION_OVERLAP."""
    now = utc_now()
    secret, sealed = await new_sealed_secret(session, row.id, settings)
    row.previous_secret_sealed = row.secret_sealed
    row.previous_secret_expires_at = now + ROTATION_OVERLAP
    row.secret_sealed = sealed
    row.secret_set_at = now
    await session.flush()
    await session.refresh(row)
    return SecretRotated(
        secret=secret, secret_set_at=now, previous_secret_expires_at=now + ROTATION_OVERLAP
    )


def set_status(row: WebhookEndpoint | Postback, status: str) -> None:
    """Enable (a fresh start: failures forgotten) or disable by hand."""
    if status == row.status:
        return
    row.status = status
    if status == SubscriberStatus.enabled:
        row.disabled_reason = None
        row.failing_since = None
    else:
        row.disabled_reason = "disabled by hand"


def refuse_nulls(body: BaseModel, names: tuple[str, ...]) -> None:
    """A PATCH may leave a field out, never set one of these to null."""
    for name in names:
        if name in body.model_fields_set and getattr(body, name) is None:
            raise field_error(name, "must not be null")


def apply_update(
    row: WebhookEndpoint | Postback, body: BaseModel, names: tuple[str, ...]
) -> dict[str, Any]:
    """Set what a PATCH names (and its status) on a target; the changes, for the audit."""
    changes: dict[str, Any] = {}
    for name in names:
        if name in body.model_fields_set and getattr(row, name) != getattr(body, name):
            changes[name] = {"from": getattr(row, name), "to": getattr(body, name)}
            setattr(row, name, getattr(body, name))
    status = getattr(body, "status", None)
    if status is not None and status != row.status:
        changes["status"] = {"from": row.status, "to": status}
        set_status(row, status)
    return changes


async def create_endpoint(
    session: AsyncSession, body: EndpointCreate, by: Principal, settings: Settings
) -> EndpointCreated:
    """A new endpoint, enabled; its secret is in this answer only."""
    if body.program_id is not None:
        program = await session.get(Program, body.program_id)
        if program is None or not by.sees_program(program.id):
            raise field_error("program_id", "no such program")
    await check_target(body.url, "url", settings)
    row_id = new_id()
    secret, sealed = await new_sealed_secret(session, row_id, settings)
    await outbox.subscribers_changed(session)
    row = WebhookEndpoint(
        id=row_id,
        url=body.url,
        events=body.events,
        program_id=body.program_id,
        description=body.description,
        status=SubscriberStatus.enabled,
        secret_sealed=sealed,
        secret_set_at=utc_now(),
    )
    session.add(row)
    await session.flush()
    await session.refresh(row)
    audit.record(
        session,
        by,
        "webhook_endpoint.created",
        "webhook_endpoint",
        row.id,
        {"url": body.url, "events": body.events, "program_id": body.program_id},
    )
    return EndpointCreated(**endpoint_out(row).model_dump(), secret=secret)


async def get_endpoint(
    session: AsyncSession, endpoint_id: uuid.UUID, by: Principal, *, lock: bool = False
) -> WebhookEndpoint:
    """An endpoint the caller may see, or NotFound."""
    row = await repository.endpoint(session, by, endpoint_id, lock=lock)
    if row is None:
        raise NotFound(f"webhook endpoint {endpoint_id} does not exist")
    return row


async def update_endpoint(
    session: AsyncSession,
    endpoint_id: uuid.UUID,
    body: EndpointUpdate,
    by: Principal,
    settings: Settings,
) -> WebhookEndpoint:
    """Change the url, events, status or description of an endpoint."""
    refuse_nulls(body, ("url", "events", "status"))
    if body.url is not None:
        await check_target(body.url, "url", settings)
    await outbox.subscribers_changed(session)
    row = await get_endpoint(session, endpoint_id, by, lock=True)
    changes = apply_update(row, body, ("url", "events", "description"))
    await session.flush()
    await session.refresh(row)
    if changes:
        audit.record(session, by, "webhook_endpoint.updated", "webhook_endpoint", row.id, changes)
    return row


async def rotate_endpoint_secret(
    session: AsyncSession, endpoint_id: uuid.UUID, by: Principal, settings: Settings
) -> SecretRotated:
    """A new signing secret for the endpoint; the old one signs too for 24 h."""
    row = await get_endpoint(session, endpoint_id, by, lock=True)
    out = await rotate(session, row, settings)
    audit.record(
        session,
        by,
        "webhook_endpoint.secret_rotated",
        "webhook_endpoint",
        row.id,
        {"previous_valid_until": out.previous_secret_expires_at},
    )
    return out


def delivery_out(
    row: EventDelivery, event_type: str, attempts: list[EventDeliveryAttempt]
) -> EventDeliveryOut:
    """The API shape of a delivery with its attempts."""
    return EventDeliveryOut(
        id=row.id,
        event_id=row.event_id,
        event_type=event_type,
        status=row.status,  # type: ignore[arg-type]
        url=row.url,
        attempt_count=row.attempts,
        next_attempt_at=row.next_attempt_at if row.status in ("pending", "failed") else None,
        last_attempt_at=row.last_attempt_at,
        last_response_status=row.last_response_status,
        last_error=row.last_error,
        created_at=row.created_at,
        attempts=[
            DeliveryAttemptOut(
                attempted_at=a.attempted_at,
                response_status=a.response_status,
                latency_ms=a.latency_ms,
                error=a.error,
            )
            for a in attempts
        ],
    )


async def deliveries_page(
    session: AsyncSession,
    params: PageParams,
    status: str | None,
    *,
    endpoint_id: uuid.UUID | None = None,
    postback_id: uuid.UUID | None = None,
) -> tuple[list[EventDeliveryOut], str | None]:
    """A page of one target's deliveries with their attempts."""
    rows, cursor = await repository.deliveries(
        session, params, status, endpoint_id=endpoint_id, postback_id=postback_id
    )
    attempts = await repository.attempts_of(session, [d.id for d, _ in rows])
    return [delivery_out(d, t, attempts[d.id]) for d, t in rows], cursor


async def retry_delivery(
    session: AsyncSession,
    delivery_id: uuid.UUID,
    by: Principal,
    *,
    endpoint_id: uuid.UUID | None = None,
    postback_id: uuid.UUID | None = None,
) -> EventDeliveryOut:
    """Send a delivery again now, whatever its state (a dead one included)."""
    found = await repository.delivery(
        session, delivery_id, endpoint_id=endpoint_id, postback_id=postback_id, lock=True
    )
    if found is None:
        raise NotFound(f"delivery {delivery_id} does not exist")
    row, event_type = found
    now = utc_now()
    if row.locked_until is not None and row.locked_until > now:
        raise Conflict("the delivery is being attempted right now")
    before = row.status
    row.status = "pending"
    row.next_attempt_at = now
    await session.flush()
    await session.refresh(row)
    audit.record(
        session,
        by,
        "event_delivery.retried",
        "event_delivery",
        row.id,
        {"status": {"from": before, "to": row.status}},
    )
    attempts = await repository.attempts_of(session, [row.id])
    return delivery_out(row, event_type, attempts[row.id])
