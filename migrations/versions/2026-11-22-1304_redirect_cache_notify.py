"""NOTIFY triggers that keep every instance's redirect link cache in step

Revision ID: 0005
Revises: 0004

Any write to links, programs or partners (from the API of any instance, or from psql)
sends a notification on the `affiliate_cache` channel once its transaction commits:
`link:<code>`, `program:<id>` or `partner:<id>`. Each instance LISTENs and drops what
it cached for that code, program or partner.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CHANNEL = "affiliate_cache"


def upgrade() -> None:
    op.execute("SET LOCAL lock_timeout = '5s'")
    op.execute(
        f"""
        CREATE FUNCTION notify_link_cache() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP IN ('UPDATE', 'DELETE') THEN
                PERFORM pg_notify('{CHANNEL}', 'link:' || OLD.code);
            END IF;
            -- An insert matters too: it replaces a cached "no such code".
            IF TG_OP IN ('INSERT', 'UPDATE') THEN
                PERFORM pg_notify('{CHANNEL}', 'link:' || NEW.code);
            END IF;
            RETURN NULL;
        END
        $$
        """
    )
    op.execute(
        f"""
        CREATE FUNCTION notify_owner_cache() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            -- TG_ARGV[0] is 'program' or 'partner'.
            PERFORM pg_notify('{CHANNEL}', TG_ARGV[0] || ':' || OLD.id::text);
            RETURN NULL;
        END
        $$
        """
    )
    op.execute(
        "CREATE TRIGGER links_notify_cache AFTER INSERT OR UPDATE OR DELETE ON links "
        "FOR EACH ROW EXECUTE FUNCTION notify_link_cache()"
    )
    op.execute(
        "CREATE TRIGGER programs_notify_cache AFTER UPDATE OR DELETE ON programs "
        "FOR EACH ROW EXECUTE FUNCTION notify_owner_cache('program')"
    )
    # Only the status of a partner reaches the redirect (attributable or not).
    op.execute(
        "CREATE TRIGGER partners_notify_cache AFTER UPDATE OF status OR DELETE ON partners "
        "FOR EACH ROW EXECUTE FUNCTION notify_owner_cache('partner')"
    )


def downgrade() -> None:
    op.execute("SET LOCAL lock_timeout = '5s'")
    op.execute("DROP TRIGGER IF EXISTS partners_notify_cache ON partners")
    op.execute("DROP TRIGGER IF EXISTS programs_notify_cache ON programs")
    op.execute("DROP TRIGGER IF EXISTS links_notify_cache ON links")
    op.execute("DROP FUNCTION IF EXISTS notify_owner_cache()")
    op.execute("DROP FUNCTION IF EXISTS notify_link_cache()")
