from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from service.models import Integration, IntegrationDelivery

ProviderName = Literal["stripe", "shopify", "woocommerce"]
Secret = Field(
    min_length=8,
    max_length=500,
    description="the shop's webhook signing secret; write-only, never shown again",
)


class IntegrationCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    program_id: uuid.UUID
    provider: ProviderName
    signing_secret: str = Secret
    description: str | None = Field(default=None, max_length=500)
    accept_test_events: bool = Field(
        default=False,
        description="take Stripe's test-mode events and Shopify's test orders (off: ignored)",
    )


class IntegrationUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: Literal["enabled", "disabled"] | None = None
    description: str | None = Field(default=None, max_length=500)
    accept_test_events: bool | None = None


class SecretRotation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    signing_secret: str = Secret
    previous_valid_hours: int = Field(
        default=24,
        ge=0,
        le=168,
        description="hours the replaced secret still verifies, while the shop switches over",
    )


class IntegrationOut(BaseModel):
    id: uuid.UUID
    program_id: uuid.UUID
    provider: ProviderName
    status: Literal["enabled", "disabled"]
    description: str | None
    accept_test_events: bool
    webhook_url: str = Field(description="where the shop sends its webhooks")
    secret_set_at: datetime
    previous_secret_expires_at: datetime | None
    created_at: datetime
    updated_at: datetime


def integration_out(row: Integration, public_url: str) -> IntegrationOut:
    """The API shape of an integration: never its secret."""
    return IntegrationOut(
        id=row.id,
        program_id=row.program_id,
        provider=row.provider,  # type: ignore[arg-type]
        status=row.status,  # type: ignore[arg-type]
        description=row.description,
        accept_test_events=row.accept_test_events,
        webhook_url=f"{public_url.rstrip('/')}/hooks/{row.provider}/{row.id}",
        secret_set_at=row.secret_set_at,
        previous_secret_expires_at=row.previous_secret_expires_at,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


class HookAnswer(BaseModel):
    status: Literal["processed", "ignored", "failed"]
    reason: str | None
    conversion_id: uuid.UUID | None


class DeliveryOut(BaseModel):
    id: uuid.UUID
    integration_id: uuid.UUID
    event_key: str = Field(description="the provider's id of the event (the dedupe key)")
    topic: str
    status: Literal["processed", "ignored", "failed"]
    reason: str | None
    conversion_id: uuid.UUID | None
    attempts: int = Field(description="deliveries and replays of this event")
    received_at: datetime
    processed_at: datetime


def delivery_out(row: IntegrationDelivery) -> DeliveryOut:
    """The API shape of an inbox entry (its raw body stays in the inbox)."""
    return DeliveryOut(
        id=row.id,
        integration_id=row.integration_id,
        event_key=row.event_key,
        topic=row.topic,
        status=row.status,  # type: ignore[arg-type]
        reason=row.reason,
        conversion_id=row.conversion_id,
        attempts=row.attempts,
        received_at=row.received_at,
        processed_at=row.processed_at,
    )
