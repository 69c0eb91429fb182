"""fraud rules per program, what fired on each conversion, paid-ads markers on clicks

Revision ID: 0106
Revises: 0103

programs.fraud_rules keeps the rules a program named (the others take their defaults);
conversions.fraud keeps what fired when the conversion was recorded, so a later change of
rules never rewrites an earlier decision. clicks.paid_markers keeps which paid-ads click
markers the click's query had, and an index on (visitor_hash, clicked_at) lets the
click_flood rule count a visitor's recent clicks without scanning a partner's traffic.
Adding nullable or constant-default columns is a catalogue change only; the index is built
on each click partition, under the lock timeout.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0106"
down_revision: str | None = "0103"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("SET LOCAL lock_timeout = '5s'")
    op.add_column(
        "programs",
        sa.Column(
            "fraud_rules",
            postgresql.JSONB(),
            nullable=False,
            server_default=sa.text("'[]'::jsonb"),
        ),
    )
    op.add_column(
        "conversions",
        sa.Column(
            "fraud",
            postgresql.JSONB(),
            nullable=False,
            server_default=sa.text("'[]'::jsonb"),
        ),
    )
    op.add_column("clicks", sa.Column("paid_markers", postgresql.ARRAY(sa.Text()), nullable=True))
    op.create_index(
        "ix_clicks_visitor_hash_clicked_at", "clicks", ["visitor_hash", "clicked_at"], unique=False
    )


def downgrade() -> None:
    op.execute("SET LOCAL lock_timeout = '5s'")
    op.drop_index("ix_clicks_visitor_hash_clicked_at", table_name="clicks")
    op.drop_column("clicks", "paid_markers")
    op.drop_column("conversions", "fraud")
    op.drop_column("programs", "fraud_rules")
