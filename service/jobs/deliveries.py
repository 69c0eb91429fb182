"""The delivery job: claim due deliveries under a lease, send them, record what came back.

Claiming is one short transaction (FOR UPDATE SKIP LOCKED, then a lease written): any
number of workers take disjoint deliveries, and none holds a transaction open across HTTP.
A worker that dies leaves its leases to run out; the deliveries are then claimed again.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import and_, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from service.config import retry_delays
from service.events import delivery, metrics, outbox, signing
from service.integrations import sealing
from service.kit.ids import new_id
from service.kit.time import rfc3339, utc_now
from service.models import (
    Event,
    EventDelivery,
    EventDeliveryAttempt,
    Postback,
    SubscriberStatus,
    WebhookEndpoint,
)

if TYPE_CHECKING:
    from service.jobs.worker import Runtime

DUE = ("pending", "failed")
UNREADABLE_SECRET = (
    "not sent: the signing secret cannot be unsealed (was AFFILIATE_HASH_KEY changed?); "
    "rotate the secret"
)
# A subscriber whose deliveries have done nothing but fail this long is disabled.
DISABLE_AFTER = timedelta(days=5)


@dataclass(frozen=True)
class Claimed:
    """A delivery this worker holds, with what it needs to send it."""

    id: uuid.UUID
    kind: str  # "endpoint" | "postback"
    target_id: uuid.UUID
    method: str
    url: str
    body: str
    event_id: uuid.UUID
    secrets: tuple[str, ...]


def _enabled_target() -> object:
    return or_(
        EventDelivery.endpoint_id.in_(
            select(WebhookEndpoint.id).where(WebhookEndpoint.status == SubscriberStatus.enabled)
        ),
        EventDelivery.postback_id.in_(
            select(Postback.id).where(Postback.status == SubscriberStatus.enabled)
        ),
    )


def _secrets(key: bytes, row: WebhookEndpoint | Postback, now: datetime) -> tuple[str, ...]:
    try:
        current = sealing.unseal(key, row.id, row.secret_sealed)
    except sealing.SecretUnreadable:
        # Recorded as a failed attempt (attempt() sees no secret): never sent unsigned.
        return ()
    if (
        row.previous_secret_sealed is not None
        and row.previous_secret_expires_at is not None
        and row.previous_secret_expires_at > now
    ):
        try:
            return current, sealing.unseal(key, row.id, row.previous_secret_sealed)
        except sealing.SecretUnreadable:
            return (current,)
    return (current,)


def event_body(event: Event) -> str:
    """The JSON body of a webhook: type, timestamp, data (the same bytes on every retry)."""
    return json.dumps(
        {"type": event.type, "timestamp": rfc3339(event.created_at), "data": event.data},
        separators=(",", ":"),
        ensure_ascii=False,
    )


async def claim(rt: Runtime) -> list[Claimed]:
    """Lease up to a batch of due deliveries of enabled subscribers to this worker."""
    now = utc_now()
    async with rt.sessionmaker() as session, session.begin():
        due = (
            select(EventDelivery.id)
            .where(
                EventDelivery.status.in_(DUE),
                EventDelivery.next_attempt_at <= now,
                or_(EventDelivery.locked_until.is_(None), EventDelivery.locked_until < now),
                _enabled_target(),  # type: ignore[arg-type]
            )
            .order_by(EventDelivery.next_attempt_at)
            .limit(rt.settings.worker_batch)
            .with_for_update(skip_locked=True)
        )
        leased = (
            await session.execute(
                update(EventDelivery)
                .where(EventDelivery.id.in_(due.scalar_subquery()))
                .values(
                    locked_until=now + timedelta(seconds=rt.settings.worker_lease_seconds),
                    locked_by=rt.worker_id,
                )
                .returning(
                    EventDelivery.id,
                    EventDelivery.event_id,
                    EventDelivery.endpoint_id,
                    EventDelivery.postback_id,
                    EventDelivery.url,
                )
            )
        ).all()
        if not leased:
            return []
        events = {
            e.id: e
            for e in await session.scalars(
                select(Event).where(Event.id.in_({r.event_id for r in leased}))
            )
        }
        endpoints = {
            e.id: e
            for e in await session.scalars(
                select(WebhookEndpoint).where(
                    WebhookEndpoint.id.in_({r.endpoint_id for r in leased if r.endpoint_id})
                )
            )
        }
        postbacks = {
            p.id: p
            for p in await session.scalars(
                select(Postback).where(
                    Postback.id.in_({r.postback_id for r in leased if r.postback_id})
                )
            )
        }
        key = await sealing.sealing_key(session, rt.settings)
    claimed = []
    for r in leased:
        event = events[r.event_id]
        if r.endpoint_id is not None:
            endpoint = endpoints[r.endpoint_id]
            claimed.append(
                Claimed(
                    r.id,
                    "endpoint",
                    endpoint.id,
                    "POST",
                    endpoint.url,
                    event_body(event),
                    event.id,
                    _secrets(key, endpoint, now),
                )
            )
        else:
            postback = postbacks[r.postback_id]
            claimed.append(
                Claimed(
                    r.id,
                    "postback",
                    postback.id,
                    "GET",
                    r.url or "",
                    "",
                    event.id,
                    _secrets(key, postback, now),
                )
            )
    return claimed


async def release(rt: Runtime, ids: list[uuid.UUID]) -> None:
    """Give leases back (shutdown): the deliveries are due again at once, for any worker."""
    if not ids:
        return
    async with rt.sessionmaker() as session, session.begin():
        await session.execute(
            update(EventDelivery)
            .where(EventDelivery.id.in_(ids), EventDelivery.locked_by == rt.worker_id)
            .values(locked_until=None, locked_by=None)
        )


async def _track_failures(session: AsyncSession, c: Claimed, ok: bool, now: datetime) -> None:
    model = WebhookEndpoint if c.kind == "endpoint" else Postback
    if ok:
        await session.execute(
            update(model)
            .where(model.id == c.target_id, model.failing_since.is_not(None))
            .values(failing_since=None)
        )
        return
    since = await session.scalar(
        update(model)
        .where(model.id == c.target_id)
        .values(failing_since=func.coalesce(model.failing_since, now))
        .returning(model.failing_since)
    )
    if since is not None and now - since >= DISABLE_AFTER:
        await outbox.subscribers_changed(session)
        await session.execute(
            update(model)
            .where(model.id == c.target_id, model.status == SubscriberStatus.enabled)
            .values(
                status=SubscriberStatus.disabled,
                disabled_reason=(
                    f"every delivery failed for {DISABLE_AFTER.days} days "
                    f"(since {rfc3339(since)}); enable it again once it answers"
                ),
            )
        )


async def record(rt: Runtime, c: Claimed, outcome: delivery.Outcome, at: datetime) -> None:
    """Store an attempt and the delivery's next state, if this worker still holds it."""
    delays = retry_delays(rt.settings.webhook_retry_schedule)
    async with rt.sessionmaker() as session, session.begin():
        row = await session.scalar(
            select(EventDelivery)
            .where(EventDelivery.id == c.id, EventDelivery.locked_by == rt.worker_id)
            .with_for_update()
        )
        if row is None:  # the lease ran out and another worker took it
            return
        now = utc_now()
        attempts = row.attempts + 1
        if outcome.ok:
            status, next_at = "succeeded", None
        elif attempts <= len(delays):
            status, next_at = "failed", now + timedelta(seconds=delays[attempts - 1])
        else:
            status, next_at = "dead", None
        await session.execute(
            update(EventDelivery)
            .where(EventDelivery.id == c.id)
            .values(
                status=status,
                attempts=attempts,
                next_attempt_at=next_at,
                locked_until=None,
                locked_by=None,
                last_attempt_at=at,
                last_response_status=outcome.response_status,
                last_error=outcome.error,
            )
        )
        await session.execute(
            insert(EventDeliveryAttempt).values(
                id=new_id(),
                delivery_id=c.id,
                attempted_at=at,
                response_status=outcome.response_status,
                latency_ms=round(outcome.seconds * 1000),
                error=outcome.error,
            )
        )
        await _track_failures(session, c, outcome.ok, now)
    metrics.DELIVERIES.labels(c.kind, status).inc()


async def attempt(rt: Runtime, c: Claimed) -> None:
    """Sign and send one claimed delivery, then record it."""
    try:
        at = utc_now()
        if not c.secrets:
            unsealed = delivery.Outcome(False, None, 0.0, UNREADABLE_SECRET)
            await record(rt, c, unsealed, at)
            return
        headers = signing.headers(c.secrets, str(c.event_id), at, c.body)
        outcome = await delivery.send(
            rt.http,
            c.method,
            c.url,
            body=c.body.encode() if c.method == "POST" else None,
            headers=headers,
            allow_private=rt.settings.webhook_allow_private,
        )
        metrics.DELIVERY_SECONDS.labels(c.kind).observe(outcome.seconds)
        await record(rt, c, outcome, at)
    except asyncio.CancelledError:
        # Shutting down mid-attempt: the lease goes back rather than running out.
        await release(rt, [c.id])
        raise


async def measure_lag(rt: Runtime) -> float:
    """Seconds the oldest due delivery has waited (0 when none), into the gauge."""
    now = utc_now()
    async with rt.sessionmaker() as session:
        oldest = await session.scalar(
            select(func.min(EventDelivery.next_attempt_at)).where(
                EventDelivery.status.in_(DUE),
                EventDelivery.next_attempt_at <= now,
                and_(_enabled_target()),  # type: ignore[arg-type]
            )
        )
    lag = max(0.0, (now - oldest).total_seconds()) if oldest is not None else 0.0
    metrics.OUTBOX_LAG.set(lag)
    return lag


async def deliver_due(rt: Runtime) -> int:
    """One round: claim, send all at once, record; how many were attempted."""
    claimed = await claim(rt)
    if claimed:
        await asyncio.gather(*(attempt(rt, c) for c in claimed))
    await measure_lag(rt)
    return len(claimed)
