"""Settings: one class, AFFILIATE_* environment variables, safe laptop defaults."""

from __future__ import annotations

from enum import StrEnum
from functools import lru_cache
from pathlib import Path

from limits import parse as parse_limit
from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from service.kit.clientip import parse_networks


class Environment(StrEnum):
    development = "development"
    production = "production"


class ClickDurability(StrEnum):
    durable = "durable"
    async_ = "async"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AFFILIATE_", extra="ignore")

    env: Environment = Environment.development
    # Unprefixed, as every PostgreSQL tool spells it. Unset: an embedded server.
    database_url: str | None = Field(
        default=None, validation_alias=AliasChoices("DATABASE_URL", "AFFILIATE_DATABASE_URL")
    )
    data_dir: Path = Path("./.affiliate-data")
    migrate: bool = True
    public_url: str = "http://127.0.0.1:8000"
    db_pool_size: int = Field(default=10, ge=1, le=200)
    # None beyond the pool by default: under a load that keeps more than the pool busy,
    # every connection opened past it is closed on its return and opened again (a new
    # server process each time), which cost more than waiting for a pooled one.
    db_max_overflow: int = Field(default=0, ge=0, le=200)
    # Click ids are signed with these ("kid:base64secret,..."); unset: a key kept in the database.
    click_keys: str | None = None
    click_key_id: str | None = None
    click_durability: ClickDurability = ClickDurability.durable
    click_flush_interval_ms: int = Field(default=50, ge=1, le=10_000)
    click_batch_max: int = Field(default=2000, ge=1, le=100_000)
    link_cache_size: int = Field(default=100_000, ge=0)
    # Unset: clicks go to PostgreSQL from this process (the writer above). nats://host:4222
    # (comma separated for a cluster): each click is published to a JetStream stream and
    # loaded into PostgreSQL by the stream's loaders.
    click_log: str | None = None
    click_stream: str = Field(default="CLICKS", pattern=r"^[A-Za-z0-9_-]{1,64}$")
    click_stream_replicas: int = Field(default=1, ge=1, le=5)
    # Retention: how long JetStream keeps a click (loaded or not), in seconds.
    click_stream_max_age: int = Field(default=7 * 86_400, ge=60, le=366 * 86_400)
    # The longest a redirect waits for JetStream's acknowledgement (durable: then a 503).
    click_publish_timeout_ms: int = Field(default=2000, ge=10, le=60_000)
    # Whether `serve` runs a loader of the stream too (`python -m service click-loader` apart).
    click_loader: bool = True
    click_loader_batch: int = Field(default=1000, ge=1, le=10_000)
    # A batch fetched but not acknowledged this long (its loader died) is delivered again.
    click_loader_ack_wait: int = Field(default=30, ge=1, le=3600)
    # Header a trusted edge sets with the visitor's country (e.g. CF-IPCountry).
    country_header: str | None = None
    # Header a trusted proxy sets with the visitor's address (e.g. X-Forwarded-For).
    client_ip_header: str | None = None
    # CIDRs of proxies whose client_ip_header is believed; from any other peer it is ignored.
    trusted_proxies: str = ""
    # Largest request body read, checked before the body is (413 past it).
    max_body_bytes: int = Field(default=1_048_576, ge=1024, le=1_073_741_824)
    # Async click mode answers before the commit only while the writer is this far behind.
    click_max_lag_ms: int = Field(default=1000, ge=1, le=600_000)
    # A key held outside the database for address hashes; unset: daily keys, deleted after
    # hash_key_days.
    hash_key: str | None = Field(default=None, min_length=32)
    hash_key_days: int = Field(default=2, ge=1, le=366)
    # When set, GET /metrics needs `Authorization: Bearer <token>`.
    metrics_token: str | None = None
    # Failed authentications allowed per client address (each process counts its own).
    auth_failure_limit: str = "20/minute"
    # How long a portal session lasts after its sign-in link was used.
    portal_session_hours: int = Field(default=12, ge=1, le=720)
    # smtp://user:password@host:587 (STARTTLS when offered) or smtps://host:465: partners'
    # sign-in links are emailed to them. Unset: links are only answered and printed.
    smtp_url: str | None = None
    smtp_from: str = "affiliate-portal@localhost"
    # Whether `serve` runs the background worker (event deliveries) in its process too
    # (`python -m service worker` runs it apart).
    worker: bool = True
    # How often an idle worker looks for due work, and how long a claimed delivery is its
    # own (past the lease, a delivery whose worker died is taken by another).
    worker_poll_seconds: float = Field(default=1.0, gt=0, le=60)
    worker_lease_seconds: int = Field(default=60, ge=1, le=3600)
    worker_batch: int = Field(default=50, ge=1, le=1000)
    # Seconds between the attempts of a failing delivery, comma separated; then it is dead.
    webhook_retry_schedule: str = "5,300,1800,7200,18000,36000,36000"
    # Lifts the rule that webhook and postback targets be public addresses (development).
    webhook_allow_private: bool = False
    # Applications to join a program (a public form) allowed per client address.
    application_limit: str = "10/hour"
    log_level: str = "info"
    access_log: bool = False

    @field_validator("trusted_proxies")
    @classmethod
    def _valid_proxies(cls, value: str) -> str:
        parse_networks(value)
        return value

    @field_validator("click_log")
    @classmethod
    def _nats_urls(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        for server in value.split(","):
            scheme = server.strip().partition("://")[0]
            if scheme not in ("nats", "tls"):
                raise ValueError(
                    "AFFILIATE_CLICK_LOG takes nats:// or tls:// URLs, comma separated"
                )
        return value

    @field_validator("smtp_url")
    @classmethod
    def _smtp_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        if value.partition("://")[0] not in ("smtp", "smtps"):
            raise ValueError("AFFILIATE_SMTP_URL takes smtp:// or smtps:// URLs")
        return value

    @field_validator("webhook_retry_schedule")
    @classmethod
    def _parse_schedule(cls, value: str) -> str:
        retry_delays(value)
        return value

    @field_validator("auth_failure_limit", "application_limit")
    @classmethod
    def _parse_limit(cls, value: str) -> str:
        parse_limit(value)  # ValueError for anything but "N/second|minute|hour|day"
        return value

    @model_validator(mode="after")
    def _refuse_unsafe_production(self) -> Settings:
        if self.client_ip_header and not self.trusted_proxies.strip():
            # The header would never count: say so rather than ignore it quietly.
            raise ValueError(
                "AFFILIATE_CLIENT_IP_HEADER needs AFFILIATE_TRUSTED_PROXIES, the proxies it is "
                "believed from"
            )
        if self.env == Environment.production:
            if self.database_url is None:
                raise ValueError("AFFILIATE_ENV=production needs DATABASE_URL (no embedded server)")
            if self.webhook_allow_private:
                raise ValueError(
                    "AFFILIATE_WEBHOOK_ALLOW_PRIVATE=true would let webhooks reach the service's "
                    "own network; it is for development only"
                )
            if self.public_url.startswith("http://127.0.0.1"):
                raise ValueError("AFFILIATE_ENV=production needs AFFILIATE_PUBLIC_URL")
        return self


def retry_delays(schedule: str) -> tuple[float, ...]:
    """The seconds between delivery attempts, from AFFILIATE_WEBHOOK_RETRY_SCHEDULE."""
    try:
        delays = tuple(float(part) for part in schedule.split(",") if part.strip())
    except ValueError as exc:
        raise ValueError("AFFILIATE_WEBHOOK_RETRY_SCHEDULE takes seconds, comma separated") from exc
    if any(d < 0 or d != d or d > 30 * 86_400 for d in delays):
        raise ValueError("AFFILIATE_WEBHOOK_RETRY_SCHEDULE: each delay 0 to 30 days")
    return delays


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Settings read once from the environment."""
    return Settings()
