from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Query

from service.auth.deps import Admin, AdminOrPartner
from service.db import Session
from service.errors import Forbidden
from service.kit.pagination import Page, Pagination
from service.openapi_responses import ERRORS, WRITE_ERRORS
from service.partnering.deals import service
from service.partnering.deals.schemas import DealCreate, DealDecision, DealOut

router = APIRouter(prefix="/v1/deals", tags=["deals"])

CREATE = """Register a deal (partner key). A deal whose domain, or the contact email's company
domain, another partner holds in `submitted` or `approved` (not expired) in the program is a
409 that names no partner. Free mail domains (gmail.com, ...) name no company."""


@router.post("", status_code=201, responses=WRITE_ERRORS, description=CREATE)
async def create(body: DealCreate, auth: AdminOrPartner, session: Session) -> DealOut:
    if auth.partner_id is None:
        raise Forbidden("deals are registered with the partner's own key")
    return service.to_out(await service.create_deal(session, body, auth))


@router.get("", responses=ERRORS)
async def list_(
    auth: AdminOrPartner,
    session: Session,
    page: Pagination,
    status: Annotated[Literal["submitted", "approved", "rejected"] | None, Query()] = None,
    program_id: Annotated[uuid.UUID | None, Query()] = None,
) -> Page[DealOut]:
    rows, cursor = await service.list_deals(session, page, auth, status, program_id)
    return Page(items=[service.to_out(r) for r in rows], next_cursor=cursor)


@router.get("/{deal_id}", responses=ERRORS)
async def get(deal_id: uuid.UUID, auth: AdminOrPartner, session: Session) -> DealOut:
    return service.to_out(await service.get_deal(session, deal_id, auth))


@router.post("/{deal_id}/approve", responses=WRITE_ERRORS)
async def approve(deal_id: uuid.UUID, body: DealDecision, auth: Admin, session: Session) -> DealOut:
    return service.to_out(await service.approve_deal(session, deal_id, body.reason, auth))


@router.post("/{deal_id}/reject", responses=WRITE_ERRORS)
async def reject(deal_id: uuid.UUID, body: DealDecision, auth: Admin, session: Session) -> DealOut:
    return service.to_out(await service.reject_deal(session, deal_id, body.reason, auth))
