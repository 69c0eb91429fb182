"""an entry's payout lives in payout_entries, not in a column of the entry

Revision ID: 0701
Revises: 0301

Locking a year of entries into payouts used to UPDATE commission_entries.payout_id on every
entry: a new version of each wide row, written into every index of the ledger (payout_id
is indexed and in a partial index's predicate, so no update was HOT). A run now inserts
one narrow (entry_id, payout_id) row per entry, and a failed payout deletes its rows.
commission_entries is append-only; an entry with no payout_entries row is unpaid.

The table has no foreign keys. Their checks run once per row: the one on entry_id takes a
row lock on every entry locked, which writes to each entry's heap tuple, the cost this table
is here to avoid; the one on payout_id took half the time of locking a year of entries. Links
are only written by a run, from a join over existing entries into the payouts it inserted in
the same transaction; entries are never deleted, and a payout is deleted only
after its links are. The reconciliation shows an entry whose link points at no payout as
unbalanced (neither unpaid nor in a paid or open payout).

ix_conversions_in_review: runs and previews hold the entries of conversions under review;
the few such ids come from this partial index instead of a scan of every conversion.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0701"
down_revision: str | None = "0501"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("SET LOCAL lock_timeout = '5s'")
    op.create_table(
        "payout_entries",
        sa.Column("entry_id", sa.UUID(), nullable=False),
        sa.Column("payout_id", sa.UUID(), nullable=False),
        sa.PrimaryKeyConstraint("entry_id", name=op.f("pk_payout_entries")),
    )
    op.execute(
        "INSERT INTO payout_entries (entry_id, payout_id)"
        " SELECT id, payout_id FROM commission_entries WHERE payout_id IS NOT NULL"
    )
    op.create_index(
        op.f("ix_payout_entries_payout_id"), "payout_entries", ["payout_id"], unique=False
    )
    op.drop_index("ix_commission_entries_unpaid", table_name="commission_entries")
    op.drop_index(op.f("ix_commission_entries_payout_id"), table_name="commission_entries")
    op.drop_constraint(
        op.f("fk_commission_entries_payout_id_payouts"), "commission_entries", type_="foreignkey"
    )
    op.drop_column("commission_entries", "payout_id")
    # Runs and previews hold the entries of conversions under review: the few such ids.
    op.create_index(
        "ix_conversions_in_review",
        "conversions",
        ["id"],
        unique=False,
        postgresql_where="status = 'review'",
    )


def downgrade() -> None:
    op.execute("SET LOCAL lock_timeout = '5s'")
    op.drop_index("ix_conversions_in_review", table_name="conversions")
    op.add_column("commission_entries", sa.Column("payout_id", sa.UUID(), nullable=True))
    op.execute(
        "UPDATE commission_entries e SET payout_id = l.payout_id"
        " FROM payout_entries l WHERE l.entry_id = e.id"
    )
    op.create_foreign_key(
        op.f("fk_commission_entries_payout_id_payouts"),
        "commission_entries",
        "payouts",
        ["payout_id"],
        ["id"],
    )
    op.create_index(
        op.f("ix_commission_entries_payout_id"), "commission_entries", ["payout_id"], unique=False
    )
    op.create_index(
        "ix_commission_entries_unpaid",
        "commission_entries",
        ["program_id", "partner_id", "available_at"],
        unique=False,
        postgresql_where="payout_id IS NULL",
    )
    op.drop_index(op.f("ix_payout_entries_payout_id"), table_name="payout_entries")
    op.drop_table("payout_entries")
