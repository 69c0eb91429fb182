"""who paused a link; API key changes reach every instance's key cache

Revision ID: 0104
Revises: 0106

`links.paused_by` records the role that paused a link, so that a partner cannot undo an
admin's pause: a partner lifts only a pause of its own (`partner`). Links paused before
this revision take the role of the audit event that paused them; where none says (a pause
from psql, say), it stays NULL, which a partner cannot lift either.

A revoked key must stop working on every instance at once, as a suspended partner's keys
must: updates of api_keys notify `api_key:<id>` on the `affiliate_cache` channel, beside
the `partner:<id>` that migration 0005 already sends when a partner's status changes.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0104"
down_revision: str | None = "0106"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CHANNEL = "affiliate_cache"


def upgrade() -> None:
    op.execute("SET LOCAL lock_timeout = '5s'")
    op.add_column("links", sa.Column("paused_by", sa.String(16), nullable=True))
    op.execute(
        """
        UPDATE links l SET paused_by = (
            SELECT a.actor_role FROM audit_events a
            WHERE a.object_type = 'link' AND a.object_id = l.id
              AND a.actor_role IN ('admin', 'partner')
              AND a.data -> 'status' ->> 'to' = 'paused'
            ORDER BY a.created_at DESC, a.id DESC LIMIT 1)
        WHERE l.status = 'paused'
        """
    )
    op.create_check_constraint(
        op.f("ck_links_paused_by_valid"),
        "links",
        "paused_by IN ('admin', 'finance', 'merchant', 'partner')",
    )
    op.execute(
        f"""
        CREATE FUNCTION notify_api_key_cache() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('{CHANNEL}', 'api_key:' || OLD.id::text);
            RETURN NULL;
        END
        $$
        """
    )
    op.execute(
        "CREATE TRIGGER api_keys_notify_cache AFTER UPDATE OR DELETE ON api_keys "
        "FOR EACH ROW EXECUTE FUNCTION notify_api_key_cache()"
    )


def downgrade() -> None:
    op.execute("SET LOCAL lock_timeout = '5s'")
    op.execute("DROP TRIGGER IF EXISTS api_keys_notify_cache ON api_keys")
    op.execute("DROP FUNCTION IF EXISTS notify_api_key_cache()")
    op.drop_constraint(op.f("ck_links_paused_by_valid"), "links", type_="check")
    op.drop_column("links", "paused_by")
