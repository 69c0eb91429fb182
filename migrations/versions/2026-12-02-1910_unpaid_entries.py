"""unpaid_entries: the entries in no payout, kept apart so that a run never reads paid ones

Revision ID: 0802
Revises: 0801

"Unpaid" was an anti-join of every entry against payout_entries: a preview or a run a
month after the last one read the whole ledger, mostly entries paid long ago, to find
a month's worth. unpaid_entries holds a row for each entry in no payout, with the
columns a preview and a run read (entries are never updated, so the copies cannot go
stale). Each entry is in exactly one of unpaid_entries and payout_entries:

- an AFTER INSERT trigger on commission_entries adds the new entries, whoever writes
  them (the API, a click bounty job, COPY);
- a run deletes the rows it locks into payout_entries, in the statement that links them;
- a failed payout puts its entries back as it deletes their links.

No foreign keys, for the reasons of payout_entries (0701); the reconciliation shows an
entry in both tables or in neither as unbalanced. The trigger is per statement, over
its transition table: a bulk insert of entries adds their rows in one INSERT.

The table is derived from commission_entries and payout_entries, so the downgrade drops
it and loses nothing; an upgrade fills it again.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0802"
down_revision: str | None = "0801"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = "partner_id, program_id, currency, amount_minor, available_at, conversion_id"


def upgrade() -> None:
    op.execute("SET LOCAL lock_timeout = '5s'")
    # No entry written and none locked or released between the fill and the trigger.
    op.execute("LOCK TABLE commission_entries, payout_entries IN SHARE ROW EXCLUSIVE MODE")
    op.create_table(
        "unpaid_entries",
        sa.Column("entry_id", sa.UUID(), nullable=False),
        sa.Column("partner_id", sa.UUID(), nullable=False),
        sa.Column("program_id", sa.UUID(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("available_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("conversion_id", sa.UUID(), nullable=True),
        sa.PrimaryKeyConstraint("entry_id", name=op.f("pk_unpaid_entries")),
    )
    op.execute(
        f"INSERT INTO unpaid_entries (entry_id, {COLUMNS})"
        f" SELECT e.id, {', '.join('e.' + c for c in COLUMNS.split(', '))}"
        " FROM commission_entries e"
        " WHERE NOT EXISTS (SELECT FROM payout_entries l WHERE l.entry_id = e.id)"
    )
    op.create_index(
        op.f("ix_unpaid_entries_partner_id"), "unpaid_entries", ["partner_id"], unique=False
    )
    op.execute(
        f"""
        CREATE FUNCTION add_unpaid_entries() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            INSERT INTO unpaid_entries (entry_id, {COLUMNS})
            SELECT id, {COLUMNS} FROM added;
            RETURN NULL;
        END
        $$
        """
    )
    op.execute(
        "CREATE TRIGGER commission_entries_unpaid AFTER INSERT ON commission_entries"
        " REFERENCING NEW TABLE AS added"
        " FOR EACH STATEMENT EXECUTE FUNCTION add_unpaid_entries()"
    )


def downgrade() -> None:
    op.execute("SET LOCAL lock_timeout = '5s'")
    op.execute("DROP TRIGGER IF EXISTS commission_entries_unpaid ON commission_entries")
    op.execute("DROP FUNCTION IF EXISTS add_unpaid_entries()")
    op.drop_index(op.f("ix_unpaid_entries_partner_id"), table_name="unpaid_entries")
    op.drop_table("unpaid_entries")
