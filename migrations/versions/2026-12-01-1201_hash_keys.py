"""daily keys for visitor address hashes

Revision ID: 0103
Revises: 0007

Visitor address hashes are keyed per UTC day; each day's key is made by the first instance
that needs it and deleted after AFFILIATE_HASH_KEY_DAYS, so that a dump of the database
cannot reverse the hashes of earlier days.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0103"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("SET LOCAL lock_timeout = '5s'")
    op.create_table(
        "hash_keys",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("key", sa.LargeBinary(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("day", name=op.f("pk_hash_keys")),
    )


def downgrade() -> None:
    op.execute("SET LOCAL lock_timeout = '5s'")
    op.drop_table("hash_keys")
