"""The ledger entry as the API shows it, to every caller alike."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from service.kit.money import format_minor
from service.models import CommissionEntry


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


def entry_out(row: CommissionEntry) -> EntryOut:
    """The API shape of a ledger entry."""
    return EntryOut(
        id=row.id,
        partner_id=row.partner_id,
        program_id=row.program_id,
        conversion_id=row.conversion_id,
        refund_id=row.refund_id,
        kind=row.kind,
        amount=format_minor(row.amount_minor, row.currency),
        currency=row.currency,
        available_at=row.available_at,
        payout_id=row.payout_id,
        agreement_id=row.agreement_id,
        agreement_version=row.agreement_version,
        created_at=row.created_at,
        explain=row.explain,
    )
