"""click counts per link, hour and sub1, for the performance report's group_by=sub1

Revision ID: 0006
Revises: 0005

The click writer upserts this table in the same transaction as click_rollups_hourly.
Clicks stored before this revision are folded in once here, so that the report's sub1
rows cover the past too; reports never read the raw clicks table.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("SET LOCAL lock_timeout = '5s'")
    op.create_table(
        "click_rollups_sub1_hourly",
        sa.Column("link_id", sa.UUID(), nullable=False),
        sa.Column("hour", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sub1", sa.Text(), nullable=False),
        sa.Column("partner_id", sa.UUID(), nullable=False),
        sa.Column("program_id", sa.UUID(), nullable=False),
        sa.Column("clicks", sa.BigInteger(), nullable=False),
        sa.Column("bots", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["link_id"], ["links.id"], name=op.f("fk_click_rollups_sub1_hourly_link_id_links")
        ),
        sa.PrimaryKeyConstraint(
            "link_id", "hour", "sub1", name=op.f("pk_click_rollups_sub1_hourly")
        ),
    )
    op.create_index(
        op.f("ix_click_rollups_sub1_hourly_partner_id"),
        "click_rollups_sub1_hourly",
        ["partner_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_click_rollups_sub1_hourly_program_id"),
        "click_rollups_sub1_hourly",
        ["program_id"],
        unique=False,
    )
    # One pass over the clicks already stored (UTC hours, whatever the session's zone);
    # the writer keeps the table in step from now on.
    op.execute(
        """
        INSERT INTO click_rollups_sub1_hourly
            (link_id, hour, sub1, partner_id, program_id, clicks, bots)
        SELECT link_id, date_trunc('hour', clicked_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC',
               coalesce(sub1, ''),
               min(partner_id::text)::uuid, min(program_id::text)::uuid,
               count(*) FILTER (WHERE NOT is_bot), count(*) FILTER (WHERE is_bot)
        FROM clicks
        GROUP BY 1, 2, 3
        """
    )


def downgrade() -> None:
    op.execute("SET LOCAL lock_timeout = '5s'")
    op.drop_index(
        op.f("ix_click_rollups_sub1_hourly_program_id"), table_name="click_rollups_sub1_hourly"
    )
    op.drop_index(
        op.f("ix_click_rollups_sub1_hourly_partner_id"), table_name="click_rollups_sub1_hourly"
    )
    op.drop_table("click_rollups_sub1_hourly")
