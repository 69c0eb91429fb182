"""Shops in: the integrations a merchant connects, and the inbox of what each one sent."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from service.models.base import Base, IdMixin, TimestampMixin, enum_check


class Provider(StrEnum):
    stripe = "stripe"
    shopify = "shopify"
    woocommerce = "woocommerce"


class IntegrationStatus(StrEnum):
    enabled = "enabled"
    disabled = "disabled"


class DeliveryStatus(StrEnum):
    processed = "processed"
    ignored = "ignored"
    failed = "failed"


class Integration(IdMixin, TimestampMixin, Base):
    """A shop whose own webhooks bring its orders and refunds into one program."""

    __tablename__ = "integrations"
    __table_args__ = (
        enum_check("provider", Provider),
        enum_check("status", IntegrationStatus),
    )

    program_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("programs.id"), nullable=False, index=True
    )
    provider: Mapped[str] = mapped_column(String(16), nullable=False)
    status: Mapped[str] = mapped_column(
        String(16), nullable=False, default=IntegrationStatus.enabled
    )
    description: Mapped[str | None] = mapped_column(String(500), nullable=True)
    # Stripe's livemode=false events and Shopify's test orders are ignored unless this is set.
    accept_test_events: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    # The signing secret must be readable to verify an HMAC, so it is sealed (AES-GCM), not
    # hashed; see service/integrations/sealing.py for where the sealing key lives.
    secret_sealed: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    secret_set_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    # After a rotation the old secret still verifies until then (the shop may lag behind).
    previous_secret_sealed: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True), nullable=True
    )
    # The merchant key the integration acts as: the conversion path audits it like any key.
    # Its plain key was never kept, so it authenticates nothing.
    api_key_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("api_keys.id"), nullable=False, index=True
    )


class IntegrationDelivery(IdMixin, Base):
    """One verified event from a shop, kept with its raw body so that it can be replayed."""

    __tablename__ = "integration_deliveries"
    __table_args__ = (
        enum_check("status", DeliveryStatus),
        UniqueConstraint("integration_id", "event_key"),
        Index("ix_integration_deliveries_integration_status", "integration_id", "status"),
    )

    integration_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("integrations.id"), nullable=False, index=True
    )
    # The provider's id of the event (Stripe event id, Shopify event or webhook id,
    # WooCommerce delivery id), or sha256 of the body where it gives none.
    event_key: Mapped[str] = mapped_column(String(300), nullable=False)
    topic: Mapped[str] = mapped_column(String(200), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    conversion_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("conversions.id"), nullable=True, index=True
    )
    body: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    # The provider headers the mapping reads (topic, ids), for replays.
    headers: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, default=dict)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    received_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )
    processed_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )
