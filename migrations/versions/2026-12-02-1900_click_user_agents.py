"""a click's user agent is stored once per distinct value; no index on clicks by link; no
foreign key on click_visitors_daily

Revision ID: 0801
Revises: 0701

user_agents: a click used to carry its user agent's text (often 100-150 bytes), the same few
values over and over. The text now sits once in user_agents, keyed by the first 16 bytes of
its SHA-256, and a click keeps that key (user_agent_id). The writer computes the key itself,
so a click needs no lookup, and inserts only the values it has not seen committed. Rows of
user_agents are never deleted: a click's key always finds its text.

ix_clicks_link_id_clicked_at: no query reads clicks by link (reports and bounties read the
hourly rollups; conversions read a click by its key, the click_flood rule by visitor), yet
every click paid for an entry in it.

fk_click_visitors_daily_link_id_links: each new visitor of the day inserts a row, so the
check ran per click: a query of links and a KEY SHARE lock on the link's row, which the
click writer's concurrent batches then shared through a multixact. The writer takes link ids
from resolved links, links are never deleted, and the rollup rows written in the same
transaction keep their foreign key to the link.

The upgrade rewrites every click row once (the new column filled from the old one); the
downgrade puts the text back from user_agents and the index back.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0801"
down_revision: str | None = "0701"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# What service.redirect.batches.user_agent_id computes in Python.
_AGENT_ID = "encode(substring(sha256(convert_to(user_agent, 'UTF8')) FROM 1 FOR 16), 'hex')::uuid"


def upgrade() -> None:
    op.execute("SET LOCAL lock_timeout = '5s'")
    op.create_table(
        "user_agents",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("user_agent", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_user_agents")),
    )
    op.execute(
        f"INSERT INTO user_agents (id, user_agent) SELECT DISTINCT {_AGENT_ID}, user_agent"
        " FROM clicks WHERE user_agent IS NOT NULL"
    )
    op.add_column("clicks", sa.Column("user_agent_id", sa.UUID(), nullable=True))
    op.execute(f"UPDATE clicks SET user_agent_id = {_AGENT_ID} WHERE user_agent IS NOT NULL")
    op.drop_column("clicks", "user_agent")
    op.drop_index("ix_clicks_link_id_clicked_at", table_name="clicks")
    op.drop_constraint(
        "fk_click_visitors_daily_link_id_links", "click_visitors_daily", type_="foreignkey"
    )


def downgrade() -> None:
    op.execute("SET LOCAL lock_timeout = '5s'")
    op.create_foreign_key(
        "fk_click_visitors_daily_link_id_links",
        "click_visitors_daily",
        "links",
        ["link_id"],
        ["id"],
    )
    op.add_column("clicks", sa.Column("user_agent", sa.Text(), nullable=True))
    op.execute(
        "UPDATE clicks c SET user_agent = a.user_agent FROM user_agents a"
        " WHERE a.id = c.user_agent_id"
    )
    op.drop_column("clicks", "user_agent_id")
    op.drop_table("user_agents")
    # Built after the rows are rewritten: once, not entry by entry.
    op.create_index(
        "ix_clicks_link_id_clicked_at", "clicks", ["link_id", "clicked_at"], unique=False
    )
