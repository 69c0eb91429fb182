"""The ledger entry as the API shows it; partners see no other partner's figures."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from service.auth.keys import Principal
from service.auth.scope import is_partner
from service.kit.columns import Columns
from service.kit.money import format_minor
from service.models import CommissionEntry

# What a parent may read of an override entry computed from its child's commission: its
# own rate and how it was rounded, not the child's commission it was computed from.
PARENT_EXPLAIN = frozenset({"beneficiary", "override_percent", "rounding", "hold_days", "reason"})
_ENTRY = Columns(CommissionEntry)


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


def explain_for(explain: dict[str, Any], principal: Principal) -> dict[str, Any]:
    """An entry's explain as this key may read it."""
    if not is_partner(principal):
        return explain
    if explain.get("beneficiary") == "parent":
        return {k: v for k, v in explain.items() if k in PARENT_EXPLAIN}
    # The attributed partner's own record, without what its parent earns from it.
    return {k: v for k, v in explain.items() if k != "override"}


def entry_body(row: CommissionEntry, principal: Principal) -> dict[str, Any]:
    """EntryOut's fields of a ledger entry, in the model's order, as this key may read it."""
    v = _ENTRY.values(row)
    explain = v["explain"]
    # A parent's override is computed under its child's agreement, which is not the parent's.
    childs = is_partner(principal) and explain.get("beneficiary") == "parent"
    return {
        "id": v["id"],
        "partner_id": v["partner_id"],
        "program_id": v["program_id"],
        "conversion_id": v["conversion_id"],
        "refund_id": v["refund_id"],
        "kind": v["kind"],
        "amount": format_minor(v["amount_minor"], v["currency"]),
        "currency": v["currency"],
        "available_at": v["available_at"],
        "payout_id": v["payout_id"],
        "agreement_id": None if childs else v["agreement_id"],
        "agreement_version": None if childs else v["agreement_version"],
        "created_at": v["created_at"],
        "explain": explain_for(explain, principal),
    }


def entry_out(row: CommissionEntry, principal: Principal) -> EntryOut:
    """The API shape of a ledger entry, as this key may read it."""
    return EntryOut.model_validate(entry_body(row, principal))
