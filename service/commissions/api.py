from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query
from sqlalchemy import select

from service.auth.deps import FinanceOrPartner
from service.commissions.schemas import EntryOut, entry_out
from service.db import Session
from service.kit.pagination import Page, Pagination, page_of, paginate_query
from service.models import CommissionEntry
from service.openapi_responses import ERRORS

router = APIRouter(tags=["commissions"])

Kind = Annotated[
    str | None, Query(pattern="^(commission|reversal|override|click_bounty|adjustment)$")
]


@router.get("/v1/commissions", responses=ERRORS)
async def list_(
    auth: FinanceOrPartner,
    session: Session,
    page: Pagination,
    partner_id: Annotated[uuid.UUID | None, Query()] = None,
    program_id: Annotated[uuid.UUID | None, Query()] = None,
    conversion_id: Annotated[uuid.UUID | None, Query()] = None,
    payout_id: Annotated[uuid.UUID | None, Query()] = None,
    kind: Kind = None,
    unpaid: Annotated[bool | None, Query(description="only entries in no payout")] = None,
) -> Page[EntryOut]:
    """Ledger entries; a partner key sees only its own."""
    stmt = select(CommissionEntry)
    if auth.role == "partner":
        stmt = stmt.where(CommissionEntry.partner_id == auth.partner_id)
    if partner_id is not None:
        stmt = stmt.where(CommissionEntry.partner_id == partner_id)
    if program_id is not None:
        stmt = stmt.where(CommissionEntry.program_id == program_id)
    if conversion_id is not None:
        stmt = stmt.where(CommissionEntry.conversion_id == conversion_id)
    if payout_id is not None:
        stmt = stmt.where(CommissionEntry.payout_id == payout_id)
    if kind is not None:
        stmt = stmt.where(CommissionEntry.kind == kind)
    if unpaid:
        stmt = stmt.where(CommissionEntry.payout_id.is_(None))
    rows = list((await session.scalars(paginate_query(stmt, CommissionEntry.id, page))).all())
    items, cursor = page_of(rows, page)
    return Page(items=[entry_out(r) for r in items], next_cursor=cursor)
