from __future__ import annotations

from fastapi import APIRouter

from service.auth.deps import Admin
from service.db import Session
from service.ledger.schemas import EntryOut, entry_out
from service.openapi_responses import WRITE_ERRORS
from service.partnering.adjustments import service
from service.partnering.adjustments.schemas import AdjustmentCreate

router = APIRouter(prefix="/v1/adjustments", tags=["adjustments"])

CREATE = """A bonus (positive) or correction (negative) for a partner of the program: a ledger
entry of kind `adjustment`, exact to the currency's minor unit, available at once and paid
by the usual payout rules; its reason is kept in the entry and the audit trail."""


@router.post("", status_code=201, responses=WRITE_ERRORS, description=CREATE)
async def create(body: AdjustmentCreate, auth: Admin, session: Session) -> EntryOut:
    return entry_out(await service.create_adjustment(session, body, auth), auth)
