"""The outbox: events written in the transaction of the change they report.

`emit` is the one way in. It writes an event, and one delivery per subscriber (webhook
endpoint or postback) that wants it, in the caller's session, so that a change that rolls
back leaves no event and a change that commits always has its events.

Which subscribers want what is cached per app. The first emit of a transaction reads the
subscriptions' version under a shared advisory lock (event_subscriptions_version(), one
round trip, or a column of a statement made anyway, see `hold`); a subscriber change takes that lock exclusively and changes the version. The
cache is therefore exact for the whole transaction: no subscriber change can commit between
that read and this transaction's commit, and a subscriber that existed at commit time is
never missed. With no subscriber wanting an event, an emit costs no query of its own and
builds nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import event, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session as SyncSession

from service.events import macros
from service.events.types import ALL, CONVERSION_EVENTS
from service.kit.ids import new_id
from service.kit.time import utc_now
from service.models import Event, EventDelivery, Postback, SubscriberStatus, WebhookEndpoint

# session.info keys: the app's cache (set by its sessionmaker), and what this transaction holds.
SESSION_SUBSCRIPTIONS = "event_subscriptions"
_HELD = "event_subscriptions_held"
_PENDING = "events_pending"

Build = Callable[[], Awaitable[dict[str, Any]]]
PostbackValues = Callable[[dict[str, Any]], Awaitable[dict[str, str | None]]]


@dataclass(frozen=True, slots=True)
class Subscriber:
    """An enabled endpoint or postback and what it wants."""

    kind: Literal["endpoint", "postback"]
    id: uuid.UUID
    events: frozenset[str]
    program_id: uuid.UUID | None = None
    partner_id: uuid.UUID | None = None
    url_template: str | None = None

    def wants(self, type_: str) -> bool:
        """Whether this subscriber takes events of the type."""
        if self.kind == "postback" and type_ not in CONVERSION_EVENTS:
            return False
        return ALL in self.events or type_ in self.events


@dataclass(frozen=True)
class Subscriptions:
    """The enabled subscribers as of one version."""

    version: uuid.UUID
    subscribers: tuple[Subscriber, ...]

    def wants_type(self, type_: str) -> bool:
        """Whether anyone at all takes events of the type (before their scope is known)."""
        return any(s.wants(type_) for s in self.subscribers)

    def targets(
        self, type_: str, program_id: uuid.UUID | None, partner_id: uuid.UUID | None
    ) -> list[Subscriber]:
        """Who gets an event: endpoints of every program or of its program; the postbacks
        of its partner."""
        out = []
        for s in self.subscribers:
            if not s.wants(type_):
                continue
            if s.kind == "endpoint" and s.program_id is not None and s.program_id != program_id:
                continue
            if s.kind == "postback" and (partner_id is None or s.partner_id != partner_id):
                continue
            out.append(s)
        return out


class SubscriptionCache:
    """The app's last loaded subscriptions, reused while the version stands."""

    def __init__(self) -> None:
        self.current: Subscriptions | None = None
        self.loads = 0


async def _load(session: AsyncSession, version: uuid.UUID) -> Subscriptions:
    endpoints = (
        await session.execute(
            select(WebhookEndpoint.id, WebhookEndpoint.events, WebhookEndpoint.program_id).where(
                WebhookEndpoint.status == SubscriberStatus.enabled
            )
        )
    ).all()
    postbacks = (
        await session.execute(
            select(Postback.id, Postback.events, Postback.partner_id, Postback.url_template).where(
                Postback.status == SubscriberStatus.enabled
            )
        )
    ).all()
    subscribers = [
        Subscriber("endpoint", e.id, frozenset(e.events), program_id=e.program_id)
        for e in endpoints
    ] + [
        Subscriber(
            "postback",
            p.id,
            frozenset(p.events),
            partner_id=p.partner_id,
            url_template=p.url_template,
        )
        for p in postbacks
    ]
    return Subscriptions(version, tuple(subscribers))


# The version, read under the shared lock; a statement the transaction makes anyway may
# read it along (a column of its own) and pass it to `hold`, saving a round trip.
VERSION = func.event_subscriptions_version()
_VERSION = select(VERSION)


async def subscriptions(session: AsyncSession) -> Subscriptions:
    """The subscriptions in force for this transaction (read once, then held)."""
    held: Subscriptions | None = session.info.get(_HELD)
    if held is not None:
        return held
    version = await session.scalar(_VERSION)
    assert version is not None
    return await hold(session, version)


async def hold(session: AsyncSession, version: uuid.UUID) -> Subscriptions:
    """Hold, for the rest of the transaction, the subscriptions of a version that a statement
    of this transaction read with VERSION (which took the shared lock until it ends)."""
    held: Subscriptions | None = session.info.get(_HELD)
    if held is not None:
        return held
    cache: SubscriptionCache | None = session.info.get(SESSION_SUBSCRIPTIONS)
    current = cache.current if cache is not None else None
    if current is None or current.version != version:
        current = await _load(session, version)
        if cache is not None:
            cache.current = current
            cache.loads += 1
    session.info[_HELD] = current
    return current


async def subscribers_changed(session: AsyncSession) -> None:
    """Call in every transaction that adds, changes or disables a subscriber: waits for the
    transactions emitting now, and makes every app reload its subscriptions."""
    await session.execute(select(func.bump_event_subscriptions()))


@dataclass
class _Pending:
    """The rows a transaction's emits wrote, inserted together before it commits."""

    events: list[dict[str, Any]] = field(default_factory=list)
    deliveries: list[dict[str, Any]] = field(default_factory=list)


def write_pending_sync(session: SyncSession) -> None:
    """Insert what this transaction emitted: one multi-row INSERT of events, one of
    deliveries. Runs in the commit (before_commit), so a rollback writes nothing."""
    pending: _Pending | None = session.info.pop(_PENDING, None)
    if pending is None or not pending.events:
        return
    session.execute(insert(Event), pending.events)
    session.execute(insert(EventDelivery), pending.deliveries)


async def write_pending(session: AsyncSession) -> None:
    """Insert what was emitted so far now, inside the transaction (before commit does it
    anyway); for code that reads its own events back before committing."""
    await session.run_sync(write_pending_sync)


@event.listens_for(SyncSession, "before_commit")
def _before_commit(session: SyncSession) -> None:
    write_pending_sync(session)


@event.listens_for(SyncSession, "after_commit")
@event.listens_for(SyncSession, "after_rollback")
def _release(session: SyncSession) -> None:
    session.info.pop(_HELD, None)
    session.info.pop(_PENDING, None)


async def emit(
    session: AsyncSession,
    type_: str,
    *,
    program_id: uuid.UUID | None,
    partner_id: uuid.UUID | None,
    build: Build,
    postback_values: PostbackValues | None = None,
) -> uuid.UUID | None:
    """Write an event and its deliveries in the caller's transaction (inserted with the
    transaction's other events when it commits); its id, or None when no subscriber wants it
    (then `build` is never called)."""
    targets = (await subscriptions(session)).targets(type_, program_id, partner_id)
    if not targets:
        return None
    data = await build()
    event_id = new_id()
    now = utc_now()
    values: dict[str, str | None] = {"event": type_}
    if postback_values is not None and any(t.kind == "postback" for t in targets):
        values.update(await postback_values(data))
    pending: _Pending = session.info.setdefault(_PENDING, _Pending())
    pending.events.append(
        {
            "id": event_id,
            "type": type_,
            "program_id": program_id,
            "partner_id": partner_id,
            "data": data,
            "created_at": now,
        }
    )
    for target in targets:
        url = None
        if target.kind == "postback":
            assert target.url_template is not None
            url = macros.render(target.url_template, values)
        pending.deliveries.append(
            {
                "id": new_id(),
                "event_id": event_id,
                "endpoint_id": target.id if target.kind == "endpoint" else None,
                "postback_id": target.id if target.kind == "postback" else None,
                "url": url,
                "status": "pending",
                "attempts": 0,
                "next_attempt_at": now,
            }
        )
    return event_id
