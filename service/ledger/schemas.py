"""The ledger entry as the API shows it; partners see no other partner's figures."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from service.auth.keys import Principal
from service.auth.scope import is_partner
from service.kit.money import format_minor
from service.models import CommissionEntry

# What a parent may read of an override entry computed from its child's commission: its
# own rate and how it was rounded, not the child's commission it was computed from.
PARENT_EXPLAIN = frozenset({"beneficiary", "override_percent", "rounding", "hold_days", "reason"})


class EntryOut(BaseModel):
    id: uuid.UUID
    partner_id: uuid.UUID
    program_id: uuid.UUID
    conversion_id: uuid.UUID | None
    refund_id: uuid.UUID | None
    kind: str
    amount: str
    currency: str
    available_at: datetime
    payout_id: uuid.UUID | None
    agreement_id: uuid.UUID | None
    agreement_version: int | None
    created_at: datetime
    explain: dict[str, Any]


def explain_for(row: CommissionEntry, principal: Principal) -> dict[str, Any]:
    """The entry's explain as this key may read it."""
    explain = row.explain
    if not is_partner(principal):
        return explain
    if explain.get("beneficiary") == "parent":
        return {k: v for k, v in explain.items() if k in PARENT_EXPLAIN}
    # The attributed partner's own record, without what its parent earns from it.
    return {k: v for k, v in explain.items() if k != "override"}


def entry_body(row: CommissionEntry, principal: Principal) -> dict[str, Any]:
    """EntryOut's fields of a ledger entry, in the model's order, as this key may read it."""
    # A parent's override is computed under its child's agreement, which is not the parent's.
    childs = is_partner(principal) and row.explain.get("beneficiary") == "parent"
    return {
        "id": row.id,
        "partner_id": row.partner_id,
        "program_id": row.program_id,
        "conversion_id": row.conversion_id,
        "refund_id": row.refund_id,
        "kind": row.kind,
        "amount": format_minor(row.amount_minor, row.currency),
        "currency": row.currency,
        "available_at": row.available_at,
        "payout_id": row.payout_id,
        "agreement_id": None if childs else row.agreement_id,
        "agreement_version": None if childs else row.agreement_version,
        "created_at": row.created_at,
        "explain": explain_for(row, principal),
    }


def entry_out(row: CommissionEntry, principal: Principal) -> EntryOut:
    """The API shape of a ledger entry, as this key may read it."""
    return EntryOut.model_validate(entry_body(row, principal))
