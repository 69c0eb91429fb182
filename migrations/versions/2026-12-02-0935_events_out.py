"""events out: webhook endpoints, partner postbacks, the outbox and its deliveries

Revision ID: 0401
Revises: 0301

An event is written in the transaction of the change it reports, with one delivery per
subscriber that wanted it then; the worker claims due deliveries under a lease. Secrets
are sealed like the shops' (AES-GCM). event_subscriptions holds one version, changed with
every subscriber change, that emitting transactions read FOR SHARE.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0401"
down_revision: str | None = "0601"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("SET LOCAL lock_timeout = '5s'")
    op.create_table(
        "event_subscriptions",
        sa.Column("id", sa.SmallInteger(), nullable=False),
        sa.Column("version", sa.UUID(), nullable=False),
        sa.CheckConstraint("id = 1", name=op.f("ck_event_subscriptions_one_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_event_subscriptions")),
    )
    op.create_table(
        "events",
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column("program_id", sa.UUID(), nullable=True),
        sa.Column("partner_id", sa.UUID(), nullable=True),
        sa.Column("data", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("id", sa.UUID(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_events")),
    )
    op.create_table(
        "postbacks",
        sa.Column("partner_id", sa.UUID(), nullable=False),
        sa.Column("url_template", sa.Text(), nullable=False),
        sa.Column("events", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("disabled_reason", sa.Text(), nullable=True),
        sa.Column("failing_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("secret_sealed", sa.LargeBinary(), nullable=False),
        sa.Column("secret_set_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("previous_secret_sealed", sa.LargeBinary(), nullable=True),
        sa.Column("previous_secret_expires_at", sa.DateTime(timezone=True), nullable=True),
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
            "status IN ('enabled', 'disabled')", name=op.f("ck_postbacks_status_valid")
        ),
        sa.ForeignKeyConstraint(
            ["partner_id"], ["partners.id"], name=op.f("fk_postbacks_partner_id_partners")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_postbacks")),
    )
    op.create_index(op.f("ix_postbacks_partner_id"), "postbacks", ["partner_id"], unique=False)
    op.create_table(
        "webhook_endpoints",
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("program_id", sa.UUID(), nullable=True),
        sa.Column("description", sa.String(length=500), nullable=True),
        sa.Column("events", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("disabled_reason", sa.Text(), nullable=True),
        sa.Column("failing_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("secret_sealed", sa.LargeBinary(), nullable=False),
        sa.Column("secret_set_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("previous_secret_sealed", sa.LargeBinary(), nullable=True),
        sa.Column("previous_secret_expires_at", sa.DateTime(timezone=True), nullable=True),
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
            "status IN ('enabled', 'disabled')", name=op.f("ck_webhook_endpoints_status_valid")
        ),
        sa.ForeignKeyConstraint(
            ["program_id"], ["programs.id"], name=op.f("fk_webhook_endpoints_program_id_programs")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_endpoints")),
    )
    op.create_index(
        op.f("ix_webhook_endpoints_program_id"), "webhook_endpoints", ["program_id"], unique=False
    )
    op.create_table(
        "event_deliveries",
        sa.Column("event_id", sa.UUID(), nullable=False),
        sa.Column("endpoint_id", sa.UUID(), nullable=True),
        sa.Column("postback_id", sa.UUID(), nullable=True),
        sa.Column("url", sa.Text(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("locked_by", sa.String(length=100), nullable=True),
        sa.Column("last_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_response_status", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
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
            "status IN ('pending', 'succeeded', 'failed', 'dead')",
            name=op.f("ck_event_deliveries_status_valid"),
        ),
        sa.CheckConstraint(
            "(endpoint_id IS NULL) <> (postback_id IS NULL)",
            name=op.f("ck_event_deliveries_one_target"),
        ),
        sa.ForeignKeyConstraint(
            ["endpoint_id"],
            ["webhook_endpoints.id"],
            name=op.f("fk_event_deliveries_endpoint_id_webhook_endpoints"),
        ),
        sa.ForeignKeyConstraint(
            ["event_id"], ["events.id"], name=op.f("fk_event_deliveries_event_id_events")
        ),
        sa.ForeignKeyConstraint(
            ["postback_id"],
            ["postbacks.id"],
            name=op.f("fk_event_deliveries_postback_id_postbacks"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_event_deliveries")),
    )
    op.create_index(
        "ix_event_deliveries_due",
        "event_deliveries",
        ["next_attempt_at"],
        unique=False,
        postgresql_where="status IN ('pending', 'failed')",
    )
    op.create_index(
        op.f("ix_event_deliveries_endpoint_id"), "event_deliveries", ["endpoint_id"], unique=False
    )
    op.create_index(
        op.f("ix_event_deliveries_event_id"), "event_deliveries", ["event_id"], unique=False
    )
    op.create_index(
        op.f("ix_event_deliveries_postback_id"), "event_deliveries", ["postback_id"], unique=False
    )
    op.create_table(
        "event_delivery_attempts",
        sa.Column("delivery_id", sa.UUID(), nullable=False),
        sa.Column("attempted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("response_status", sa.Integer(), nullable=True),
        sa.Column("latency_ms", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("id", sa.UUID(), nullable=False),
        sa.ForeignKeyConstraint(
            ["delivery_id"],
            ["event_deliveries.id"],
            name=op.f("fk_event_delivery_attempts_delivery_id_event_deliveries"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_event_delivery_attempts")),
    )
    op.create_index(
        op.f("ix_event_delivery_attempts_delivery_id"),
        "event_delivery_attempts",
        ["delivery_id"],
        unique=False,
    )
    # The version emitting transactions check their cached subscriptions against.
    op.execute("INSERT INTO event_subscriptions (id, version) VALUES (1, gen_random_uuid())")
    # Volatile plpgsql: the SELECT after the lock takes a snapshot of its own, so it sees a
    # change committed while the lock was awaited (one statement could not).
    op.execute(
        """
        CREATE FUNCTION event_subscriptions_version() RETURNS uuid
        LANGUAGE plpgsql VOLATILE AS $$
        BEGIN
            PERFORM pg_advisory_xact_lock_shared(1163284052, 1);
            RETURN (SELECT version FROM event_subscriptions WHERE id = 1);
        END $$
        """
    )
    op.execute(
        """
        CREATE FUNCTION bump_event_subscriptions() RETURNS uuid
        LANGUAGE plpgsql VOLATILE AS $$
        DECLARE v uuid := gen_random_uuid();
        BEGIN
            PERFORM pg_advisory_xact_lock(1163284052, 1);
            UPDATE event_subscriptions SET version = v WHERE id = 1;
            RETURN v;
        END $$
        """
    )


def downgrade() -> None:
    op.execute("SET LOCAL lock_timeout = '5s'")
    op.execute("DROP FUNCTION bump_event_subscriptions()")
    op.execute("DROP FUNCTION event_subscriptions_version()")
    op.drop_index(
        op.f("ix_event_delivery_attempts_delivery_id"), table_name="event_delivery_attempts"
    )
    op.drop_table("event_delivery_attempts")
    op.drop_index(op.f("ix_event_deliveries_postback_id"), table_name="event_deliveries")
    op.drop_index(op.f("ix_event_deliveries_event_id"), table_name="event_deliveries")
    op.drop_index(op.f("ix_event_deliveries_endpoint_id"), table_name="event_deliveries")
    op.drop_index(
        "ix_event_deliveries_due",
        table_name="event_deliveries",
        postgresql_where="status IN ('pending', 'failed')",
    )
    op.drop_table("event_deliveries")
    op.drop_index(op.f("ix_webhook_endpoints_program_id"), table_name="webhook_endpoints")
    op.drop_table("webhook_endpoints")
    op.drop_index(op.f("ix_postbacks_partner_id"), table_name="postbacks")
    op.drop_table("postbacks")
    op.drop_table("events")
    op.drop_table("event_subscriptions")
