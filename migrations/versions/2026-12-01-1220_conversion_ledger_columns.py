"""what a conversion counted and its hold become columns of conversions

Revision ID: 0201
Revises: 0104

Until now `conversions.attribution["ledger"]` held {"counted", "hold_days", "month",
"event", "explain", "note"} beside the attribution decision, and every answer stripped it.
`counted` and `hold_days` are what refunds and rejections read back; `note` (why nothing
was earned) and `explain` (the engine's record) are kept as columns too, so that nothing
recorded is lost. `month` and `event` follow from occurred_at and type, and are rebuilt
from them on downgrade.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0201"
down_revision: str | None = "0104"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("SET LOCAL lock_timeout = '5s'")
    op.add_column(
        "conversions",
        sa.Column("counted", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.add_column("conversions", sa.Column("hold_days", sa.Integer(), nullable=True))
    op.add_column("conversions", sa.Column("commission_note", sa.Text(), nullable=True))
    op.add_column(
        "conversions",
        sa.Column("commission_explain", postgresql.JSONB(), nullable=True),
    )
    op.execute(
        """
        UPDATE conversions SET
            counted = coalesce((attribution -> 'ledger' ->> 'counted')::boolean, false),
            hold_days = (attribution -> 'ledger' ->> 'hold_days')::integer,
            commission_note = attribution -> 'ledger' ->> 'note',
            commission_explain = attribution -> 'ledger' -> 'explain',
            attribution = attribution - 'ledger'
        WHERE attribution ? 'ledger'
        """
    )


def downgrade() -> None:
    op.execute("SET LOCAL lock_timeout = '5s'")
    # Each key only where the old code wrote it: month and event beside an explain.
    op.execute(
        """
        UPDATE conversions c SET attribution = c.attribution || jsonb_build_object(
            'ledger',
            jsonb_build_object('counted', c.counted)
            || CASE WHEN c.hold_days IS NULL THEN '{}'::jsonb
                    ELSE jsonb_build_object('hold_days', c.hold_days) END
            || CASE WHEN c.commission_note IS NULL THEN '{}'::jsonb
                    ELSE jsonb_build_object('note', c.commission_note) END
            || CASE WHEN c.commission_explain IS NULL THEN '{}'::jsonb
                    ELSE jsonb_build_object(
                        'explain', c.commission_explain,
                        'event', c.type,
                        'month', to_char(
                            date_trunc('month', c.occurred_at AT TIME ZONE p.time_zone),
                            'YYYY-MM-DD'))
               END)
        FROM programs p
        WHERE p.id = c.program_id
        """
    )
    op.drop_column("conversions", "commission_explain")
    op.drop_column("conversions", "commission_note")
    op.drop_column("conversions", "hold_days")
    op.drop_column("conversions", "counted")
