"""the partner program: applications, deals, disputes, KPI targets, click bounty days

Revision ID: 0501
Revises: 0301

`programs.deal_days` is how long an approved deal registration holds (default 90).
`click_bounty_days` keeps, per link and program-time-zone day, the unique clicks the
bounty job has paid: its primary key makes a run twice, or two runs at once, pay once.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0501"
down_revision: str | None = "0401"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UUID = postgresql.UUID(as_uuid=True)


def _timestamps() -> list[sa.Column]:  # type: ignore[type-arg]
    return [
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
    ]


def upgrade() -> None:
    op.execute("SET LOCAL lock_timeout = '5s'")
    op.add_column(
        "programs",
        sa.Column("deal_days", sa.Integer(), nullable=False, server_default=sa.text("90")),
    )
    op.create_check_constraint(op.f("ck_programs_deal_days_positive"), "programs", "deal_days > 0")

    op.create_table(
        "applications",
        sa.Column("id", UUID, primary_key=True),
        sa.Column("program_id", UUID, sa.ForeignKey("programs.id"), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("website", sa.Text(), nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("partner_id", UUID, sa.ForeignKey("partners.id"), nullable=True),
        sa.Column("agreement_id", UUID, sa.ForeignKey("agreements.id"), nullable=True),
        sa.Column("link_id", UUID, sa.ForeignKey("links.id"), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        *_timestamps(),
        sa.CheckConstraint(
            "status IN ('pending', 'approved', 'rejected')",
            name=op.f("ck_applications_status_valid"),
        ),
    )
    op.create_index("ix_applications_program_id", "applications", ["program_id"])
    op.create_index("ix_applications_partner_id", "applications", ["partner_id"])
    op.create_index("ix_applications_agreement_id", "applications", ["agreement_id"])
    op.create_index("ix_applications_link_id", "applications", ["link_id"])
    op.create_index(
        "uq_applications_pending_email",
        "applications",
        ["program_id", "email"],
        unique=True,
        postgresql_where=sa.text("status = 'pending'"),
    )

    op.create_table(
        "deals",
        sa.Column("id", UUID, primary_key=True),
        sa.Column("program_id", UUID, sa.ForeignKey("programs.id"), nullable=False),
        sa.Column("partner_id", UUID, sa.ForeignKey("partners.id"), nullable=False),
        sa.Column("company", sa.String(200), nullable=False),
        sa.Column("domain", sa.String(253), nullable=False),
        sa.Column("contact_email", sa.String(320), nullable=True),
        sa.Column("contact_domain", sa.String(253), nullable=True),
        sa.Column("expected_value_minor", sa.BigInteger(), nullable=True),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        *_timestamps(),
        sa.CheckConstraint(
            "status IN ('submitted', 'approved', 'rejected')", name=op.f("ck_deals_status_valid")
        ),
    )
    op.create_index("ix_deals_program_id", "deals", ["program_id"])
    op.create_index("ix_deals_partner_id", "deals", ["partner_id"])
    op.create_index("ix_deals_program_domain", "deals", ["program_id", "domain"])
    op.create_index("ix_deals_program_contact_domain", "deals", ["program_id", "contact_domain"])

    op.create_table(
        "disputes",
        sa.Column("id", UUID, primary_key=True),
        sa.Column("program_id", UUID, sa.ForeignKey("programs.id"), nullable=False),
        sa.Column("partner_id", UUID, sa.ForeignKey("partners.id"), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("order_id", sa.String(200), nullable=False),
        sa.Column("claim_amount_minor", sa.BigInteger(), nullable=True),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("evidence", sa.Text(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("conversion_id", UUID, sa.ForeignKey("conversions.id"), nullable=True),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        *_timestamps(),
        sa.CheckConstraint("kind IN ('missing', 'declined')", name=op.f("ck_disputes_kind_valid")),
        sa.CheckConstraint(
            "status IN ('open', 'accepted', 'declined')", name=op.f("ck_disputes_status_valid")
        ),
    )
    op.create_index("ix_disputes_program_id", "disputes", ["program_id"])
    op.create_index("ix_disputes_partner_id", "disputes", ["partner_id"])
    op.create_index("ix_disputes_conversion_id", "disputes", ["conversion_id"])
    op.create_index(
        "uq_disputes_open_order",
        "disputes",
        ["program_id", "partner_id", "order_id"],
        unique=True,
        postgresql_where=sa.text("status = 'open'"),
    )

    op.create_table(
        "kpi_targets",
        sa.Column("id", UUID, primary_key=True),
        sa.Column("program_id", UUID, sa.ForeignKey("programs.id"), nullable=False),
        sa.Column("partner_id", UUID, sa.ForeignKey("partners.id"), nullable=True),
        sa.Column("period", sa.String(8), nullable=False),
        sa.Column("start", sa.Date(), nullable=False),
        sa.Column("targets", postgresql.JSONB(), nullable=False),
        *_timestamps(),
        sa.CheckConstraint(
            "period IN ('month', 'quarter')", name=op.f("ck_kpi_targets_period_valid")
        ),
    )
    op.create_index("ix_kpi_targets_program_id", "kpi_targets", ["program_id"])
    op.create_index("ix_kpi_targets_partner_id", "kpi_targets", ["partner_id"])
    op.create_index(
        "uq_kpi_targets_key",
        "kpi_targets",
        ["program_id", "partner_id", "period", "start"],
        unique=True,
        postgresql_nulls_not_distinct=True,
    )

    op.create_table(
        "click_bounty_days",
        sa.Column("link_id", UUID, sa.ForeignKey("links.id"), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("partner_id", UUID, sa.ForeignKey("partners.id"), nullable=False),
        sa.Column("program_id", UUID, sa.ForeignKey("programs.id"), nullable=False),
        sa.Column("unique_clicks", sa.BigInteger(), nullable=False),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("link_id", "day", name=op.f("pk_click_bounty_days")),
    )
    op.create_index("ix_click_bounty_days_partner_id", "click_bounty_days", ["partner_id"])
    op.create_index("ix_click_bounty_days_program_id", "click_bounty_days", ["program_id"])


def downgrade() -> None:
    op.execute("SET LOCAL lock_timeout = '5s'")
    op.drop_table("click_bounty_days")
    op.drop_table("kpi_targets")
    op.drop_table("disputes")
    op.drop_table("deals")
    op.drop_table("applications")
    op.drop_constraint(op.f("ck_programs_deal_days_positive"), "programs", type_="check")
    op.drop_column("programs", "deal_days")
