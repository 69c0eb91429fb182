"""Events out: webhook endpoints, partner postbacks, the outbox of events and their deliveries."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Text,
    func,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from service.models.base import Base, IdMixin, TimestampMixin, enum_check


class SubscriberStatus(StrEnum):
    enabled = "enabled"
    disabled = "disabled"


class EventDeliveryStatus(StrEnum):
    pending = "pending"
    succeeded = "succeeded"
    failed = "failed"  # will be retried
    dead = "dead"  # retries used up; retryable by hand


class _Subscriber(IdMixin, TimestampMixin):
    """What webhook endpoints and postbacks share: events wanted, state, a sealed secret."""

    events: Mapped[list[str]] = mapped_column(ARRAY(Text), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="enabled")
    disabled_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    # The first failure since the last success: 5 days of nothing but failures disable it.
    failing_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # Sealed like the shops' secrets (integrations/sealing.py), bound to this row's id.
    secret_sealed: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    secret_set_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    # After a rotation the old secret signs too, until then.
    previous_secret_sealed: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True), nullable=True
    )


class WebhookEndpoint(_Subscriber, Base):
    """A receiver of signed events (admin): every program's, or one program's."""

    __tablename__ = "webhook_endpoints"
    __table_args__ = (enum_check("status", SubscriberStatus),)

    url: Mapped[str] = mapped_column(Text, nullable=False)
    program_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("programs.id"), nullable=True, index=True
    )
    description: Mapped[str | None] = mapped_column(String(500), nullable=True)


class Postback(_Subscriber, Base):
    """A partner's tracker URL with macros, fetched with GET for its conversion events."""

    __tablename__ = "postbacks"
    __table_args__ = (enum_check("status", SubscriberStatus),)

    partner_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("partners.id"), nullable=False, index=True
    )
    url_template: Mapped[str] = mapped_column(Text, nullable=False)


class Event(IdMixin, Base):
    """One thing that happened, written in the transaction of the change (the outbox).

    Written only when a subscriber wanted it at commit time; its id is the `webhook-id`.
    """

    __tablename__ = "events"

    type: Mapped[str] = mapped_column(String(64), nullable=False)
    program_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True), nullable=True)
    partner_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True), nullable=True)
    data: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )


class EventDelivery(IdMixin, TimestampMixin, Base):
    """One event to one endpoint or postback, with its retry state and its lease."""

    __tablename__ = "event_deliveries"
    __table_args__ = (
        enum_check("status", EventDeliveryStatus),
        CheckConstraint("(endpoint_id IS NULL) <> (postback_id IS NULL)", name="one_target"),
        # What the worker claims: due, not leased.
        Index(
            "ix_event_deliveries_due",
            "next_attempt_at",
            postgresql_where="status IN ('pending', 'failed')",
        ),
    )

    event_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("events.id"), nullable=False, index=True
    )
    endpoint_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("webhook_endpoints.id"), nullable=True, index=True
    )
    postback_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("postbacks.id"), nullable=True, index=True
    )
    # A postback's URL, its macros filled in when the event was written.
    url: Mapped[str | None] = mapped_column(Text, nullable=True)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="pending")
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # The lease of the worker delivering it; past it, another worker takes the delivery.
    locked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    locked_by: Mapped[str | None] = mapped_column(String(100), nullable=True)
    last_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    last_response_status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)


class EventDeliveryAttempt(IdMixin, Base):
    """One try of a delivery: what came back and how long it took."""

    __tablename__ = "event_delivery_attempts"

    delivery_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("event_deliveries.id"), nullable=False, index=True
    )
    attempted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    response_status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    latency_ms: Mapped[int] = mapped_column(Integer, nullable=False)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)


class EventSubscriptions(Base):
    """One row whose version changes with every change of endpoints and postbacks.

    An emitting transaction reads it FOR SHARE: its cached subscriptions are checked against
    the version, and no subscriber change can commit between that read and its commit.
    """

    __tablename__ = "event_subscriptions"
    __table_args__ = (CheckConstraint("id = 1", name="one_row"),)

    id: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    version: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
