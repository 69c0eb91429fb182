from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from service.models.base import Base, IdMixin, TimestampMixin, enum_check


class ConversionType(StrEnum):
    lead = "lead"
    sale = "sale"


class ConversionStatus(StrEnum):
    accepted = "accepted"
    review = "review"
    rejected = "rejected"


class AttributionMethod(StrEnum):
    promo_code = "promo_code"
    click = "click"
    customer = "customer"
    deal = "deal"
    # Given by hand when a partner's dispute of a missing sale is accepted.
    dispute = "dispute"


class Customer(IdMixin, TimestampMixin, Base):
    """A merchant's customer, bound to the partner of its first attributed conversion."""

    __tablename__ = "customers"
    __table_args__ = (UniqueConstraint("program_id", "external_id"),)

    program_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("programs.id"), nullable=False, index=True
    )
    external_id: Mapped[str] = mapped_column(String(200), nullable=False)
    partner_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("partners.id"), nullable=True, index=True
    )
    first_conversion_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True), nullable=True)
    first_attributed_at: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True), nullable=True
    )


class Conversion(IdMixin, TimestampMixin, Base):
    __tablename__ = "conversions"
    # updated_at comes back in the UPDATE's RETURNING: no refresh query to answer.
    __mapper_args__ = {"eager_defaults": True}
    __table_args__ = (
        enum_check("type", ConversionType),
        enum_check("status", ConversionStatus),
        UniqueConstraint("program_id", "type", "order_id"),
        Index("ix_conversions_partner_occurred", "partner_id", "occurred_at"),
        # Lists page in creation order; ids from before UUIDv7 are random (kit/pagination).
        Index("ix_conversions_created_id", "created_at", "id"),
        # Payout runs and previews hold the entries of conversions under review: the few
        # such ids, read from this index instead of a scan of every conversion.
        Index("ix_conversions_in_review", "id", postgresql_where="status = 'review'"),
    )

    program_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("programs.id"), nullable=False, index=True
    )
    type: Mapped[str] = mapped_column(String(8), nullable=False)
    order_id: Mapped[str] = mapped_column(String(200), nullable=False)
    status: Mapped[str] = mapped_column(
        String(16), nullable=False, default=ConversionStatus.accepted
    )
    # What the merchant sent, in its currency.
    amount_minor: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    # The same amount in the program's currency (equal when no FX was needed).
    program_amount_minor: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    program_currency: Mapped[str] = mapped_column(String(3), nullable=False)
    fx_rate: Mapped[Decimal | None] = mapped_column(Numeric(24, 12), nullable=True)
    refunded_minor: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    click_token: Mapped[str | None] = mapped_column(Text, nullable=True)
    click_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True), nullable=True)
    link_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("links.id"), nullable=True, index=True
    )
    promo_code: Mapped[str | None] = mapped_column(String(64), nullable=True)
    promo_code_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("promo_codes.id"), nullable=True, index=True
    )
    customer_external_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    customer_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("customers.id"), nullable=True, index=True
    )
    # A keyed hash; the plain address is not kept.
    customer_email_hash: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    items: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, nullable=False, default=list)
    metadata_: Mapped[dict[str, Any]] = mapped_column(
        "metadata", JSONB, nullable=False, default=dict
    )
    partner_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("partners.id"), nullable=True, index=True
    )
    attribution_method: Mapped[str | None] = mapped_column(String(16), nullable=True)
    attribution: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, default=dict)
    agreement_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("agreements.id"), nullable=True, index=True
    )
    agreement_version: Mapped[int | None] = mapped_column(nullable=True)
    # True while the conversion's figures are in its month's totals: a refund or a
    # rejection has something to take out. False when it earned nothing, or once reversed.
    counted: Mapped[bool] = mapped_column(
        Boolean, nullable=False, default=False, server_default=false()
    )
    # The hold its entries were written with (the terms', else the program's), kept for
    # reversals that find no entry to take the date from.
    hold_days: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # Why it earns nothing, when no agreement or rule applied.
    commission_note: Mapped[str | None] = mapped_column(Text, nullable=True)
    # The engine's record of the computation: the month state before and after, the rule.
    commission_explain: Mapped[dict[str, Any] | None] = mapped_column(JSONB, nullable=True)
    review_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    # The fraud rules that fired when it was recorded: [{"rule", "action", "detail"}].
    fraud: Mapped[list[dict[str, Any]]] = mapped_column(
        JSONB, nullable=False, default=list, server_default=text("'[]'::jsonb")
    )
    # sha256 of the canonical request, to tell a replay from a conflicting order id.
    request_hash: Mapped[bytes] = mapped_column(LargeBinary(32), nullable=False)


class Refund(IdMixin, Base):
    __tablename__ = "refunds"
    __table_args__ = (UniqueConstraint("program_id", "refund_id"),)

    program_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("programs.id"), nullable=False, index=True
    )
    conversion_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("conversions.id"), nullable=False, index=True
    )
    refund_id: Mapped[str] = mapped_column(String(200), nullable=False)
    amount_minor: Mapped[int] = mapped_column(BigInteger, nullable=False)
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    program_amount_minor: Mapped[int] = mapped_column(BigInteger, nullable=False)
    request_hash: Mapped[bytes] = mapped_column(LargeBinary(32), nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class FxRate(Base):
    """Quote units for one base unit, valid from its date until a later one."""

    __tablename__ = "fx_rates"

    base_currency: Mapped[str] = mapped_column(String(3), primary_key=True)
    quote_currency: Mapped[str] = mapped_column(String(3), primary_key=True)
    date: Mapped[date] = mapped_column(Date, primary_key=True)
    rate: Mapped[Decimal] = mapped_column(Numeric(24, 12), nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
