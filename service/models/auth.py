from __future__ import annotations

import uuid
from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import Date, DateTime, ForeignKey, LargeBinary, String, func
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.orm import Mapped, mapped_column

from service.models.base import Base, IdMixin, TimestampMixin, enum_check


class Role(StrEnum):
    admin = "admin"
    finance = "finance"
    merchant = "merchant"
    partner = "partner"


class ApiKey(IdMixin, TimestampMixin, Base):
    __tablename__ = "api_keys"
    __table_args__ = (enum_check("role", Role),)

    name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    prefix: Mapped[str] = mapped_column(String(16), nullable=False, unique=True)
    # sha256 of the whole key: keys are 256-bit random, so a fast hash is enough.
    key_hash: Mapped[bytes] = mapped_column(LargeBinary(32), nullable=False)
    role: Mapped[str] = mapped_column(String(16), nullable=False)
    program_ids: Mapped[list[uuid.UUID]] = mapped_column(
        ARRAY(UUID(as_uuid=True)), nullable=False, default=list
    )
    partner_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("partners.id"), nullable=True, index=True
    )
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class ServiceSecret(TimestampMixin, Base):
    """Secrets generated once per database, so every instance signs and hashes alike."""

    __tablename__ = "service_secrets"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)


class HashKey(Base):
    """The key of one UTC day for visitor address hashes, deleted after a few days so that
    a dump holds no key to the hashes of the days before: they cannot be reversed."""

    __tablename__ = "hash_keys"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    key: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )
