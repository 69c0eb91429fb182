from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, Integer, String, Text, text
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from service.models.base import Base, IdMixin, TimestampMixin

DEFAULT_ATTRIBUTION_ORDER = ["promo_code", "click", "customer"]


class Program(IdMixin, TimestampMixin, Base):
    __tablename__ = "programs"
    __table_args__ = (
        CheckConstraint("hold_days >= 0", name="hold_days_non_negative"),
        CheckConstraint("min_payout_minor >= 0", name="min_payout_non_negative"),
        CheckConstraint("attribution_window_days > 0", name="window_positive"),
        CheckConstraint("deal_days > 0", name="deal_days_positive"),
    )

    name: Mapped[str] = mapped_column(String(200), nullable=False)
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    time_zone: Mapped[str] = mapped_column(String(64), nullable=False, default="UTC")
    default_url: Mapped[str] = mapped_column(Text, nullable=False)
    allowed_domains: Mapped[list[str]] = mapped_column(ARRAY(Text), nullable=False, default=list)
    fallback_url: Mapped[str | None] = mapped_column(Text, nullable=True)
    click_param: Mapped[str] = mapped_column(String(64), nullable=False, default="aff_click_id")
    attribution_window_days: Mapped[int] = mapped_column(Integer, nullable=False, default=30)
    attribution_order: Mapped[list[str]] = mapped_column(
        ARRAY(Text), nullable=False, default=lambda: list(DEFAULT_ATTRIBUTION_ORDER)
    )
    hold_days: Mapped[int] = mapped_column(Integer, nullable=False, default=30)
    # How long an approved deal registration holds its customer for the partner.
    deal_days: Mapped[int] = mapped_column(
        Integer, nullable=False, default=90, server_default=text("90")
    )
    min_payout_minor: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    # The fraud rules the program named, as validated (service.fraud.schemas); the rules
    # it did not name take their defaults when a conversion is recorded.
    fraud_rules: Mapped[list[dict[str, Any]]] = mapped_column(
        JSONB, nullable=False, default=list, server_default=text("'[]'::jsonb")
    )
