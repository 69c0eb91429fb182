from __future__ import annotations

import uuid
from enum import StrEnum
from typing import Any

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from service.models.base import Base, IdMixin, TimestampMixin, enum_check


class PartnerStatus(StrEnum):
    pending = "pending"
    active = "active"
    suspended = "suspended"
    terminated = "terminated"


class Partner(IdMixin, TimestampMixin, Base):
    __tablename__ = "partners"
    __table_args__ = (
        enum_check("status", PartnerStatus),
        # Stored lower-cased, so a plain unique constraint makes emails case-insensitive.
        UniqueConstraint("email"),
    )

    name: Mapped[str] = mapped_column(String(200), nullable=False)
    email: Mapped[str] = mapped_column(String(320), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default=PartnerStatus.active)
    parent_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("partners.id"), nullable=True, index=True
    )
    payout_method: Mapped[str | None] = mapped_column(String(64), nullable=True)
    payout_details: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, default=dict)
    metadata_: Mapped[dict[str, Any]] = mapped_column(
        "metadata", JSONB, nullable=False, default=dict
    )
