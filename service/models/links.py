from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import (
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from service.models.auth import Role
from service.models.base import Base, IdMixin, TimestampMixin, enum_check


class LinkStatus(StrEnum):
    active = "active"
    paused = "paused"


class Link(IdMixin, TimestampMixin, Base):
    __tablename__ = "links"
    __table_args__ = (
        enum_check("status", LinkStatus),
        enum_check("paused_by", Role, name="paused_by_valid"),
        UniqueConstraint("code"),
    )

    program_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("programs.id"), nullable=False, index=True
    )
    partner_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("partners.id"), nullable=False, index=True
    )
    code: Mapped[str] = mapped_column(String(64), nullable=False)
    destination_url: Mapped[str] = mapped_column(Text, nullable=False)
    # A list of [key, value] pairs: order and repeated keys are kept.
    params: Mapped[list[list[str]]] = mapped_column(JSONB, nullable=False, default=list)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default=LinkStatus.active)
    # The role that paused the link (NULL: unknown, e.g. from psql); a partner lifts only
    # a pause of its own.
    paused_by: Mapped[str | None] = mapped_column(String(16), nullable=True)


class PromoCodeStatus(StrEnum):
    active = "active"
    disabled = "disabled"


class PromoCode(IdMixin, TimestampMixin, Base):
    __tablename__ = "promo_codes"
    __table_args__ = (
        enum_check("status", PromoCodeStatus),
        UniqueConstraint("program_id", "code_normalized"),
        Index("ix_promo_codes_external_ids", "external_ids", postgresql_using="gin"),
    )

    program_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("programs.id"), nullable=False, index=True
    )
    partner_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("partners.id"), nullable=False, index=True
    )
    code: Mapped[str] = mapped_column(String(64), nullable=False)
    code_normalized: Mapped[str] = mapped_column(String(64), nullable=False)
    valid_from: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    valid_to: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    max_uses: Mapped[int | None] = mapped_column(Integer, nullable=True)
    uses: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default=PromoCodeStatus.active)
    # The shop's ids for this code (Stripe promotion code ids), unique in the program.
    external_ids: Mapped[list[str]] = mapped_column(
        ARRAY(Text), nullable=False, default=list, server_default=text("'{}'")
    )
