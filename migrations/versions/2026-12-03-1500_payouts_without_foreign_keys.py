"""payouts without foreign keys on partner_id and run_id

Revision ID: 0804
Revises: 0803

A run inserts one payout per partner and currency it pays in one statement, and each
foreign key's check ran once per payout row, locking the referenced row (FOR KEY SHARE
writes to the partner's heap tuple). For the monthly run of the payout bench (10,000
payouts) the two checks took 0.17-0.47 s of a statement of 0.74-1.2 s.

Nothing is lost that the database enforced in practice: payouts are only written by a
run, which takes partner_id from a join with partners in the same statement and run_id
from the run it inserted in the same transaction; neither partners nor runs are ever
deleted. A payout of no partner shows in the reconciliation as an unbalanced partner (its
amount against no entries), one of no run as a mismatch. The indexes stay: runs list
their payouts, partners read theirs.

Downgrade adds the keys back; it fails, and changes nothing, if a payout names a partner
or a run that does not exist.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0804"
down_revision: str | None = "0803"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("SET LOCAL lock_timeout = '5s'")
    op.drop_constraint(op.f("fk_payouts_partner_id_partners"), "payouts", type_="foreignkey")
    op.drop_constraint(op.f("fk_payouts_run_id_payout_runs"), "payouts", type_="foreignkey")


def downgrade() -> None:
    op.execute("SET LOCAL lock_timeout = '5s'")
    op.create_foreign_key(
        op.f("fk_payouts_partner_id_partners"), "payouts", "partners", ["partner_id"], ["id"]
    )
    op.create_foreign_key(
        op.f("fk_payouts_run_id_payout_runs"), "payouts", "payout_runs", ["run_id"], ["id"]
    )
