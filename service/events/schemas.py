"""Webhook endpoints, postbacks and their deliveries, as the API reads and writes them."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from service.events.types import ALL, CONVERSION_EVENTS, EVENT_TYPES

Status = Literal["enabled", "disabled"]
DeliveryState = Literal["pending", "succeeded", "failed", "dead"]


def _known(events: list[str], allowed: frozenset[str]) -> list[str]:
    unknown = [e for e in events if e != ALL and e not in allowed]
    if unknown:
        raise ValueError(f"unknown event types: {', '.join(unknown)}")
    return sorted(set(events))


class EndpointCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(min_length=1, max_length=2000)
    events: list[str] = Field(min_length=1, max_length=50, description='event types, or ["*"]')
    program_id: uuid.UUID | None = Field(
        default=None, description="only this program's events (null: every program's)"
    )
    description: str | None = Field(default=None, max_length=500)

    @field_validator("events")
    @classmethod
    def _events(cls, value: list[str]) -> list[str]:
        return _known(value, EVENT_TYPES)


class EndpointUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(default=None, min_length=1, max_length=2000)
    events: list[str] | None = Field(default=None, min_length=1, max_length=50)
    status: Status | None = None
    description: str | None = Field(default=None, max_length=500)

    @field_validator("events")
    @classmethod
    def _events(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else _known(value, EVENT_TYPES)


class EndpointOut(BaseModel):
    id: uuid.UUID
    url: str
    events: list[str]
    program_id: uuid.UUID | None
    description: str | None
    status: Status
    disabled_reason: str | None = Field(
        description="why it is disabled: by hand, or after 5 days of failed deliveries"
    )
    secret_set_at: datetime
    previous_secret_expires_at: datetime | None = Field(
        description="until then the replaced secret signs too (a second v1 signature)"
    )
    created_at: datetime
    updated_at: datetime


class EndpointCreated(EndpointOut):
    secret: str = Field(description="the signing secret (whsec_...), shown only here")


class PostbackCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url_template: str = Field(min_length=1, max_length=2000)
    events: list[str] = Field(min_length=1, max_length=10)

    @field_validator("events")
    @classmethod
    def _events(cls, value: list[str]) -> list[str]:
        return _known(value, CONVERSION_EVENTS)


class PostbackUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url_template: str | None = Field(default=None, min_length=1, max_length=2000)
    events: list[str] | None = Field(default=None, min_length=1, max_length=10)
    status: Status | None = None

    @field_validator("events")
    @classmethod
    def _events(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else _known(value, CONVERSION_EVENTS)


class PostbackOut(BaseModel):
    id: uuid.UUID
    partner_id: uuid.UUID
    url_template: str
    events: list[str]
    status: Status
    disabled_reason: str | None
    secret_set_at: datetime
    previous_secret_expires_at: datetime | None
    created_at: datetime
    updated_at: datetime


class PostbackCreated(PostbackOut):
    secret: str = Field(description="the signing secret (whsec_...), shown only here")


class SecretRotated(BaseModel):
    secret: str = Field(description="the new signing secret, shown only here")
    secret_set_at: datetime
    previous_secret_expires_at: datetime = Field(
        description="until then the old secret keeps signing beside the new one"
    )


class DeliveryAttemptOut(BaseModel):
    attempted_at: datetime
    response_status: int | None
    latency_ms: int
    error: str | None


class EventDeliveryOut(BaseModel):
    id: uuid.UUID
    event_id: uuid.UUID = Field(description="the webhook-id header, the same on every retry")
    event_type: str
    status: DeliveryState
    url: str | None = Field(description="a postback's URL, its macros filled in")
    attempt_count: int
    next_attempt_at: datetime | None
    last_attempt_at: datetime | None
    last_response_status: int | None
    last_error: str | None
    created_at: datetime
    attempts: list[DeliveryAttemptOut]
