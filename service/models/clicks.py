from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, Boolean, DateTime, ForeignKey, Index, LargeBinary, String, Text
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.orm import Mapped, mapped_column

from service.models.base import Base


class Click(Base):
    """One answered redirect. Partitioned by month on clicked_at (see the migration)."""

    __tablename__ = "clicks"
    __table_args__ = (
        # No index by link: reports read the rollups, conversions a click by its key. Each
        # index here costs every click an entry.
        # The click_flood rule counts a visitor's clicks in the hour before a click.
        Index("ix_clicks_visitor_hash_clicked_at", "visitor_hash", "clicked_at"),
        {"postgresql_partition_by": "RANGE (clicked_at)"},
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    clicked_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    # Partitioned tables cannot carry foreign keys cheaply at this volume; ids are
    # checked when the link is resolved.
    link_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    partner_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    program_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    click_token: Mapped[str] = mapped_column(Text, nullable=False)
    ip_hash: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    visitor_hash: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    # The user agent's row in user_agents (no foreign key, as above: the writer inserts it
    # in the click's transaction, and such rows are never deleted).
    user_agent_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True), nullable=True)
    referer: Mapped[str | None] = mapped_column(Text, nullable=True)
    country: Mapped[str | None] = mapped_column(String(2), nullable=True)
    sub1: Mapped[str | None] = mapped_column(Text, nullable=True)
    sub2: Mapped[str | None] = mapped_column(Text, nullable=True)
    sub3: Mapped[str | None] = mapped_column(Text, nullable=True)
    sub4: Mapped[str | None] = mapped_column(Text, nullable=True)
    sub5: Mapped[str | None] = mapped_column(Text, nullable=True)
    is_bot: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    attributable: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    # Which paid-ads click markers (service.fraud.markers) the click's query had; null: none.
    paid_markers: Mapped[list[str] | None] = mapped_column(ARRAY(Text), nullable=True)


class UserAgent(Base):
    """Each distinct user agent of a click, once; `id` is the first 16 bytes of its SHA-256
    (redirect.batches.user_agent_id)."""

    __tablename__ = "user_agents"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    user_agent: Mapped[str] = mapped_column(Text, nullable=False)


class ClickRollupHourly(Base):
    """Counts per link and hour, kept in step by the click writer; reports read this."""

    __tablename__ = "click_rollups_hourly"

    link_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("links.id"), primary_key=True
    )
    hour: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    partner_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False, index=True)
    program_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False, index=True)
    clicks: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    unique_clicks: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    bots: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)


class ClickRollupSub1Hourly(Base):
    """Counts per link, hour and sub1 ('' when the click had none), for reports by sub1.

    No unique clicks here: a visitor's first sight is known per link and day only.
    """

    __tablename__ = "click_rollups_sub1_hourly"

    link_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("links.id"), primary_key=True
    )
    hour: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    sub1: Mapped[str] = mapped_column(Text, primary_key=True)
    partner_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False, index=True)
    program_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False, index=True)
    clicks: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    bots: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)


class ClickVisitorDaily(Base):
    """First sight of a visitor on a link per day: what makes a click unique."""

    __tablename__ = "click_visitors_daily"

    # No foreign key: a row per new visitor is a row per click at worst, and the check would
    # query and lock the link's row for each. The writer takes link ids from resolved links,
    # links are never deleted, and the same link's rollup rows keep their foreign key.
    link_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    day: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    visitor_hash: Mapped[bytes] = mapped_column(LargeBinary, primary_key=True)
