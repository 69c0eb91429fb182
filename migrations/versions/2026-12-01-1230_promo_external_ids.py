"""promo codes carry the shop's ids for them (Stripe promotion code ids)

Revision ID: 0301
Revises: 0205

A Stripe Checkout Session or Invoice names the promotion code the customer redeemed by its
id (promo_...), not by its text. `promo_codes.external_ids` lists such ids, so that a sale
carrying one is attributed by that promo code. The ids are unique per program (checked by
the service); the GIN index serves the containment lookup of an id.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0301"
down_revision: str | None = "0205"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("SET LOCAL lock_timeout = '5s'")
    op.add_column(
        "promo_codes",
        sa.Column(
            "external_ids",
            postgresql.ARRAY(sa.Text()),
            nullable=False,
            server_default=sa.text("'{}'"),
        ),
    )
    op.create_index(
        op.f("ix_promo_codes_external_ids"),
        "promo_codes",
        ["external_ids"],
        postgresql_using="gin",
    )


def downgrade() -> None:
    op.execute("SET LOCAL lock_timeout = '5s'")
    op.drop_index(op.f("ix_promo_codes_external_ids"), table_name="promo_codes")
    op.drop_column("promo_codes", "external_ids")
