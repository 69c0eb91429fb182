"""customers, conversions, refunds, fx rates, the ledger, month totals, payouts

Revision ID: 0004
Revises: 0003
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("SET LOCAL lock_timeout = '5s'")
    op.create_table(
        "customers",
        sa.Column("program_id", sa.UUID(), nullable=False),
        sa.Column("external_id", sa.String(length=200), nullable=False),
        sa.Column("partner_id", sa.UUID(), nullable=True),
        sa.Column("first_conversion_id", sa.UUID(), nullable=True),
        sa.Column("first_attributed_at", sa.DateTime(timezone=True), nullable=True),
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
        sa.ForeignKeyConstraint(
            ["partner_id"], ["partners.id"], name=op.f("fk_customers_partner_id_partners")
        ),
        sa.ForeignKeyConstraint(
            ["program_id"], ["programs.id"], name=op.f("fk_customers_program_id_programs")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_customers")),
        sa.UniqueConstraint(
            "program_id", "external_id", name=op.f("uq_customers_program_id_external_id")
        ),
    )
    op.create_index(op.f("ix_customers_partner_id"), "customers", ["partner_id"], unique=False)
    op.create_index(op.f("ix_customers_program_id"), "customers", ["program_id"], unique=False)
    op.create_table(
        "conversions",
        sa.Column("program_id", sa.UUID(), nullable=False),
        sa.Column("type", sa.String(length=8), nullable=False),
        sa.Column("order_id", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("program_amount_minor", sa.BigInteger(), nullable=True),
        sa.Column("program_currency", sa.String(length=3), nullable=False),
        sa.Column("fx_rate", sa.Numeric(precision=24, scale=12), nullable=True),
        sa.Column("refunded_minor", sa.BigInteger(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("click_token", sa.Text(), nullable=True),
        sa.Column("click_id", sa.UUID(), nullable=True),
        sa.Column("link_id", sa.UUID(), nullable=True),
        sa.Column("promo_code", sa.String(length=64), nullable=True),
        sa.Column("promo_code_id", sa.UUID(), nullable=True),
        sa.Column("customer_external_id", sa.String(length=200), nullable=True),
        sa.Column("customer_id", sa.UUID(), nullable=True),
        sa.Column("customer_email_hash", sa.LargeBinary(), nullable=True),
        sa.Column("items", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("metadata", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("partner_id", sa.UUID(), nullable=True),
        sa.Column("attribution_method", sa.String(length=16), nullable=True),
        sa.Column("attribution", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("agreement_id", sa.UUID(), nullable=True),
        sa.Column("agreement_version", sa.Integer(), nullable=True),
        sa.Column("review_reason", sa.Text(), nullable=True),
        sa.Column("request_hash", sa.LargeBinary(length=32), nullable=False),
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
            "status IN ('accepted', 'review', 'rejected')", name=op.f("ck_conversions_status_valid")
        ),
        sa.CheckConstraint("type IN ('lead', 'sale')", name=op.f("ck_conversions_type_valid")),
        sa.ForeignKeyConstraint(
            ["agreement_id"], ["agreements.id"], name=op.f("fk_conversions_agreement_id_agreements")
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_conversions_customer_id_customers")
        ),
        sa.ForeignKeyConstraint(
            ["link_id"], ["links.id"], name=op.f("fk_conversions_link_id_links")
        ),
        sa.ForeignKeyConstraint(
            ["partner_id"], ["partners.id"], name=op.f("fk_conversions_partner_id_partners")
        ),
        sa.ForeignKeyConstraint(
            ["program_id"], ["programs.id"], name=op.f("fk_conversions_program_id_programs")
        ),
        sa.ForeignKeyConstraint(
            ["promo_code_id"],
            ["promo_codes.id"],
            name=op.f("fk_conversions_promo_code_id_promo_codes"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_conversions")),
        sa.UniqueConstraint(
            "program_id", "type", "order_id", name=op.f("uq_conversions_program_id_type_order_id")
        ),
    )
    op.create_index(
        op.f("ix_conversions_agreement_id"), "conversions", ["agreement_id"], unique=False
    )
    op.create_index(
        op.f("ix_conversions_customer_id"), "conversions", ["customer_id"], unique=False
    )
    op.create_index(op.f("ix_conversions_link_id"), "conversions", ["link_id"], unique=False)
    op.create_index(op.f("ix_conversions_partner_id"), "conversions", ["partner_id"], unique=False)
    op.create_index(
        "ix_conversions_partner_occurred",
        "conversions",
        ["partner_id", "occurred_at"],
        unique=False,
    )
    op.create_index(op.f("ix_conversions_program_id"), "conversions", ["program_id"], unique=False)
    op.create_index(
        op.f("ix_conversions_promo_code_id"), "conversions", ["promo_code_id"], unique=False
    )
    op.create_table(
        "refunds",
        sa.Column("program_id", sa.UUID(), nullable=False),
        sa.Column("conversion_id", sa.UUID(), nullable=False),
        sa.Column("refund_id", sa.String(length=200), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("program_amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("request_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("id", sa.UUID(), nullable=False),
        sa.ForeignKeyConstraint(
            ["conversion_id"], ["conversions.id"], name=op.f("fk_refunds_conversion_id_conversions")
        ),
        sa.ForeignKeyConstraint(
            ["program_id"], ["programs.id"], name=op.f("fk_refunds_program_id_programs")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_refunds")),
        sa.UniqueConstraint(
            "program_id", "refund_id", name=op.f("uq_refunds_program_id_refund_id")
        ),
    )
    op.create_index(op.f("ix_refunds_conversion_id"), "refunds", ["conversion_id"], unique=False)
    op.create_index(op.f("ix_refunds_program_id"), "refunds", ["program_id"], unique=False)
    op.create_table(
        "fx_rates",
        sa.Column("base_currency", sa.String(length=3), nullable=False),
        sa.Column("quote_currency", sa.String(length=3), nullable=False),
        sa.Column("date", sa.Date(), nullable=False),
        sa.Column("rate", sa.Numeric(precision=24, scale=12), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint(
            "base_currency", "quote_currency", "date", name=op.f("pk_fx_rates")
        ),
    )
    op.create_table(
        "payout_runs",
        sa.Column("idempotency_key", sa.String(length=200), nullable=False),
        sa.Column("request_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("as_of", sa.DateTime(timezone=True), nullable=False),
        sa.Column("program_id", sa.UUID(), nullable=True),
        sa.Column("created_by", sa.UUID(), nullable=True),
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
        sa.ForeignKeyConstraint(
            ["created_by"], ["api_keys.id"], name=op.f("fk_payout_runs_created_by_api_keys")
        ),
        sa.ForeignKeyConstraint(
            ["program_id"], ["programs.id"], name=op.f("fk_payout_runs_program_id_programs")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payout_runs")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_payout_runs_idempotency_key")),
    )
    op.create_index(op.f("ix_payout_runs_created_by"), "payout_runs", ["created_by"], unique=False)
    op.create_index(op.f("ix_payout_runs_program_id"), "payout_runs", ["program_id"], unique=False)
    op.create_table(
        "payouts",
        sa.Column("run_id", sa.UUID(), nullable=False),
        sa.Column("partner_id", sa.UUID(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("entry_count", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("period_start", sa.DateTime(timezone=True), nullable=True),
        sa.Column("period_end", sa.DateTime(timezone=True), nullable=True),
        sa.Column("payout_method", sa.String(length=64), nullable=True),
        sa.Column("payout_details", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("reference", sa.Text(), nullable=True),
        sa.Column("paid_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("failed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("failure_reason", sa.Text(), nullable=True),
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
            "status IN ('open', 'paid', 'failed')", name=op.f("ck_payouts_status_valid")
        ),
        sa.ForeignKeyConstraint(
            ["partner_id"], ["partners.id"], name=op.f("fk_payouts_partner_id_partners")
        ),
        sa.ForeignKeyConstraint(
            ["run_id"], ["payout_runs.id"], name=op.f("fk_payouts_run_id_payout_runs")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payouts")),
    )
    op.create_index(op.f("ix_payouts_partner_id"), "payouts", ["partner_id"], unique=False)
    op.create_index(op.f("ix_payouts_run_id"), "payouts", ["run_id"], unique=False)
    op.create_table(
        "commission_entries",
        sa.Column("partner_id", sa.UUID(), nullable=False),
        sa.Column("program_id", sa.UUID(), nullable=False),
        sa.Column("conversion_id", sa.UUID(), nullable=True),
        sa.Column("refund_id", sa.UUID(), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("available_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("payout_id", sa.UUID(), nullable=True),
        sa.Column("agreement_id", sa.UUID(), nullable=True),
        sa.Column("agreement_version", sa.Integer(), nullable=True),
        sa.Column("period_month", sa.Date(), nullable=False),
        sa.Column("rule_event", sa.String(length=8), nullable=True),
        sa.Column("explain", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("id", sa.UUID(), nullable=False),
        sa.CheckConstraint(
            "kind IN ('commission', 'reversal', 'override', 'click_bounty', 'adjustment')",
            name=op.f("ck_commission_entries_kind_valid"),
        ),
        sa.ForeignKeyConstraint(
            ["agreement_id"],
            ["agreements.id"],
            name=op.f("fk_commission_entries_agreement_id_agreements"),
        ),
        sa.ForeignKeyConstraint(
            ["conversion_id"],
            ["conversions.id"],
            name=op.f("fk_commission_entries_conversion_id_conversions"),
        ),
        sa.ForeignKeyConstraint(
            ["partner_id"], ["partners.id"], name=op.f("fk_commission_entries_partner_id_partners")
        ),
        sa.ForeignKeyConstraint(
            ["payout_id"], ["payouts.id"], name=op.f("fk_commission_entries_payout_id_payouts")
        ),
        sa.ForeignKeyConstraint(
            ["program_id"], ["programs.id"], name=op.f("fk_commission_entries_program_id_programs")
        ),
        sa.ForeignKeyConstraint(
            ["refund_id"], ["refunds.id"], name=op.f("fk_commission_entries_refund_id_refunds")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_commission_entries")),
    )
    op.create_index(
        op.f("ix_commission_entries_agreement_id"),
        "commission_entries",
        ["agreement_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_commission_entries_conversion_id"),
        "commission_entries",
        ["conversion_id"],
        unique=False,
    )
    op.create_index(
        "ix_commission_entries_partner_currency",
        "commission_entries",
        ["partner_id", "currency"],
        unique=False,
    )
    op.create_index(
        op.f("ix_commission_entries_payout_id"), "commission_entries", ["payout_id"], unique=False
    )
    op.create_index(
        op.f("ix_commission_entries_program_id"), "commission_entries", ["program_id"], unique=False
    )
    op.create_index(
        op.f("ix_commission_entries_refund_id"), "commission_entries", ["refund_id"], unique=False
    )
    op.create_index(
        "ix_commission_entries_unpaid",
        "commission_entries",
        ["program_id", "partner_id", "available_at"],
        unique=False,
        postgresql_where="payout_id IS NULL",
    )

    op.create_table(
        "month_totals",
        sa.Column("partner_id", sa.UUID(), nullable=False),
        sa.Column("program_id", sa.UUID(), nullable=False),
        sa.Column("month", sa.Date(), nullable=False),
        sa.Column("event", sa.String(length=8), nullable=False),
        sa.Column("state", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["partner_id"], ["partners.id"], name=op.f("fk_month_totals_partner_id_partners")
        ),
        sa.ForeignKeyConstraint(
            ["program_id"], ["programs.id"], name=op.f("fk_month_totals_program_id_programs")
        ),
        sa.PrimaryKeyConstraint(
            "partner_id", "program_id", "month", "event", name=op.f("pk_month_totals")
        ),
    )
    op.create_index(
        op.f("ix_month_totals_program_id"), "month_totals", ["program_id"], unique=False
    )


def downgrade() -> None:
    op.execute("SET LOCAL lock_timeout = '5s'")
    op.drop_table("month_totals")
    op.drop_table("commission_entries")
    op.drop_table("payouts")
    op.drop_table("payout_runs")
    op.drop_table("fx_rates")
    op.drop_table("refunds")
    op.drop_table("conversions")
    op.drop_table("customers")
