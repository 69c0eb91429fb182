"""payout_entries keyed by (payout_id, entry_id), its one index

Revision ID: 0803
Revises: 0802

A run inserts a link per entry it locks. With a primary key on entry_id and an index on
payout_id, one of the two took each link at a random place: sorted by entry, the links
of thousands of payouts interleave in payout_id; sorted by payout, in entry_id. Without
it, the statement that locks a year's backlog takes 3.4 s instead of 4.0 s. The one
index is now the primary key (payout_id, entry_id): a run inserts its links sorted by
it, and its payouts' ids are the newest (time-ordered), so the index grows at its end.

An entry's payout is read through its partner's payouts (a probe of the key per payout
of the entry's partner and currency); an entry stays in one payout at most because a
link is only made from the row a run deletes from unpaid_entries. The links themselves
do not change: the upgrade and the downgrade swap the indexes and keep every row.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0803"
down_revision: str | None = "0802"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("SET LOCAL lock_timeout = '5s'")
    op.drop_index(op.f("ix_payout_entries_payout_id"), table_name="payout_entries")
    op.drop_constraint(op.f("pk_payout_entries"), "payout_entries", type_="primary")
    op.create_primary_key(op.f("pk_payout_entries"), "payout_entries", ["payout_id", "entry_id"])


def downgrade() -> None:
    op.execute("SET LOCAL lock_timeout = '5s'")
    # Fails, and changes nothing, if an entry were linked twice: the reconciliation shows it.
    op.drop_constraint(op.f("pk_payout_entries"), "payout_entries", type_="primary")
    op.create_primary_key(op.f("pk_payout_entries"), "payout_entries", ["entry_id"])
    op.create_index(
        op.f("ix_payout_entries_payout_id"), "payout_entries", ["payout_id"], unique=False
    )
