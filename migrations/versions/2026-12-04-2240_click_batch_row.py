"""click_batch_row: the type of one click in the click writer's batch

Revision ID: 0805
Revises: 0804

The click writer and the stream loaders store a batch of clicks with one statement
(service.redirect.batches). The clicks went as one array parameter per column: asyncpg
checks and encodes each element of each array on its own, and that was an eighth of the
redirect's instructions in the service (bench/instructions.py --path clicks). They now go as one array of this composite type, one
element per click, its fields encoded in one pass; PostgreSQL decodes it for no more CPU
than the arrays of columns (bench/redirect.py prints it per click).

The fields are the stored columns of clicks in the order of batches.STORED_COLUMNS (a test
compares them), except two: clicked_at goes as integer microseconds since the epoch, which
asyncpg encodes for a fifth of a timestamptz's CPU, and paid_markers as one comma-joined
text. A change to the clicks the batch stores changes this type in a migration of its own.

Downgrade drops the type; the code before this revision does not use it.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0805"
down_revision: str | None = "0804"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("SET LOCAL lock_timeout = '5s'")
    op.execute(
        "CREATE TYPE click_batch_row AS ("
        " id uuid, clicked_at int8, link_id uuid, partner_id uuid, program_id uuid,"
        " click_token text, ip_hash bytea, visitor_hash bytea, user_agent_id uuid,"
        " referer text, country text, sub1 text, sub2 text, sub3 text, sub4 text, sub5 text,"
        " is_bot boolean, attributable boolean, paid_markers text)"
    )


def downgrade() -> None:
    op.execute("SET LOCAL lock_timeout = '5s'")
    op.execute("DROP TYPE click_batch_row")
