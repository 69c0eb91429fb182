from __future__ import annotations

import uuid
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import BigInteger, Date, DateTime, ForeignKey, Index, Integer, String, func
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from service.models.base import Base, IdMixin, enum_check


class EntryKind(StrEnum):
    commission = "commission"
    reversal = "reversal"
    override = "override"
    click_bounty = "click_bounty"
    adjustment = "adjustment"


class CommissionEntry(IdMixin, Base):
    """Append-only ledger line. Only payout_id ever changes after insert."""

    __tablename__ = "commission_entries"
    __table_args__ = (
        enum_check("kind", EntryKind),
        Index("ix_commission_entries_partner_currency", "partner_id", "currency"),
        Index(
            "ix_commission_entries_unpaid",
            "program_id",
            "partner_id",
            "available_at",
            postgresql_where="payout_id IS NULL",
        ),
    )

    partner_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("partners.id"), nullable=False
    )
    program_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("programs.id"), nullable=False, index=True
    )
    conversion_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("conversions.id"), nullable=True, index=True
    )
    refund_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("refunds.id"), nullable=True, index=True
    )
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    amount_minor: Mapped[int] = mapped_column(BigInteger, nullable=False)
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    available_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    payout_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("payouts.id"), nullable=True, index=True
    )
    agreement_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("agreements.id"), nullable=True, index=True
    )
    agreement_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # The program-time-zone calendar month the entry counts in (tiers, caps).
    period_month: Mapped[date] = mapped_column(Date, nullable=False)
    rule_event: Mapped[str | None] = mapped_column(String(8), nullable=True)
    explain: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, default=dict)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )


class MonthTotal(Base):
    """Month-to-date state per partner, program, month and rule event.

    The row is the lock that serialises concurrent conversions of one partner-month,
    so that two of them cannot both take the same tier or cap room.
    """

    __tablename__ = "month_totals"

    partner_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("partners.id"), primary_key=True
    )
    program_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("programs.id"), primary_key=True, index=True
    )
    month: Mapped[date] = mapped_column(Date, primary_key=True)
    event: Mapped[str] = mapped_column(String(8), primary_key=True)
    # The engine's MonthState, serialised (decimal strings).
    state: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, default=dict)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )
