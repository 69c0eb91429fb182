"""customers' recurring window starts at their first attributed sale; conversions page by creation

Revision ID: 0007
Revises: 0006

Until now a customer's first attributed conversion of any type started the window, so a
lead used up `recurring_months: 0` before the first sale. The window's start is
recomputed from the stored sales; customers with only leads get none yet.

Conversions had random (v4) ids, so their lists page on (created_at, id): indexed here.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("SET LOCAL lock_timeout = '5s'")
    op.create_index("ix_conversions_created_id", "conversions", ["created_at", "id"])
    op.execute(
        """
        UPDATE customers AS c
        SET first_attributed_at = s.occurred_at, first_conversion_id = s.id
        FROM (
            SELECT DISTINCT ON (customer_id) customer_id, id, occurred_at
            FROM conversions
            WHERE type = 'sale' AND partner_id IS NOT NULL AND customer_id IS NOT NULL
            ORDER BY customer_id, occurred_at, id
        ) AS s
        WHERE s.customer_id = c.id
          AND c.first_attributed_at IS DISTINCT FROM s.occurred_at
        """
    )
    op.execute(
        """
        UPDATE customers AS c
        SET first_attributed_at = NULL, first_conversion_id = NULL
        WHERE c.first_attributed_at IS NOT NULL
          AND NOT EXISTS (
            SELECT 1 FROM conversions v
            WHERE v.customer_id = c.id AND v.type = 'sale' AND v.partner_id IS NOT NULL
          )
        """
    )


def downgrade() -> None:
    # The old start (the first attributed conversion of any type) is recomputable.
    op.execute("SET LOCAL lock_timeout = '5s'")
    op.drop_index("ix_conversions_created_id", table_name="conversions")
    op.execute(
        """
        UPDATE customers AS c
        SET first_attributed_at = s.occurred_at, first_conversion_id = s.id
        FROM (
            SELECT DISTINCT ON (customer_id) customer_id, id, occurred_at
            FROM conversions
            WHERE partner_id IS NOT NULL AND customer_id IS NOT NULL
            ORDER BY customer_id, occurred_at, id
        ) AS s
        WHERE s.customer_id = c.id
        """
    )
