"""Portal sign-in: one-time links and the browser sessions they open."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, DateTime, ForeignKey, LargeBinary, String, func
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, mapped_column

from service.models.base import Base, IdMixin


class PortalLink(IdMixin, Base):
    """A sign-in link: only the hash of its token is kept; it opens one session, once."""

    __tablename__ = "portal_links"
    __table_args__ = (
        CheckConstraint("role IN ('admin', 'finance', 'partner')", name="role_valid"),
        CheckConstraint("(role = 'partner') = (partner_id IS NOT NULL)", name="partner_iff_role"),
    )

    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), nullable=False, unique=True)
    role: Mapped[str] = mapped_column(String(16), nullable=False)
    partner_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("partners.id"), nullable=True, index=True
    )
    created_by: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("api_keys.id"), nullable=True, index=True
    )
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )


class PortalSession(IdMixin, Base):
    """A signed-in browser. Its scope is its own API key's (never shown, only its hash kept),
    so a session reads exactly what a key of the same role and partner would."""

    __tablename__ = "portal_sessions"

    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), nullable=False, unique=True)
    api_key_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("api_keys.id"), nullable=False, index=True
    )
    link_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("portal_links.id"), nullable=False, index=True
    )
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )
