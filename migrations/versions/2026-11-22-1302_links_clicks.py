"""links, promo codes, clicks (partitioned by month) and their hourly rollup

Revision ID: 0003
Revises: 0002
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("SET LOCAL lock_timeout = '5s'")
    op.create_table(
        "links",
        sa.Column("program_id", sa.UUID(), nullable=False),
        sa.Column("partner_id", sa.UUID(), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("destination_url", sa.Text(), nullable=False),
        sa.Column("params", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("status IN ('active', 'paused')", name=op.f("ck_links_status_valid")),
        sa.ForeignKeyConstraint(
            ["partner_id"], ["partners.id"], name=op.f("fk_links_partner_id_partners")
        ),
        sa.ForeignKeyConstraint(
            ["program_id"], ["programs.id"], name=op.f("fk_links_program_id_programs")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_links")),
        sa.UniqueConstraint("code", name=op.f("uq_links_code")),
    )
    op.create_index(op.f("ix_links_partner_id"), "links", ["partner_id"], unique=False)
    op.create_index(op.f("ix_links_program_id"), "links", ["program_id"], unique=False)
    op.create_table(
        "promo_codes",
        sa.Column("program_id", sa.UUID(), nullable=False),
        sa.Column("partner_id", sa.UUID(), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("code_normalized", sa.String(length=64), nullable=False),
        sa.Column("valid_from", sa.DateTime(timezone=True), nullable=True),
        sa.Column("valid_to", sa.DateTime(timezone=True), nullable=True),
        sa.Column("max_uses", sa.Integer(), nullable=True),
        sa.Column("uses", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "status IN ('active', 'disabled')", name=op.f("ck_promo_codes_status_valid")
        ),
        sa.ForeignKeyConstraint(
            ["partner_id"], ["partners.id"], name=op.f("fk_promo_codes_partner_id_partners")
        ),
        sa.ForeignKeyConstraint(
            ["program_id"], ["programs.id"], name=op.f("fk_promo_codes_program_id_programs")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_promo_codes")),
        sa.UniqueConstraint(
            "program_id", "code_normalized", name=op.f("uq_promo_codes_program_id_code_normalized")
        ),
    )
    op.create_index(op.f("ix_promo_codes_partner_id"), "promo_codes", ["partner_id"], unique=False)
    op.create_index(
        "ix_promo_codes_program_code",
        "promo_codes",
        ["program_id", "code_normalized"],
        unique=False,
    )
    op.create_index(op.f("ix_promo_codes_program_id"), "promo_codes", ["program_id"], unique=False)
    op.create_table(
        "clicks",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("clicked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("link_id", sa.UUID(), nullable=False),
        sa.Column("partner_id", sa.UUID(), nullable=False),
        sa.Column("program_id", sa.UUID(), nullable=False),
        sa.Column("click_token", sa.Text(), nullable=False),
        sa.Column("ip_hash", sa.LargeBinary(), nullable=True),
        sa.Column("visitor_hash", sa.LargeBinary(), nullable=True),
        sa.Column("user_agent", sa.Text(), nullable=True),
        sa.Column("referer", sa.Text(), nullable=True),
        sa.Column("country", sa.String(length=2), nullable=True),
        sa.Column("sub1", sa.Text(), nullable=True),
        sa.Column("sub2", sa.Text(), nullable=True),
        sa.Column("sub3", sa.Text(), nullable=True),
        sa.Column("sub4", sa.Text(), nullable=True),
        sa.Column("sub5", sa.Text(), nullable=True),
        sa.Column("is_bot", sa.Boolean(), nullable=False),
        sa.Column("attributable", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", "clicked_at", name=op.f("pk_clicks")),
        postgresql_partition_by="RANGE (clicked_at)",
    )
    op.create_index(
        "ix_clicks_link_id_clicked_at", "clicks", ["link_id", "clicked_at"], unique=False
    )
    # Monthly partitions are created ahead by the service; the default partition is the
    # safety net that keeps a click whose month has no partition yet.
    op.execute("CREATE TABLE clicks_default PARTITION OF clicks DEFAULT")
    op.create_table(
        "click_rollups_hourly",
        sa.Column("link_id", sa.UUID(), nullable=False),
        sa.Column("hour", sa.DateTime(timezone=True), nullable=False),
        sa.Column("partner_id", sa.UUID(), nullable=False),
        sa.Column("program_id", sa.UUID(), nullable=False),
        sa.Column("clicks", sa.BigInteger(), nullable=False),
        sa.Column("unique_clicks", sa.BigInteger(), nullable=False),
        sa.Column("bots", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["link_id"], ["links.id"], name=op.f("fk_click_rollups_hourly_link_id_links")
        ),
        sa.PrimaryKeyConstraint("link_id", "hour", name=op.f("pk_click_rollups_hourly")),
    )
    op.create_index(
        op.f("ix_click_rollups_hourly_partner_id"),
        "click_rollups_hourly",
        ["partner_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_click_rollups_hourly_program_id"),
        "click_rollups_hourly",
        ["program_id"],
        unique=False,
    )
    op.create_table(
        "click_visitors_daily",
        sa.Column("link_id", sa.UUID(), nullable=False),
        sa.Column("day", sa.DateTime(timezone=True), nullable=False),
        sa.Column("visitor_hash", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["link_id"], ["links.id"], name=op.f("fk_click_visitors_daily_link_id_links")
        ),
        sa.PrimaryKeyConstraint(
            "link_id", "day", "visitor_hash", name=op.f("pk_click_visitors_daily")
        ),
    )


def downgrade() -> None:
    op.execute("SET LOCAL lock_timeout = '5s'")
    op.drop_table("click_visitors_daily")
    op.drop_table("click_rollups_hourly")
    op.drop_table("clicks")
    op.drop_table("promo_codes")
    op.drop_table("links")
