"""GET /v1/commissions: the ledger's entries, as each key may read them."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from service.auth.deps import FinanceOrPartner
from service.db import Session
from service.kit.pagination import Page, Pagination
from service.ledger import repository
from service.ledger.schemas import EntryOut, entry_out
from service.models import EntryKind
from service.openapi_responses import ERRORS

router = APIRouter(tags=["commissions"])

Kind = Annotated[str | None, Query(pattern=f"^({'|'.join(EntryKind)})$")]


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
    rows, cursor = await repository.page(
        session,
        auth,
        page,
        partner_id=partner_id,
        program_id=program_id,
        conversion_id=conversion_id,
        payout_id=payout_id,
        kind=kind,
        unpaid=unpaid,
    )
    return Page(items=[entry_out(r, auth) for r in rows], next_cursor=cursor)
