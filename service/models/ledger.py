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
    Integer,
    String,
    event,
    func,
    select,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, column_property, declared_attr, mapped_column

from service.models.base import Base, IdMixin, enum_check
from service.models.payouts import Payout, PayoutEntry


class EntryKind(StrEnum):
    commission = "commission"
    reversal = "reversal"
    override = "override"
    click_bounty = "click_bounty"
    adjustment = "adjustment"


class CommissionEntry(IdMixin, Base):
    """Append-only ledger line, never updated; its payout is its row in payout_entries."""

    __tablename__ = "commission_entries"
    __table_args__ = (
        enum_check("kind", EntryKind),
        Index("ix_commission_entries_partner_currency", "partner_id", "currency"),
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

    @declared_attr
    def payout_id(cls) -> Mapped[uuid.UUID | None]:
        """The payout the entry is locked into, read from payout_entries (read only).

        payout_entries is keyed by payout: the link is looked up under each payout of the
        entry's partner and currency, one probe of its key apiece. Fine for loading
        entries; set-based queries join payout_entries themselves, since a filter on this
        subquery runs it once per row.
        """
        return column_property(
            select(PayoutEntry.payout_id)
            .join(Payout, Payout.id == PayoutEntry.payout_id)
            .where(
                Payout.partner_id == cls.partner_id,
                Payout.currency == cls.currency,
                PayoutEntry.entry_id == cls.id,
            )
            .correlate_except(PayoutEntry, Payout)
            .order_by(PayoutEntry.payout_id)
            .limit(1)
            .scalar_subquery()
        )


@event.listens_for(CommissionEntry.payout_id, "set")
def _payout_id_is_read_only(target: CommissionEntry, value: Any, old: Any, initiator: Any) -> None:
    # Assigning it would store nothing: lock and release through payout_entries instead.
    raise AttributeError("CommissionEntry.payout_id is read only; write payout_entries")


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
