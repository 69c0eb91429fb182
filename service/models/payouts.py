from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import BigInteger, DateTime, ForeignKey, Integer, LargeBinary, String, Text
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from service.models.base import Base, IdMixin, TimestampMixin, enum_check


class PayoutStatus(StrEnum):
    open = "open"
    paid = "paid"
    failed = "failed"


class PayoutRun(IdMixin, TimestampMixin, Base):
    __tablename__ = "payout_runs"

    idempotency_key: Mapped[str] = mapped_column(String(200), nullable=False, unique=True)
    request_hash: Mapped[bytes] = mapped_column(LargeBinary(32), nullable=False)
    as_of: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    program_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("programs.id"), nullable=True, index=True
    )
    created_by: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("api_keys.id"), nullable=True, index=True
    )


class Payout(IdMixin, TimestampMixin, Base):
    """What a run pays one partner in one currency.

    No foreign keys on run_id and partner_id (migration 0804): their checks ran once per
    payout a run inserts, each locking the partner's or the run's row, a fifth to a third of
    a monthly run's statement. Payouts are only written by a run, which joins partners in
    the statement that inserts them and inserts its own row first, in the same
    transaction; partners and runs are never deleted. The reconciliation shows a payout of
    no partner as an unbalanced partner, one of no run as a mismatch.
    """

    __tablename__ = "payouts"
    __table_args__ = (enum_check("status", PayoutStatus),)

    run_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False, index=True)
    partner_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False, index=True)
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    amount_minor: Mapped[int] = mapped_column(BigInteger, nullable=False)
    entry_count: Mapped[int] = mapped_column(Integer, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default=PayoutStatus.open)
    period_start: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    period_end: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    payout_method: Mapped[str | None] = mapped_column(String(64), nullable=True)
    payout_details: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, default=dict)
    reference: Mapped[str | None] = mapped_column(Text, nullable=True)
    paid_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    failed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    failure_reason: Mapped[str | None] = mapped_column(Text, nullable=True)


class PayoutEntry(Base):
    """An entry locked into a payout: written once by a run, deleted when released.

    The lock lives here rather than in a column of commission_entries: locking a year of
    entries then inserts narrow rows into one index instead of writing a new version of
    every wide entry row into each of the ledger's indexes. An entry with no row here is
    in unpaid_entries instead.

    One index, the primary key (payout_id, entry_id), in that order: a run inserts its
    links sorted by it, and its payouts' ids are the newest, so the index only grows at its
    end. A second index, on entry_id alone, would take each link at a random place: with
    it, locking a year's backlog took 4.0 s instead of 3.4 (migration 0803). So an entry's
    payout is found through its partner's payouts (an entry is only ever locked into a
    payout of its own partner and currency): one probe of this key per such payout
    (CommissionEntry.payout_id). An entry is in one payout at most because a link is only
    made from the row a run deletes from unpaid_entries, whose primary key holds an entry
    once; the reconciliation shows an entry linked twice as an unbalanced partner.

    No foreign keys: their checks run per row, and locking a year of entries spent more
    time in them than in the inserts (the one on entry_id also row-locks, so writes, every
    entry). Links are only written by a run, from existing entries into the payouts it has
    just inserted; entries are never deleted and a payout only after its links. The
    reconciliation shows a link to no payout as an unbalanced partner.
    """

    __tablename__ = "payout_entries"

    payout_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    entry_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)


class UnpaidEntry(Base):
    """An entry in no payout, with the columns a preview and a run read (a copy: entries
    are never updated).

    Each entry is here or in payout_entries, never both: a trigger on commission_entries
    adds every new entry (migration 0802), a run deletes the rows it links into a payout,
    and a failed payout puts its entries back. A preview or a run then reads the unpaid
    entries alone, not the whole ledger against the links of everything ever paid.
    """

    __tablename__ = "unpaid_entries"

    entry_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    partner_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False, index=True)
    program_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    amount_minor: Mapped[int] = mapped_column(BigInteger, nullable=False)
    available_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    conversion_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True), nullable=True)
