"""The partner program: applications, deal registrations, disputes, KPI targets, bounty days."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    BigInteger,
    Date,
    DateTime,
    ForeignKey,
    Index,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from service.models.base import Base, IdMixin, TimestampMixin, enum_check


class ApplicationStatus(StrEnum):
    pending = "pending"
    approved = "approved"
    rejected = "rejected"


class DealStatus(StrEnum):
    submitted = "submitted"
    approved = "approved"
    rejected = "rejected"


class DisputeKind(StrEnum):
    missing = "missing"
    declined = "declined"


class DisputeStatus(StrEnum):
    open = "open"
    accepted = "accepted"
    declined = "declined"


class KpiPeriod(StrEnum):
    month = "month"
    quarter = "quarter"


class Application(IdMixin, TimestampMixin, Base):
    """Someone asking to join a program; approving it makes the partner."""

    __tablename__ = "applications"
    __table_args__ = (
        enum_check("status", ApplicationStatus),
        # One pending application per email and program, whatever the race.
        Index(
            "uq_applications_pending_email",
            "program_id",
            "email",
            unique=True,
            postgresql_where=text("status = 'pending'"),
        ),
    )

    program_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("programs.id"), nullable=False, index=True
    )
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    # Lower-cased on write.
    email: Mapped[str] = mapped_column(String(320), nullable=False)
    website: Mapped[str | None] = mapped_column(Text, nullable=True)
    message: Mapped[str | None] = mapped_column(Text, nullable=True)
    status: Mapped[str] = mapped_column(
        String(16), nullable=False, default=ApplicationStatus.pending
    )
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    # What an approval created.
    partner_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("partners.id"), nullable=True, index=True
    )
    agreement_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("agreements.id"), nullable=True, index=True
    )
    link_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("links.id"), nullable=True, index=True
    )
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class Deal(IdMixin, TimestampMixin, Base):
    """A partner's claim on a prospective customer, so that two partners do not fight over it."""

    __tablename__ = "deals"
    __table_args__ = (
        enum_check("status", DealStatus),
        Index("ix_deals_program_domain", "program_id", "domain"),
        Index("ix_deals_program_contact_domain", "program_id", "contact_domain"),
    )

    program_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("programs.id"), nullable=False, index=True
    )
    partner_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("partners.id"), nullable=False, index=True
    )
    company: Mapped[str] = mapped_column(String(200), nullable=False)
    # Normalized: lower case, IDNA, no "www.".
    domain: Mapped[str] = mapped_column(String(253), nullable=False)
    contact_email: Mapped[str | None] = mapped_column(String(320), nullable=True)
    # The contact email's domain when it is a company's (free mail providers excepted).
    contact_domain: Mapped[str | None] = mapped_column(String(253), nullable=True)
    expected_value_minor: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    notes: Mapped[str | None] = mapped_column(Text, nullable=True)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default=DealStatus.submitted)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # Set on approval: decided_at + the program's deal_days.
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class Dispute(IdMixin, TimestampMixin, Base):
    """A partner's claim that a sale of an order is missing from its account or was declined."""

    __tablename__ = "disputes"
    __table_args__ = (
        enum_check("kind", DisputeKind),
        enum_check("status", DisputeStatus),
        Index(
            "uq_disputes_open_order",
            "program_id",
            "partner_id",
            "order_id",
            unique=True,
            postgresql_where=text("status = 'open'"),
        ),
    )

    program_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("programs.id"), nullable=False, index=True
    )
    partner_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("partners.id"), nullable=False, index=True
    )
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    order_id: Mapped[str] = mapped_column(String(200), nullable=False)
    claim_amount_minor: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    evidence: Mapped[str | None] = mapped_column(Text, nullable=True)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default=DisputeStatus.open)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    conversion_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("conversions.id"), nullable=True, index=True
    )
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class KpiTarget(IdMixin, TimestampMixin, Base):
    """Targets for a partner (or the whole program, partner_id null) over one month or quarter."""

    __tablename__ = "kpi_targets"
    __table_args__ = (
        enum_check("period", KpiPeriod),
        Index(
            "uq_kpi_targets_key",
            "program_id",
            "partner_id",
            "period",
            "start",
            unique=True,
            postgresql_nulls_not_distinct=True,
        ),
    )

    program_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("programs.id"), nullable=False, index=True
    )
    partner_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("partners.id"), nullable=True, index=True
    )
    period: Mapped[str] = mapped_column(String(8), nullable=False)
    start: Mapped[date] = mapped_column(Date, nullable=False)
    # Counts as integers; money in minor units of the program currency; ratios as strings.
    targets: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, default=dict)


class ClickBountyDay(Base):
    """What the click bounty has paid for one link and program-time-zone day.

    The primary key is the idempotency of the bounty job: a day's row is locked while it
    is paid, and `unique_clicks` says how many clicks are paid already, so a second run
    (or a concurrent one) pays only what the rollups gained since.
    """

    __tablename__ = "click_bounty_days"

    link_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("links.id"), primary_key=True
    )
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    partner_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("partners.id"), nullable=False, index=True
    )
    program_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("programs.id"), nullable=False, index=True
    )
    unique_clicks: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )
